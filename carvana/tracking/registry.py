"""MLflow model registry: every trained model becomes a version of one registered model, and the alias
`champion` points at the version with the best full-resolution val dice (`models:/carvana-unet@champion`)."""

from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch import nn

MODEL_NAME = "carvana-unet"
CHAMPION = "champion"
SCORE = "eval_dice_full"
PACKAGE = Path(__file__).resolve().parents[1]  # shipped with logged models so they load without this repo


def log_model(model: nn.Module, size: tuple[int, int]) -> None:
    """`model` (in eval mode) as an MLflow PyTorch model of the active run, with a signature from a real input
    example, registered as a new version of MODEL_NAME.

    MLflow saves it with torch.export, which fixes every dimension of size 1 in the example: a batch of two
    keeps the batch size free.
    """
    example = np.zeros((2, 3, *size), dtype=np.float32)
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model(torch.from_numpy(example).to(device)).cpu().numpy()
    mlflow.pytorch.log_model(
        model.cpu(),
        name="model",
        input_example=example,
        signature=infer_signature(example, output),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        code_paths=[str(PACKAGE)],
        registered_model_name=MODEL_NAME,
    )


def promote_if_best(run_id: str, score: float) -> bool:
    """Point `champion` at this run's model version when it beats the current champion's score."""
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{run_id}'")
    if not versions:
        return False
    if score <= champion_score(client):
        return False
    latest = max(versions, key=lambda version: int(version.version))
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, latest.version)
    return True


def champion_score(client: MlflowClient) -> float:
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return float("-inf")
    return client.get_run(champion.run_id).data.metrics.get(SCORE, float("-inf"))
