"""The team tracking server (`make server`: real PostgreSQL and a real `mlflow server`) with two clones tracking
into it, checked from a plain MlflowClient, then stopped and started again on the same folder."""

import contextlib
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import psutil
import pytest
from conftest import REPO, photo_frame
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from pipeline_workspace import Workspace

from carvana.server import postgres
from carvana.server.processes import HOST, free_port, local_url

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(postgres.find() is None, reason=postgres.INSTALL_HINT)]

START_TIMEOUT = 300  # PostgreSQL's initdb, then MLflow creating its tables, on a busy 2-core machine
STOP_TIMEOUT = 60
EXPORT = re.compile(r"^export MLFLOW_TRACKING_URI=(\S+)$", re.MULTILINE)
PANEL = re.compile(r"images/val_panels\W+step\W+(\d+)\W+timestamp\W.*\.png")  # MLflow's separator: % or +
EXIT_TIMEOUT = 10  # PostgreSQL's last process ends a moment after `pg_ctl stop` returns
# Credentials in the clones' environment (the server has no auth: it ignores the URI's): none may appear in any
# output or file.
CANARIES = {
    "MLFLOW_TRACKING_URI": "canary-tracking-password-5b1e",
    "KAGGLE_KEY": "canary-kaggle-key-93c0",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-c27d",
}


