"""The tracking server's parts that need no PostgreSQL: finding its programs, the password, a taken port."""

import socket
import stat
import subprocess
import sys

import pytest
from conftest import REPO

from carvana.core.errors import CarvanaError
from carvana.server import postgres
from carvana.server.processes import HOST, port_in_use


def fake_install(folder, version: str) -> None:
    (folder / version / "bin").mkdir(parents=True)
    for program in postgres.PROGRAMS:
        (folder / version / "bin" / program).touch()


def test_postgres_programs_are_found_in_debians_newest_version(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setattr(postgres, "DEBIAN_BINARIES", tmp_path)
    for version in ("9.6", "13", "15"):
        fake_install(tmp_path, version)
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a client-only install: no server programs
    assert postgres.binaries() == tmp_path / "15" / "bin"


def test_without_postgres_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_BINARIES", tmp_path)
    assert postgres.find() is None
    with pytest.raises(CarvanaError, match="apt-get install postgresql"):
        postgres.binaries()


def test_the_password_is_made_once_and_private(tmp_path):
    file = tmp_path / "password"
    first = postgres.password(file)
    assert len(first) >= 32 and postgres.password(file) == first
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_a_taken_port_stops_the_server_before_it_starts_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_in_use(port)
        result = subprocess.run(
            [sys.executable, "-m", "carvana.tracking_server", "--dir", str(tmp_path / "server"), "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 2
    assert result.stderr == f"error: port {port} is in use on 127.0.0.1: pick another with --port\n"
    assert not (tmp_path / "server").exists()
