"""MLflow: the store (SQLite under <repo>/mlruns unless MLFLOW_TRACKING_URI says otherwise), the
experiment, and the one run per trained model that train opens and evaluate/render_masks continue."""

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from carvana.atomic import write_json
from carvana.interrupts import Interrupted
from carvana.paths import project_root, workspace_root

EXPERIMENT = "carvana"
RUN_FILE = "mlflow_run.json"


def local_store_uri() -> str:
    store = project_root() / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def artifact_location(uri: str) -> str | None:
    """Absolute artifact folder for the local store; a remote server decides its own."""
    return (project_root() / "mlruns" / "artifacts").as_uri() if uri == local_store_uri() else None


def setup() -> str:
    """Point MLflow at the store and return the experiment id, creating the experiment if needed.

    The experiment is created here with an absolute artifact location: left to MLflow, the first run made
    inside a DVC temp copy would pin the artifacts into that copy, which DVC deletes.
    """
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)  # note: MLflow exports it as MLFLOW_TRACKING_URI from here on
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    with store_lock(uri):
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location(uri))
        else:
            experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise the first creation of the local store and experiment between parallel stages (queued
    experiments run side by side): two processes creating the SQLite schema at once collide."""
    if uri != local_store_uri():
        yield
        return
    with open(project_root() / "mlruns" / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_tags(stage: str) -> dict[str, str]:
    tags = {"stage": stage, "git.commit": git_commit()}
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return {key: value for key, value in tags.items() if value}


def package_dir() -> str:
    """The carvana package folder, shipped with logged models so they load without this repo."""
    return str(Path(__file__).parent)


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=workspace_root(), capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return result.stdout.strip()


@contextmanager
def training_run(params: dict[str, Any], resume_run_id: str | None = None) -> Iterator[Run]:
    """Open the model's run, named after the DVC experiment when there is one; or reopen the run of an
    interrupted training that is being resumed."""
    setup()
    mlflow.enable_system_metrics_logging()
    if "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ:
        mlflow.set_system_metrics_sampling_interval(5)
    if resume_run_id and run_exists(resume_run_id):
        with active_run(run_id=resume_run_id) as run:
            yield run
        return
    with active_run(run_name=os.environ.get("DVC_EXP_NAME"), tags=run_tags("train")) as run:
        mlflow.log_params(params)
        yield run


def write_run_file(path: Path, run: Run) -> None:
    write_json(path, {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id})


@contextmanager
def continue_run(run_file: Path, stage: str) -> Iterator[Run]:
    """Reopen the run that trained the model, so one run holds train, evaluate and render_masks.

    When the store lacks it (outputs restored from a DVC cache or remote on another machine), a new run
    is started and tagged with the origin run id instead of failing.
    """
    setup()
    origin = json.loads(run_file.read_text())["run_id"]
    if run_exists(origin):
        with active_run(run_id=origin) as run:
            mlflow.set_tag(f"{stage}.git.commit", git_commit())
            yield run
        return
    tags = {**run_tags(stage), "origin_run_id": origin}
    with active_run(run_name=os.environ.get("DVC_EXP_NAME"), tags=tags) as run:
        yield run


@contextmanager
def active_run(**start_run_args: Any) -> Iterator[Run]:
    """mlflow.start_run that ends the run KILLED, not FAILED, when the stage is stopped by a signal."""
    with mlflow.start_run(**start_run_args) as run:
        try:
            yield run
        except Interrupted:
            mlflow.end_run("KILLED")
            raise


def run_exists(run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        return False
    return True
