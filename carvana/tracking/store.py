"""The MLflow store: SQLite under <repo>/mlruns unless MLFLOW_TRACKING_URI says otherwise, and the experiment.

A tracking server is asked whether it answers before anything is tracked or looked up: one that is down is one
line within seconds (naming its URI without credentials), not minutes of MLflow's retries. MLflow's own retries
are bounded too, and its "View run at <URI>" lines, which would print credentials, are silenced.
"""

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow

from carvana.core.errors import CarvanaError
from carvana.core.lock import file_lock
from carvana.core.paths import project_root
from carvana.core.redact import redact, redact_text

MLFLOW_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
PROBES, PROBE_TIMEOUT = 3, 4.0  # a server that does not answer is refused after about 15 s

EXPERIMENT = "carvana"


def local_store() -> Path:
    return project_root() / "mlruns"


def local_store_uri() -> str:
    return f"sqlite:///{local_store() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def connect() -> str:
    """Point MLflow at the store (after checking that a tracking server answers) and return its URI."""
    for key, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
    mlflow.set_tracking_uri(uri)  # note: MLflow exports it as MLFLOW_TRACKING_URI from here on
    return uri


def check_reachable(uri: str) -> None:
    """The server answers its /health page (any HTTP answer will do: it is up), within PROBES tries."""
    parts = urlsplit(uri)
    health = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/") + "/health", "", ""))
    reason = ""
    for attempt in range(PROBES):
        try:
            with urllib.request.urlopen(health, timeout=PROBE_TIMEOUT):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as error:
            reason = str(getattr(error, "reason", error))
        if attempt < PROBES - 1:
            time.sleep(1)
    raise CarvanaError(
        f"the tracking server {redact(uri)} does not answer ({redact_text(reason)}); start it (`make server`), or "
        "point MLFLOW_TRACKING_URI at one that runs, or unset it to track into ./mlruns"
    )


def artifact_location(uri: str) -> str | None:
    """Absolute artifact folder for the local store; a remote server decides its own."""
    return (local_store() / "artifacts").as_uri() if uri == local_store_uri() else None


def setup() -> str:
    """Point MLflow at the store and return the experiment id, creating the experiment if needed.

    The experiment is created here with an absolute artifact location: left to MLflow, the first run made
    inside a DVC temp copy would pin the artifacts into that copy, which DVC deletes.
    """
    uri = connect()
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
    with file_lock(local_store() / ".setup.lock"):
        yield
