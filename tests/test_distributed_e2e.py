"""Training across 2 processes (torchrun, DDP with gloo on the CPU) through the real `dvc exp run`, on one machine
and as two nodes (both on this machine, over loopback).

With BatchNorm over the global batch, 2 processes compute the steps 1 process computes, up to float rounding
(tests/test_distributed.py checks one step's gradients to 1e-4). Rounding differences grow over the epochs of a
chaotic tiny training: measured on an AMD EPYC (AVX2) with this test's params, the train loss of the 2-process run
is within 3e-5 (fp32) / 2e-3 (bf16) of the 1-process run's at epoch 1 and within 3.3 % / 4.7 % by epoch 8; the
final val dice of either is 0.966-0.979 (LEARNS_CARS: a tiny run that learns whatever the seed).
"""

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from pipeline_workspace import LEARNS_CARS, Checkout, Workspace
from test_resume_e2e import mlflow_experiment_id, resume_checkpoints, wait_for_first_epoch

from carvana.server.processes import free_port

pytestmark = pytest.mark.e2e

SLOWER = {"prepare": {"image_height": 64, "image_width": 96}, "train": {"epochs": 4, "batch_size": 4}}


def metrics_by_run(ws: Workspace) -> dict[str, dict]:
    client = MlflowClient(ws.tracking_uri)
    return {run.info.run_name: run for run in client.search_runs([mlflow_experiment_id(ws)])}


def history(ws: Workspace, run_id: str, key: str) -> list[float]:
    return [
        m.value for m in sorted(MlflowClient(ws.tracking_uri).get_metric_history(run_id, key), key=lambda m: m.step)
    ]


@pytest.mark.numerics
def test_two_processes_train_like_one_on_one_machine_and_on_two(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "node0", extra=LEARNS_CARS)
    ws.run("dvc", "repro", "train")
    result = ws.run("dvc", "exp", "run", "-n", "two", "-S", "train.processes=2", "train")
    assert "2 processes" in result.stdout and result.stdout.count("epoch 8:") == 1  # only process 0 speaks
    node1 = second_node(ws, tmp_path / "node1")
    train_on_two_nodes(ws, node1)
    runs = metrics_by_run(ws)
    assert len(runs) == 3  # one MLflow run per training, whatever its process and node count
    one = next(run for name, run in runs.items() if name not in ("two", "two-nodes"))
    losses_one = history(ws, one.info.run_id, "train_loss")
    assert losses_one[-1] < losses_one[0] / 2 and one.data.metrics["val_dice"] > 0.8
    for name in ("two", "two-nodes"):
        run = runs[name]
        assert run.info.status == "FINISHED" and run.data.params["train.processes"] == "2"
        losses = history(ws, run.info.run_id, "train_loss")
        print({"one process": losses_one, name: losses})
        assert len(losses) == 8
        assert losses[0] == pytest.approx(losses_one[0], rel=0.01)
        assert losses == pytest.approx(losses_one, rel=0.15)
        assert losses[-1] < losses[0] / 2 and run.data.metrics["val_dice"] > 0.8  # it learned
    # rank 0, on node 0, alone tracked and wrote: node 1's checkout holds no outputs, runs or resume state
    assert (ws.root / "stages/train/checkpoints/best.pt").exists()
    assert not (node1.root / "stages/train").exists() and not (node1.root / "mlruns").exists()
    assert not (node1.root / ".dvc/tmp/carvana-resume").exists()


