"""Queued DVC experiments run side by side (two workers) land as complete MLflow runs, none lost."""

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient
from pipeline_workspace import Workspace

pytestmark = pytest.mark.e2e

LEARNING_RATES = ["0.002", "0.003"]
WORKERS = ".dvc/tmp/exps/celery"  # each queue worker's log (.out) and pid file


def wait_for_queue(ws: Workspace, count: int, timeout: float = 600) -> list[str]:
    """Poll `dvc queue status` until `count` experiments have finished; return their status lines. A queue that
    does not get there fails with its workers' logs (DVC's queue has known hangs with two workers: treeverse/dvc
    issues 10398 and 10428)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            lines = ws.run("dvc", "queue", "status").stdout.splitlines()
            done = [line for line in lines if line.split()[-1:] in (["Success"], ["Failed"])]
            if len(done) >= count:
                return done
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(2)
    except AssertionError as error:
        logs = sorted((ws.root / WORKERS).glob("*.out"))
        tails = [f"== {log}\n{log.read_text()[-4000:]}" for log in logs]
        raise AssertionError("\n".join([str(error), *tails])) from None


def start_queue(ws: Workspace, jobs: int) -> None:
    """`dvc queue start`, its output in a file: the workers it leaves running inherit it, and a pipe would stay open
    until the last one exits. One may never exit: seen here, a worker told to shut down on an empty queue while its
    task still ran finished the task and then sat idle for good."""
    with (ws.root.parent / "queue-start.log").open("w") as log:
        command = ["dvc", "queue", "start", "-j", str(jobs)]
        subprocess.run(command, cwd=ws.root, env=ws.env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)


def stop_workers(ws: Workspace) -> None:
    """SIGTERM every queue worker still running: none outlives the test."""
    for pid_file in (ws.root / WORKERS).glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_queued_experiments_run_side_by_side_make_complete_runs(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run("dvc", "repro")  # the baseline the experiments branch from
    for index, lr in enumerate(LEARNING_RATES):
        ws.run("dvc", "exp", "run", "--queue", "-n", f"queued-{index}", "-S", f"train.lr={lr}")
    try:
        start_queue(ws, jobs=2)
        statuses = wait_for_queue(ws, len(LEARNING_RATES))
    finally:
        stop_workers(ws)
    assert all(line.split()[-1] == "Success" for line in statuses), statuses

    shown = json.loads(ws.run("dvc", "exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp for rev in shown for exp in rev.get("experiments") or []}
    assert {f"queued-{i}" for i in range(len(LEARNING_RATES))} <= experiments.keys()

    client = MlflowClient(ws.tracking_uri)
    experiment_id = client.get_experiment_by_name("carvana").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment_id])}
    assert len(runs) == 1 + len(LEARNING_RATES)  # the baseline and one per queued experiment
    for index, lr in enumerate(LEARNING_RATES):
        run = runs[f"queued-{index}"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc.exp_name"] == f"queued-{index}"
        assert float(run.data.params["train.lr"]) == float(lr)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_dice")] == [1, 2]
        assert "eval_dice_full" in run.data.metrics
        assert run.info.artifact_uri.startswith((ws.root / "mlruns" / "artifacts").as_uri())
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert artifacts == {"checkpoints/best.pt", "checkpoints/last.pt"}
        masks = client.list_artifacts(run.info.run_id, "render_masks/overlays")
        assert len(masks) == 16
