"""fetch_kaggle against a stand-in for Kaggle on 127.0.0.1; nothing here reaches the real network.

Seam: the unmodified kaggle client runs in a subprocess started from the repository root, as in a DVC stage.
A fresh process matters: `import kaggle` authenticates, and KaggleApi fixes its host (from
KAGGLE_API_ENVIRONMENT) and config folder when imported. KAGGLE_API_ENVIRONMENT=LOCALHOST points the client at
http://localhost instead of https://www.kaggle.com, and HTTP_PROXY routes every request, including the redirect
to file storage, to the stand-in, which answers as Kaggle does: authenticated API call -> 302 to a signed
storage URL -> the zip. Auth headers, URL building, redirect following and file naming are the client's own.
"""

import base64
import io
import json
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from carvana.sources.kaggle import COMPETITION, FILES, RULES_URL

REPO = Path(__file__).resolve().parents[1]
USERNAME, KEY = "carvana-tester", "0123456789abcdef"
API_PATH = f"/api/v1/competitions/data/download/{COMPETITION}/"
STORAGE = "http://storage.googleapis.test/kaggle-competitions-data/carvana/"
DATASET = {
    "train.zip": {"train/0cdf5b5d0ce1_01.jpg": b"photo"},
    "train_masks.zip": {"train_masks/0cdf5b5d0ce1_01_mask.gif": b"mask"},
}
FETCH = (
    "import pathlib, sys; from carvana.core.errors import run_main; from carvana.sources.kaggle import fetch_kaggle; "
    "run_main(lambda: fetch_kaggle(pathlib.Path(sys.argv[1])))"
)


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


class StandIn(ThreadingHTTPServer):
    """Kaggle's competition download API and its file storage, reached as the client's HTTP proxy."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.rules_accepted = True
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:
        # Through a proxy the request line carries the absolute URL, e.g. http://localhost/api/v1/...
        self.server.requests.append(self.path)
        url = urlsplit(self.path)
        name = url.path.rsplit("/", 1)[-1]
        if name not in FILES:
            self.reply(404, "application/json", b'{"code": 404, "message": "Not found"}')
        elif url.netloc == "localhost" and url.path == API_PATH + name:
            self.api(name)
        elif self.path.startswith(STORAGE):
            self.reply(200, "application/zip", zipped(DATASET[name]))
        else:
            self.reply(404, "text/plain", b"unknown host or path")

    def api(self, name: str) -> None:
        basic = base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {basic}":
            self.reply(401, "application/json", b'{"code": 401, "message": "Unauthenticated"}')
        elif not self.server.rules_accepted:
            message = b"You must accept this competition's rules before you'll be able to download files."
            self.reply(403, "application/json", json.dumps({"code": 403, "message": message.decode()}).encode())
        else:
            self.send_response(302)
            self.send_header("Location", f"{STORAGE}{name}?GoogleAccessId=web-data&Expires=1&Signature=abc")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", self.date_time_string())
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def kaggle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StandIn]:
    """A running stand-in, and an environment with no credentials whose every HTTP(S) request goes to it."""
    server = StandIn()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, server.url)
        monkeypatch.setenv(name.upper(), server.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    yield server
    server.shutdown()
    server.server_close()


def save_token(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    token = folder / "kaggle.json"
    folder.mkdir(parents=True)
    token.write_text(json.dumps({"username": USERNAME, "key": KEY}))
    token.chmod(0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    return token


def run_fetch(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    target = tmp_path / "target"
    target.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", FETCH, str(target)],
        cwd=REPO,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
    )
    return result, target


def files_under(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_downloads_and_extracts_both_zips(kaggle: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_token(tmp_path / "config", monkeypatch)
    result, target = run_fetch(tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_under(target) == DATASET["train.zip"] | DATASET["train_masks.zip"]
    assert sorted(path.name for path in target.iterdir()) == ["train", "train_masks"]  # downloads removed
    api_calls = [f"http://localhost{API_PATH}{name}" for name in FILES]
    assert [request for request in kaggle.requests if request.startswith("http://localhost")] == api_calls
    assert sum(request.startswith(STORAGE) for request in kaggle.requests) == len(FILES)


def test_missing_credentials_stop_before_any_request(kaggle: StandIn, tmp_path: Path) -> None:
    result, _ = run_fetch(tmp_path)
    assert result.returncode == 2
    message = result.stderr
    assert "needs Kaggle API credentials" in message and "KAGGLE_USERNAME" in message
    # Where kaggle 1.7 looks when ~/.kaggle does not exist.
    token = Path(".config/kaggle") if sys.platform.startswith("linux") else Path(".kaggle")
    assert str(tmp_path / "home" / token / "kaggle.json") in message and "chmod 600" in message
    assert "Settings → API" in message and "download.source" in message
    assert kaggle.requests == []
    # The kaggle package creates its config folder when imported: it was not even imported.
    assert list((tmp_path / "home").iterdir()) == []


def test_unreadable_token_is_named(kaggle: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = save_token(tmp_path / "config", monkeypatch)
    token.write_text('{"username": "carvana-tester"}')
    result, _ = run_fetch(tmp_path)
    assert result.returncode == 2
    assert f"{token}: not a Kaggle API token" in result.stderr
    assert kaggle.requests == []


def test_rules_not_accepted(kaggle: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = save_token(tmp_path / "config", monkeypatch)
    kaggle.rules_accepted = False
    result, target = run_fetch(tmp_path)
    assert result.returncode == 2
    assert "HTTP 403" in result.stderr and f"Accept them at {RULES_URL}" in result.stderr
    assert str(token) in result.stderr
    assert files_under(target) == {}


def test_wrong_credentials(kaggle: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    result, target = run_fetch(tmp_path)
    assert result.returncode == 2
    assert "rejected the API credentials from KAGGLE_USERNAME/KAGGLE_KEY (HTTP 401)" in result.stderr
    assert files_under(target) == {}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_kaggle(kaggle: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_token(tmp_path / "config", monkeypatch)
    nobody = f"http://127.0.0.1:{closed_port()}"
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, nobody)
    result, _ = run_fetch(tmp_path)
    assert result.returncode == 2
    assert "could not reach Kaggle to download train.zip" in result.stderr and "download.source" in result.stderr
    assert kaggle.requests == []
