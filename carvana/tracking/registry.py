"""MLflow model registry: every trained model becomes a version of one registered model, and the alias
`champion` points at the version with the best full-resolution val dice (`models:/carvana-unet@champion`).

What is registered is the served model (carvana/inference/serving.py: photos in, masks out); the run also holds
the plain PyTorch module (tensors in, logits out), logged but not registered.
"""

import base64
import io
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from PIL import Image

from carvana.inference.serving import CHECKPOINT, IMAGE, SIGNATURE
from carvana.model.checkpoint import build_model, load_checkpoint

MODEL_NAME = "carvana-unet"
CHAMPION = "champion"
SCORE = "eval_dice_full"
SERVED = "model"  # the logged models' names in the run
PYTORCH = "unet"
PACKAGE = Path(__file__).resolve().parents[1]  # shipped with logged models so they load without this repo
SERVED_CODE = PACKAGE / "inference" / "served_model.py"
SERVED_NEEDS = ("torch", "mlflow", "numpy", "pandas", "pillow", "opencv-python-headless")


def log_model(checkpoint: Path, example: np.ndarray) -> None:
    """The model in `checkpoint` into the active run: as the PyTorch module, and as the served model, registered
    as a new version of MODEL_NAME. `example` is a real photo at the model's resolution ((H, W, 3) uint8)."""
    log_pytorch(build_model(load_checkpoint(checkpoint), checkpoint), example.shape[:2])
    mlflow.pyfunc.log_model(
        name=SERVED,
        input_example=pd.DataFrame({IMAGE: [jpeg_base64(example)]}),
        registered_model_name=MODEL_NAME,
        **served_model(checkpoint),
    )


def served_model(checkpoint: Path) -> dict[str, Any]:
    """What mlflow.pyfunc.log_model / save_model take to make the served model of `checkpoint`."""
    return {
        "python_model": str(SERVED_CODE),
        "artifacts": {CHECKPOINT: str(checkpoint)},
        "signature": SIGNATURE,
        "pip_requirements": pinned(*SERVED_NEEDS),
        "code_paths": [str(PACKAGE)],
    }


def log_pytorch(model: torch.nn.Module, size: tuple[int, int]) -> None:
    """`model` (on the CPU, in eval mode) as an MLflow PyTorch model, with a signature from an input example.

    MLflow saves it with torch.export, which fixes every dimension of size 1 in the example: a batch of two
    keeps the batch size free.
    """
    example = np.zeros((2, 3, *size), dtype=np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    mlflow.pytorch.log_model(
        model,
        name=PYTORCH,
        input_example=example,
        signature=infer_signature(example, output),
        pip_requirements=pinned("torch", "mlflow"),
        code_paths=[str(PACKAGE)],
    )


def jpeg_base64(photo: np.ndarray) -> str:
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, format="JPEG", quality=90)
    return base64.b64encode(jpeg.getvalue()).decode("ascii")


def pinned(*distributions: str) -> list[str]:
    """`name==version` of each installed distribution, without local labels (torch's `+cpu` is no PyPI version)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in distributions]


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
