"""`mlflow server` on the PostgreSQL database, proxying artifacts to a folder of its own: a client needs only its
URL, no database password and no storage credentials."""

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carvana.core.errors import CarvanaError
from carvana.server.processes import HOST, local_url, stop_group, wait_for_http

START_TIMEOUT = 180  # the first start creates MLflow's tables: seconds, but minutes on a loaded machine
SERVER_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # the GenAI job runner: 7 more processes, unused here
    "MLFLOW_DISABLE_TELEMETRY": "true",  # nothing leaves the machine
}


def check_driver() -> None:
    """MLflow reaches PostgreSQL through psycopg 3 (SQLAlchemy's `postgresql+psycopg`), the `server` extra."""
    if importlib.util.find_spec("psycopg") is None:
        raise CarvanaError("psycopg is not installed: pip install -e '.[server]' (`make server` does)")


def command(database: str, artifacts: Path, port: int, workers: int) -> list[str]:
    return [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", database),
        *("--artifacts-destination", str(artifacts), "--serve-artifacts"),
        *("--host", HOST, "--port", str(port), "--workers", str(workers)),
    ]


@contextmanager
def running(
    database: str, password: str, artifacts: Path, log: Path, port: int, workers: int
) -> Iterator[subprocess.Popen]:
    """The server on HOST:port, answering, with its output appended to `log`; stopped (all its workers) on exit.

    The password reaches the database driver as PGPASSWORD: never on a command line, which every local user
    can read.
    """
    env = {**SERVER_ENV, **os.environ, "PGPASSWORD": password}
    with log.open("a") as output:
        server = subprocess.Popen(
            command(database, artifacts, port, workers),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the tracking server, which stops this one in order
        )
    try:
        wait_for_http(f"{local_url(port)}/health", server, START_TIMEOUT, log)
        yield server
    finally:
        stop_group(server)