def second_node(ws: Workspace, root: Path) -> Checkout:
    """Node 1: a checkout of the same commit with the prepared data (`dvc pull` on a real second machine) and
    `train.processes` as node 0's experiment sets it."""
    left_out = {ws.root / "mlruns", ws.root / "stages/train", ws.root / ".dvc/tmp/carvana-resume"}
    shutil.copytree(
        ws.root, root, symlinks=True, ignore=lambda folder, names: [n for n in names if Path(folder, n) in left_out]
    )
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["processes"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return Checkout(root)


def train_on_two_nodes(node0: Workspace, node1: Checkout) -> None:
    """docs/distributed.md's commands, one node per process, both on this machine: node 0 runs the experiment with
    torchrun's multi-node settings in its environment, node 1 starts torchrun by hand."""
    port = str(free_port())
    settings = {"PET_NNODES": "2", "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
    node0.env.update(settings, PET_NODE_RANK="0")
    # --force: the run cache holds this very stage (experiment "two"), and would be restored instead of run
    first = node0.start("dvc", "exp", "run", "-n", "two-nodes", "-S", "train.processes=2", "--force", "-s", "train")
    node1.env.update(OMP_NUM_THREADS="1")
    second = node1.start(
        "torchrun", "--nnodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1", "--master-port", port,
        "--nproc-per-node", "1", "-m", "carvana.train", "--processes", "2",
    )  # fmt: skip
    out1, err1 = second.communicate(timeout=600)
    out0, err0 = first.communicate(timeout=300)
    assert second.returncode == 0, out1 + err1
    assert first.returncode == 0, out0 + err0
    assert "2 processes" in out0 and out0.count("epoch 8:") == 1 and "epoch" not in out1  # node 0's rank 0 speaks


def test_two_processes_resume_after_a_kill(tmp_path: Path) -> None:
    extra = {**SLOWER, "train": {**SLOWER["train"], "processes": 2}}
    reference = Workspace(tmp_path / "reference", extra=extra)
    reference.run("dvc", "repro", "train")
    killed = Workspace(tmp_path / "killed", extra=extra)
    killed.run("dvc", "repro", "prepare")
    process = killed.start("dvc", "repro", "train")
    wait_for_first_epoch(killed, process)
    os.killpg(process.pid, signal.SIGKILL)  # DVC and torchrun die at once; the kernel stops the trainers
    process.wait()
    wait_until_gone(killed)
    resumed = killed.run("dvc", "repro", "train")
    assert "resuming after epoch" in resumed.stdout
    assert killed.json("stages/train/metrics.json") == reference.json("stages/train/metrics.json")
    (run,) = metrics_by_run(killed).values()
    assert [m.step for m in MlflowClient(killed.tracking_uri).get_metric_history(run.info.run_id, "val_dice")] == [
        1,
        2,
        3,
        4,
    ]


def worker_pids(ws: Workspace) -> dict[int, int]:
    """rank -> pid of the training processes torchrun started in this workspace (in sessions of their own)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "cwd").resolve() != ws.root.resolve():
                continue
            raw = (proc / "environ").read_bytes().decode()
        except OSError:
            continue
        environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
        if "LOCAL_RANK" in environ:
            found[int(environ["RANK"])] = int(proc.name)
    return found


def wait_until_gone(ws: Workspace, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while worker_pids(ws):
        assert time.monotonic() < deadline, f"training processes left running: {worker_pids(ws)}"
        time.sleep(0.2)


@pytest.mark.parametrize("stop", ["SIGTERM to the group", "SIGKILL to rank 1"])
def test_stopping_any_process_ends_the_stage_and_its_run(tmp_path: Path, stop: str) -> None:
    ws = Workspace(tmp_path / "ws", extra={**SLOWER, "train": {**SLOWER["train"], "processes": 2}})
    ws.run("dvc", "repro", "prepare")
    process = ws.start("dvc", "repro", "train")
    wait_for_first_epoch(ws, process)
    if stop == "SIGTERM to the group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        os.kill(worker_pids(ws)[1], signal.SIGKILL)  # a crash of one process only
    start = time.monotonic()
    stdout, stderr = process.communicate(timeout=120)
    print(stdout[-2000:], stderr[-3000:])
    assert process.returncode != 0 and time.monotonic() - start < 60  # no process waits forever for another
    if stop == "SIGKILL to rank 1":
        assert "rank      : 1" in stdout + stderr and "Signal 9 (SIGKILL)" in stdout + stderr
    (run,) = metrics_by_run(ws).values()
    # SIGTERM: KILLED. A crashed peer: process 0 is told by torchrun (KILLED) or by gloo's broken link (FAILED).
    assert run.info.status == "KILLED" if stop.startswith("SIGTERM") else run.info.status in ("KILLED", "FAILED"), (
        run.info
    )
    assert resume_checkpoints(ws)  # the completed epoch is kept for a resume
    wait_until_gone(ws)
