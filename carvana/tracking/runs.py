"""The one MLflow run per trained model: train opens it, evaluate and render_masks continue it."""

import atexit
import contextlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from carvana.core.interrupts import Interrupted, deferred
from carvana.core.paths import workspace_root
from carvana.tracking.store import setup


def run_tags(stage: str) -> dict[str, str]:
    tags = {"stage": stage, "git.commit": git_commit()}
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return {key: value for key, value in tags.items() if value}


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


@contextmanager
def continue_run(run_id: str, stage: str) -> Iterator[Run]:
    """Reopen the run that trained the model, so one run holds train, evaluate and render_masks.

    When the store lacks it (outputs restored from a DVC cache or remote on another machine), a new run
    is started and tagged with the origin run id instead of failing.
    """
    setup()
    if run_exists(run_id):
        with active_run(run_id=run_id) as run:
            mlflow.set_tag(f"{stage}.git.commit", git_commit())
            yield run
        return
    tags = {**run_tags(stage), "origin_run_id": run_id}
    with active_run(run_name=os.environ.get("DVC_EXP_NAME"), tags=tags) as run:
        yield run


@contextmanager
def active_run(**start_run_args: Any) -> Iterator[Run]:
    """mlflow.start_run that ends the run KILLED when the stage is stopped by a signal and FAILED on an error.

    A stop signal can also land while the run is being ended (under torchrun, a failing process gets stopped as it
    fails), cutting that short: then the run is ended as the process exits, in the store it was started in (by then
    MLflow's global URI may say another, or none: its default, an `mlflow.db` in the working directory).
    """
    with mlflow.start_run(**start_run_args) as run:
        atexit.register(end_if_running, run.info.run_id, mlflow.get_tracking_uri())
        try:
            yield run
        except BaseException as error:
            with deferred():
                mlflow.end_run("KILLED" if isinstance(error, Interrupted) else "FAILED")
            raise


def end_if_running(run_id: str, tracking_uri: str) -> None:
    with contextlib.suppress(Exception):
        client = MlflowClient(tracking_uri)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")


def end_abandoned(run_id: str) -> None:
    """Mark the run of an interrupted training that will never be resumed as KILLED, if it still says RUNNING."""
    setup()
    end_if_running(run_id, mlflow.get_tracking_uri())


def run_exists(run_id: str) -> bool:
    """The store holds the run and it is not deleted (a deleted run can take no more metrics)."""
    try:
        return mlflow.get_run(run_id).info.lifecycle_stage != "deleted"
    except MlflowException:
        return False