class TrackingServer:
    """`python -m carvana.tracking_server` on `folder` with fixed free ports, started and stopped as a user
    would: it runs until SIGTERM."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = (free_port(), free_port())  # MLflow's, PostgreSQL's: the same again after a restart
        self.url = local_url(self.ports[0])
        self.starts = 0
        self.process: subprocess.Popen | None = None

    @property
    def output_file(self) -> Path:
        return self.folder.parent / f"start-{self.starts}.out"

    def output(self) -> str:
        return self.output_file.read_text()

    def start(self) -> None:
        self.starts += 1
        mlflow_port, postgres_port = self.ports
        with self.output_file.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "carvana.tracking_server", "--dir", str(self.folder)]
                + ["--port", str(mlflow_port), "--postgres-port", str(postgres_port), "--workers", "1"],
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not EXPORT.search(self.output()):
            assert self.process.poll() is None and time.monotonic() < deadline, f"not started:\n{self.output()}"
            time.sleep(0.25)
        assert EXPORT.search(self.output())[1] == self.url

    def stop(self) -> None:
        """SIGTERM, as `kill` or a service manager sends it; it must stop everything it started and exit 0."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=STOP_TIMEOUT) == 0, self.output()
        assert self.output().endswith("tracking server: stopped\n"), self.output()

    def leftovers(self) -> list[psutil.Process]:
        """Processes still running from this server: every process whose command line names its folder
        (PostgreSQL, the MLflow server), with all their descendants (PostgreSQL backends, uvicorn workers)."""
        roots = [
            process
            for process in psutil.process_iter(["cmdline"])
            if any(str(self.folder) in arg for arg in process.info["cmdline"] or [])
        ]
        found = {process for root in roots for process in [root, *children(root)]}
        return [process for process in found if alive(process)]

    def close(self) -> None:
        """Whatever happened, leave nothing running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for process in self.leftovers():
            with contextlib.suppress(psutil.NoSuchProcess):  # it has just exited
                process.kill()

    def all_exited(self) -> bool:
        deadline = time.monotonic() + EXIT_TIMEOUT
        while self.leftovers():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


def children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


@pytest.fixture(scope="module")
def server() -> Iterator[TrackingServer]:
    # Not under pytest's tmp_path: as root, PostgreSQL runs as the `postgres` user, who must enter every folder
    # down to its cluster, and pytest keeps its temporary root private (each pytest session makes it so again).
    home = Path(tempfile.mkdtemp(prefix="carvana-tracking-server-"))
    home.chmod(0o711)
    server = TrackingServer(home / "server")
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(home)


@pytest.fixture(scope="module")
def clones(server: TrackingServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Workspace]:
    """Two clones tracking into the server: one runs the pipeline, the other an experiment with another lr."""
    first = Workspace(tmp_path_factory.mktemp("clone-a"))
    second = Workspace(tmp_path_factory.mktemp("clone-b"))
    for clone in (first, second):
        clone.env |= CANARIES | {"KAGGLE_USERNAME": "carvana", "AWS_ACCESS_KEY_ID": "carvana"}
        clone.env["MLFLOW_TRACKING_URI"] = server.url.replace("://", f"://carvana:{CANARIES['MLFLOW_TRACKING_URI']}@")
    first.run("dvc", "repro")
    second.run("dvc", "exp", "run", "-n", "lr-3e-3", "-S", "train.lr=0.003")
    return first, second


@pytest.fixture
def client(server: TrackingServer) -> MlflowClient:
    return MlflowClient(server.url)


def runs_of(client: MlflowClient) -> list[Run]:
    experiment = client.get_experiment_by_name("carvana")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def run_id(clone: Workspace) -> str:
    return clone.json("stages/train/mlflow_run.json")["run_id"]


def test_both_clones_track_into_the_server(clones: tuple[Workspace, Workspace], client: MlflowClient) -> None:
    runs = runs_of(client)
    assert [run.info.run_id for run in runs] == [run_id(clone) for clone in clones]
    for clone in clones:  # what a teammate's shell sees, with the export the server printed
        listed = clone.run("mlflow", "runs", "list", "--experiment-id", runs[0].info.experiment_id).stdout
        print(f"`mlflow runs list` in {clone.root.name}:\n{listed}")
        assert all(run.info.run_id in listed for run in runs)
    first, second = runs
    assert first.data.params["train.lr"] == "0.001"
    assert second.data.params["train.lr"] == "0.003" and second.data.tags["dvc.exp_name"] == "lr-3e-3"
    for run in runs:
        assert run.info.status == "FINISHED"
        assert [metric.step for metric in client.get_metric_history(run.info.run_id, "val_dice")] == [1, 2]
        assert "eval_dice_full" in run.data.metrics
        panels = [PANEL.fullmatch(artifact.path) for artifact in client.list_artifacts(run.info.run_id, "images")]
        assert sorted(int(panel[1]) for panel in panels if panel) == [1, 2]


def test_artifacts_go_through_the_server_to_its_folder(
    clones: tuple[Workspace, Workspace], client: MlflowClient, server: TrackingServer, tmp_path: Path
) -> None:
    experiment = client.get_experiment_by_name("carvana")
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    for clone in clones:
        run = client.get_run(run_id(clone))
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        checkpoint = (clone.root / "stages/train/checkpoints/best.pt").read_bytes()
        downloaded = client.download_artifacts(run.info.run_id, "checkpoints/best.pt", str(tmp_path))
        assert Path(downloaded).read_bytes() == checkpoint
        stored = server.folder / "artifacts" / experiment.experiment_id / run.info.run_id / "artifacts"
        assert (stored / "checkpoints" / "best.pt").read_bytes() == checkpoint


def test_the_champion_is_the_better_run_and_loads_through_the_server(
    clones: tuple[Workspace, Workspace], client: MlflowClient, server: TrackingServer
) -> None:
    best = max(runs_of(client), key=lambda run: run.data.metrics["eval_dice_full"])
    assert client.get_model_version_by_alias("carvana-unet", "champion").run_id == best.info.run_id
    mlflow.set_tracking_uri(server.url)
    try:
        champion = mlflow.pyfunc.load_model("models:/carvana-unet@champion")
    finally:
        mlflow.set_tracking_uri(None)
    photo = min((clones[0].root / "stages/download/train").glob("*.jpg"))
    answer = champion.predict(photo_frame(photo))
    assert (answer["width"][0], answer["height"][0]) == (240, 160) and answer["rle"][0]


def test_no_credential_in_any_output_or_file(
    clones: tuple[Workspace, Workspace], server: TrackingServer, tmp_path: Path
) -> None:
    first = clones[0]
    first.run("python", "-m", "carvana.predict", "stages/download/train", "--masks", str(tmp_path / "masks"))
    first.run("python", "-m", "carvana.export", "--onnx", str(tmp_path / "model.onnx"))
    refused = first.run("python", "-m", "carvana.cv", "--out", str(tmp_path / "cv"), check=False)
    assert refused.returncode == 2 and f"in {server.url.replace('://', '://***@')}" in refused.stderr
    unreachable = first.env["MLFLOW_TRACKING_URI"].replace(str(server.ports[0]), str(free_port()))
    down = subprocess.run(
        [sys.executable, "-m", "carvana.predict", "stages/download/train", "--masks", str(tmp_path / "m2")],
        cwd=first.root,
        env=first.env | {"MLFLOW_TRACKING_URI": unreachable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 2 and "does not answer" in down.stderr and not (tmp_path / "m2").exists()
    printed = [down.stdout + down.stderr] + [c.stdout + c.stderr for clone in clones for c in clone.commands]
    files = [tmp_path, server.folder, *(clone.root for clone in clones)]
    for secret in CANARIES.values():
        assert not any(secret in text for text in printed), secret
        found = [p for folder in files for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert not found, (secret, found)


def test_nothing_lands_in_the_clones_local_store(clones: tuple[Workspace, Workspace]) -> None:
    for clone in clones:
        assert not (clone.root / "mlruns").exists()


def test_the_password_is_kept_private(clones: tuple[Workspace, Workspace], server: TrackingServer) -> None:
    password_file = server.folder / "password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    logs = [server.output_file, server.folder / "mlflow.log", server.folder / "postgres" / "postgres.log"]
    assert all(password not in log.read_text() for log in logs)
    assert all(password not in " ".join(process.cmdline()) for process in server.leftovers())


def server_state(client: MlflowClient) -> dict[str, Any]:
    """What a restart must keep: every run with its val_dice curve, and the champion."""
    champion = client.get_model_version_by_alias("carvana-unet", "champion")
    return {
        "runs": {
            run.info.run_id: (
                run.info.status,
                [(metric.step, metric.value) for metric in client.get_metric_history(run.info.run_id, "val_dice")],
            )
            for run in runs_of(client)
        },
        "champion": (champion.version, champion.run_id),
    }


def test_a_restart_keeps_runs_curves_and_the_champion(
    clones: tuple[Workspace, Workspace], client: MlflowClient, server: TrackingServer, tmp_path: Path
) -> None:
    assert "created the PostgreSQL cluster" in server.output()
    before = server_state(client)
    assert server.leftovers()
    server.stop()
    assert server.all_exited(), server.leftovers()
    assert not any(listening(port) for port in server.ports)
    server.start()
    assert "reusing the PostgreSQL cluster" in server.output()
    assert server_state(MlflowClient(server.url)) == before
    downloaded = client.download_artifacts(run_id(clones[0]), "checkpoints/best.pt", str(tmp_path))
    assert Path(downloaded).read_bytes() == (clones[0].root / "stages/train/checkpoints/best.pt").read_bytes()
