"""What `--model` may name: a checkpoint file, a registered model (`models:/carvana-unet@champion`,
`models:/carvana-unet/3`) or an MLflow run id; by default the champion when a tracking store is reachable,
else this workspace's `stages/train/checkpoints/best.pt`.

Registered models and runs are read through their `checkpoints/best.pt` artifact: weights and model config,
loaded with `weights_only=True`, never unpickled code.
"""

import os
import re
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from carvana.core.errors import CarvanaError
from carvana.core.outputs import checkpoint_path, read_run_id, scored_model_path
from carvana.core.paths import project_root
from carvana.core.redact import redact, redact_text
from carvana.inference.openvino_backend import XML
from carvana.tracking.registry import CHAMPION, MODEL_NAME
from carvana.tracking.runs import run_exists
from carvana.tracking.store import connect, tracking_uri

DEFAULT = f"models:/{MODEL_NAME}@{CHAMPION}"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def default_reference() -> str:
    """The champion of the tracking server when one is set (never silently another model: a server that is down
    or has no champion is an error); with none set, the local store's champion, else the workspace's best
    checkpoint."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        run_of(DEFAULT)
        return DEFAULT
    if store_configured():
        try:
            run_of(DEFAULT)
            return DEFAULT
        except CarvanaError:
            pass
    return str(scored_model_path() if scored_model_path().exists() else checkpoint_path("best.pt"))


def store_configured() -> bool:
    """A tracking server is set, or the local store exists (looking a run up in it must not create it)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or (project_root() / "mlruns" / "mlflow.db").exists()


SCORED, TRAINED = "evaluate/model.pt", "checkpoints/best.pt"  # a run's checkpoints: as evaluate scored it, as trained


def local_file(reference: str) -> Path:
    """The checkpoint (or exported model) file `reference` names, downloaded from MLflow if need be: the run's
    model as evaluate scored it (with its inference settings), else as train left it."""
    if names_a_run(reference):
        run_id = run_of(reference)
        listed = {artifact.path for artifact in MlflowClient().list_artifacts(run_id, "evaluate")}
        artifact = SCORED if SCORED in listed else TRAINED
        try:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact))
        except (MlflowException, OSError) as error:
            raise CarvanaError(f"--model {reference}: run {run_id} has no {artifact} ({error})") from None
    path = Path(reference).expanduser()
    if not (path.is_file() or (path / XML).is_file()):
        raise CarvanaError(
            f"--model {reference}: no such file; give a checkpoint (.pt), an exported .onnx or OpenVINO folder, "
            f"{DEFAULT} (or another models:/ URI) or a run id"
        )
    return path


def names_a_run(reference: str) -> bool:
    """A models:/ URI or a run id, rather than a file."""
    return reference.startswith("models:/") or bool(RUN_ID.match(reference))


def run_of(reference: str) -> str:
    """The MLflow run that trained the model `reference` (models:/ URI or run id) names."""
    connect()
    client = MlflowClient()
    try:
        if RUN_ID.match(reference):
            return client.get_run(reference).info.run_id
        name, _, version = reference.removeprefix("models:/").partition("/")
        if "@" in name:
            name, alias = name.split("@", 1)
            return client.get_model_version_by_alias(name, alias).run_id
        if version == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise CarvanaError(f"--model {reference}: the tracking store has no versions of {name}")
            return max(versions, key=lambda v: int(v.version)).run_id
        return client.get_model_version(name, version).run_id
    except MlflowException as error:
        raise CarvanaError(
            f"--model {reference}: not found in the tracking store {redact(tracking_uri())} "
            f"({redact_text(error.message)})"
        ) from None


def trained_by(reference: str) -> str | None:
    """The MLflow run that trained the model `reference` names, if the store holds it: the run of a models:/ URI
    or run id, or for this workspace's checkpoints (trained or scored) the run in stages/train/mlflow_run.json. None
    otherwise (any other file, or a workspace whose run is not in this store)."""
    if names_a_run(reference):
        return run_of(reference)
    workspace_models = {checkpoint_path("best.pt").resolve(), scored_model_path().resolve()}
    if Path(reference).expanduser().resolve() not in workspace_models or not store_configured():
        return None
    try:
        run_id = read_run_id()
    except CarvanaError:
        return None
    connect()
    return run_id if run_exists(run_id) else None
