"""Stopping training and running it again: SIGKILL resumes to the same result, SIGTERM ends the run KILLED,
a NaN loss ends it FAILED."""

import json
import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from pipeline_workspace import Workspace
from torch import nn

from carvana.core.errors import CarvanaError
from carvana.model.device import Precision
from carvana.model.losses import bce_dice_loss
from carvana.tracking.runs import training_run
from carvana.training.loop import Fit, train_epoch
from carvana.training.schedule import lr_scheduler

pytestmark = pytest.mark.e2e

# Slow enough per epoch (a few seconds) for the test to stop it between two epochs.
SLOWER = {"prepare": {"image_height": 64, "image_width": 96}, "train": {"epochs": 4, "batch_size": 4}}


def resume_checkpoints(ws: Workspace) -> list[Path]:
    return list((ws.root / ".dvc" / "tmp" / "carvana-resume").glob("*/last.pt"))


def wait_for_first_epoch(ws: Workspace, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not resume_checkpoints(ws):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.05)


def metric_steps(ws: Workspace, run_id: str, key: str) -> list[int]:
    return [m.step for m in MlflowClient(ws.tracking_uri).get_metric_history(run_id, key)]


def killed_after_an_epoch(root: Path) -> Workspace:
    """A workspace whose `dvc repro train` was SIGKILLed after its first epoch."""
    killed = Workspace(root, extra=SLOWER)
    killed.run("dvc", "repro", "prepare")
    process = killed.start("dvc", "repro", "train")
    wait_for_first_epoch(killed, process)
    os.killpg(process.pid, signal.SIGKILL)  # the machine dies: nothing gets to clean up
    process.wait()
    assert not (killed.root / "stages/train/metrics.json").exists()
    return killed


@pytest.mark.numerics
def test_killed_training_resumes_to_the_same_metrics(tmp_path):
    reference = Workspace(tmp_path / "reference", extra=SLOWER)
    reference.run("dvc", "repro", "train")
    killed = killed_after_an_epoch(tmp_path / "killed")

    resumed = killed.run("dvc", "repro", "train")
    assert "resuming after epoch" in resumed.stdout
    before = reference.json("stages/train/metrics.json")
    after = killed.json("stages/train/metrics.json")
    print(json.dumps({"uninterrupted": before, "killed and resumed": after}, indent=1))
    assert after == before
    assert not resume_checkpoints(killed)  # cleaned up once the outputs are written
    runs = MlflowClient(killed.tracking_uri).search_runs([mlflow_experiment_id(killed)])
    assert len(runs) == 1  # the resumed training continued the same MLflow run
    assert metric_steps(killed, runs[0].info.run_id, "val_dice") == [1, 2, 3, 4]


def change_the_data(ws: Workspace) -> str:
    params = yaml.safe_load((ws.root / "params.yaml").read_text())
    params["download"]["synthetic"]["width"] = 232
    (ws.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return "params download.synthetic.width and the prepared data (stages/prepare) changed since"


def change_the_code(ws: Workspace) -> str:
    with open(ws.root / "carvana" / "model" / "losses.py", "a") as losses:
        losses.write("# an edit\n")
    return "the train stage's code changed since"


@pytest.mark.parametrize("change", [change_the_data, change_the_code])
def test_a_changed_run_starts_over(tmp_path, change):
    killed = killed_after_an_epoch(tmp_path / "killed")
    (abandoned,) = MlflowClient(killed.tracking_uri).search_runs([mlflow_experiment_id(killed)])
    what = change(killed)
    rerun = killed.run("dvc", "repro", "train")
    assert f"train: not resuming the run interrupted after epoch 1: {what}; starting from epoch 1" in rerun.stdout
    client = MlflowClient(killed.tracking_uri)
    assert client.get_run(abandoned.info.run_id).info.status == "KILLED"
    (new,) = [r for r in client.search_runs([mlflow_experiment_id(killed)]) if r.info.run_id != abandoned.info.run_id]
    assert new.info.status == "FINISHED" and metric_steps(killed, new.info.run_id, "val_dice") == [1, 2, 3, 4]


def mlflow_experiment_id(ws: Workspace) -> str:
    return MlflowClient(ws.tracking_uri).get_experiment_by_name("carvana").experiment_id


def test_sigterm_keeps_the_checkpoint_and_marks_the_run_killed(tmp_path):
    ws = Workspace(tmp_path / "ws", extra=SLOWER)
    ws.run("dvc", "repro", "prepare")
    process = ws.start("python", "-m", "carvana.train")
    wait_for_first_epoch(ws, process)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr
    assert resume_checkpoints(ws)
    (run,) = MlflowClient(ws.tracking_uri).search_runs([mlflow_experiment_id(ws)])
    assert run.info.status == "KILLED"


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.weight


def test_nan_loss_stops_training_with_a_clear_error():
    model = NaNModel()
    optimizer = torch.optim.Adam(model.parameters())
    loader = [(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8))]
    fit = Fit(
        model=model,
        step=model,
        optimizer=optimizer,
        scheduler=lr_scheduler(optimizer, "constant", 1, 1),
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        loss_fn=bce_dice_loss,
        device=torch.device("cpu"),
        precision=Precision("cpu", None),
    )
    with pytest.raises(CarvanaError, match="loss became nan at epoch 3; lower `train.lr`"):
        train_epoch(fit, loader, epoch=3)


def test_a_failing_stage_marks_its_run_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(CarvanaError), training_run({"train.lr": 1.0}) as run:
        raise CarvanaError("train: loss became nan")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"
    mlflow.set_tracking_uri(None)
