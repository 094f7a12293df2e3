"""The team's MLflow tracking server (`make server`): PostgreSQL and `mlflow server` on 127.0.0.1, until Ctrl-C.

Everything lives in one folder (default <repo>/.server, git-ignored), kept from one start to the next:
  password      the database password, generated on first start (mode 0600)
  postgres/     the PostgreSQL cluster (data/) and its log
  artifacts/    every run's artifacts, uploaded through the server
  mlflow.log    the MLflow server's log
It prints `export MLFLOW_TRACKING_URI=http://127.0.0.1:<port>`: every stage of every clone run with it set
tracks there, and the MLflow UI is at that URL.
"""

import argparse
import signal
import subprocess
from pathlib import Path

from carvana.core.cli import Parser, port, positive
from carvana.core.errors import CarvanaError, run_main
from carvana.core.interrupts import SIGNALS, Interrupted
from carvana.core.paths import project_root
from carvana.server import mlflow_server, postgres
from carvana.server.processes import free_port, local_url, port_in_use

PREFIX = "tracking server:"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Parser("carvana server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=project_root() / ".server", help="default: <repo>/.server")
    parser.add_argument("--port", type=port, default=5000, help="the MLflow server's port (default: 5000)")
    parser.add_argument("--postgres-port", type=port, help="PostgreSQL's port (default: a free one)")
    parser.add_argument("--workers", type=positive, default=2, help="MLflow server worker processes (default: 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    mlflow_server.check_driver()
    if port_in_use(args.port):
        raise CarvanaError(f"port {args.port} is in use on 127.0.0.1: pick another with --port")
    folder = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    cluster, password = folder / "postgres", postgres.password(folder / "password")
    created = postgres.create_if_missing(cluster, password)
    print(f"{PREFIX} {'created' if created else 'reusing'} the PostgreSQL cluster in {cluster}", flush=True)
    postgres_port = args.postgres_port or free_port()
    with postgres.running(cluster, postgres_port) as database:
        print(f"{PREFIX} PostgreSQL on 127.0.0.1:{postgres_port}, password in {folder / 'password'}", flush=True)
        log = folder / "mlflow.log"
        with mlflow_server.running(database, password, folder / "artifacts", log, args.port, args.workers) as server:
            print(f"{PREFIX} MLflow: artifacts in {folder / 'artifacts'}, log in {log}", flush=True)
            print(f"export MLFLOW_TRACKING_URI={local_url(args.port)}", flush=True)
            print(f"{PREFIX} Ctrl-C stops it", flush=True)
            serve_until_stopped(server, log)
    print(f"{PREFIX} stopped", flush=True)


def serve_until_stopped(server: subprocess.Popen, log: Path) -> None:
    """Wait for Ctrl-C or SIGTERM (then stop quietly: a second Ctrl-C must not cut the shutdown short), or for
    the MLflow server to die."""
    try:
        code = server.wait()
    except Interrupted as interrupt:
        print(f"{PREFIX} stopping ({interrupt})", flush=True)
        for signum in SIGNALS:
            signal.signal(signum, lambda *_: None)  # not SIG_IGN: the programs that stop PostgreSQL inherit that
        return
    raise CarvanaError(f"the MLflow server exited with code {code}; its log: {log}")


if __name__ == "__main__":
    run_main(main)
