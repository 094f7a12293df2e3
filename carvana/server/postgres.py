"""The tracking server's own PostgreSQL cluster, run with Debian's PostgreSQL programs: created on first start,
reachable over TCP on 127.0.0.1 only (no Unix socket), by password.

initdb and postgres refuse to run as root: as root, they run as the `postgres` user that Debian's package
creates, and the cluster's folder belongs to it.
"""

import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carvana.core.errors import CarvanaError
from carvana.server.processes import HOST

INSTALL_HINT = "PostgreSQL not found (initdb, pg_ctl, postgres): apt-get install postgresql"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")  # <version>/bin
PROGRAMS = ("initdb", "pg_ctl", "postgres")
OWNER_AS_ROOT = "postgres"
USER = DATABASE = "mlflow"
START_TIMEOUT = 60
HBA = f"""# carvana tracking server: logins over TCP from this machine only, by password
host all all {HOST}/32 scram-sha-256
"""
CONFIG = f"""
# carvana tracking server: TCP on {HOST} only, no Unix socket (its default folder is not writable by everyone)
listen_addresses = '{HOST}'
unix_socket_directories = ''
"""


def find() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: pg_ctl's on PATH, else Debian's newest version's."""
    on_path = shutil.which("pg_ctl")
    debian = sorted(DEBIAN_BINARIES.glob("*/bin"), key=lambda folder: version(folder.parent.name), reverse=True)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    return next((folder for folder in [*candidates, *debian] if has_programs(folder)), None)


def binaries() -> Path:
    folder = find()
    if folder is None:
        raise CarvanaError(INSTALL_HINT)
    if os.geteuid() == 0 and not user_exists(OWNER_AS_ROOT):
        raise CarvanaError(f"no user {OWNER_AS_ROOT} to run PostgreSQL as (root may not): apt-get install postgresql")
    return folder


def version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def has_programs(folder: Path) -> bool:
    return all((folder / program).is_file() for program in PROGRAMS)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", OWNER_AS_ROOT, "--", *command] if os.geteuid() == 0 else command


def password(file: Path) -> str:
    """The database password: generated on first use, then read from `file` (mode 0600)."""
    if not file.exists():
        with os.fdopen(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return file.read_text().strip()


def data_folder(cluster: Path) -> Path:
    return cluster / "data"


def log_file(cluster: Path) -> Path:
    return cluster / "postgres.log"


def create_if_missing(cluster: Path, secret: str) -> bool:
    """Create the cluster under `cluster` unless it exists: role and database `mlflow` with password `secret`.
    Built in data.new/ and renamed into place when complete, so an interrupted creation is started over."""
    owned_folder(cluster)
    data = data_folder(cluster)
    if (data / "PG_VERSION").exists():
        return False
    bin_folder = binaries()
    draft = cluster / "data.new"
    shutil.rmtree(draft, ignore_errors=True)
    initdb = [bin_folder / "initdb", "-D", draft, "-U", USER, "--auth=reject", "-E", "UTF8", "--no-locale"]
    check(run(initdb, cluster), f"initdb could not create a cluster in {draft}")
    # Single-user mode, before any login is allowed. The password goes in on stdin, and a failing statement is
    # never echoed to the log (log_min_error_statement), so it is written nowhere in the clear.
    setup = run(
        [bin_folder / "postgres", "--single", "-D", draft, "-c", "exit_on_error=on"]
        + ["-c", "log_min_error_statement=panic", "postgres"],
        cluster,
        stdin=f"CREATE DATABASE {DATABASE};\nALTER ROLE {USER} PASSWORD '{secret}';\n",
    )
    check(setup, f"could not create the database {DATABASE} in {draft}")
    (draft / "pg_hba.conf").write_text(HBA)  # as root, the files stay the owner's: they are rewritten in place
    with (draft / "postgresql.conf").open("a") as config:
        config.write(CONFIG)
    draft.rename(data)
    return True


def owned_folder(cluster: Path) -> None:
    """Create `cluster` (if missing), owned by whoever runs PostgreSQL, and check that they can write to it."""
    cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    shutil.chown(cluster, OWNER_AS_ROOT, OWNER_AS_ROOT)
    if run(["test", "-w", cluster], cluster).returncode != 0:
        raise CarvanaError(
            f"the {OWNER_AS_ROOT} user (root may not run PostgreSQL) cannot write to {cluster}: let others enter "
            f"the folders above it (chmod o+x) or run as a normal user"
        )


@contextmanager
def running(cluster: Path, port: int) -> Iterator[str]:
    """PostgreSQL on HOST:port over the cluster, stopped on exit; yields the SQLAlchemy URI of the mlflow
    database, without the password (libpq reads it from PGPASSWORD)."""
    bin_folder = binaries()
    data = data_folder(cluster)
    if is_running(bin_folder, cluster):
        stop_command = shlex.join(as_owner([str(bin_folder / "pg_ctl"), "stop", "-D", str(data)]))
        raise CarvanaError(f"PostgreSQL already runs on {data}: stop the other server, or if none, `{stop_command}`")
    start(bin_folder, cluster, port)
    try:
        yield f"postgresql+psycopg://{USER}@{HOST}:{port}/{DATABASE}"
    finally:
        check(run([bin_folder / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w"], cluster), "pg_ctl stop failed")


def start(bin_folder: Path, cluster: Path, port: int) -> None:
    log = log_file(cluster)
    command = [bin_folder / "pg_ctl", "start", "-D", data_folder(cluster), "-l", log, "-w", "-t", str(START_TIMEOUT)]
    result = run([*command, "-o", f"-p {port}"], cluster)
    if result.returncode != 0:
        reason = last_line(log.read_text() if log.exists() else result.stderr)
        raise CarvanaError(f"PostgreSQL did not start on {HOST}:{port}: {reason} (log: {log})")


def is_running(bin_folder: Path, cluster: Path) -> bool:
    status = run([bin_folder / "pg_ctl", "status", "-D", data_folder(cluster)], cluster)
    if status.returncode not in (0, 3):  # 3: not running; anything else: pg_ctl cannot tell (an unreadable folder)
        check(status, "pg_ctl status failed")
    return status.returncode == 0


def run(command: list[str | Path], cluster: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as the cluster's owner, in the cluster's folder (as root, the working folder may
    be one the owner cannot enter)."""
    return subprocess.run(
        as_owner([str(part) for part in command]), cwd=cluster, input=stdin, capture_output=True, text=True
    )


def check(result: subprocess.CompletedProcess[str], failure: str) -> None:
    if result.returncode != 0:
        raise CarvanaError(f"{failure}: {last_line(result.stderr + result.stdout)}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
