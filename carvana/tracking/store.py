"""The MLflow store: SQLite under <repo>/mlruns unless MLFLOW_TRACKING_URI says otherwise, and the experiment."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from carvana.core.paths import project_root

EXPERIMENT = "carvana"


def local_store() -> Path:
    return project_root() / "mlruns"


def local_store_uri() -> str:
    return f"sqlite:///{local_store() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def artifact_location(uri: str) -> str | None:
    """Absolute artifact folder for the local store; a remote server decides its own."""
    return (local_store() / "artifacts").as_uri() if uri == local_store_uri() else None


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
    """Create the local store's folder, and serialise the first creation of the store and experiment between
    parallel stages (queued experiments run side by side): two processes creating the SQLite schema at once
    collide. A remote store is left alone: nothing is written to mlruns/."""
    if uri != local_store_uri():
        yield
        return
    local_store().mkdir(parents=True, exist_ok=True)
    with open(local_store() / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
