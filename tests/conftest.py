import base64
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from carvana.core.params import TrainParams, parse
from carvana.data.imageio import mask_image
from carvana.model.checkpoint import save_checkpoint
from carvana.model.unet import UNet

REPO = Path(__file__).resolve().parents[1]
# the U-Net's variants every export must carry: (train.model.space_to_depth, train.model.block)
NETWORKS = [(1, "conv"), (2, "conv"), (1, "separable")]
NETWORK_IDS = ["plain", "space-to-depth stem", "separable"]
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def write_pair(root: Path, image_id: str, size: tuple[int, int] = (48, 64), seed: int = 0) -> None:
    """A small photo/mask pair in Kaggle layout: a bright box (the 'car') on a dark background."""
    height, width = size
    mask = np.zeros(size, dtype=np.uint8)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    rng = np.random.default_rng(seed)
    photo = (mask[..., None] * 180 + rng.integers(0, 40, (height, width, 3))).astype(np.uint8)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "train_masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(root / "train" / f"{image_id}.jpg", quality=95)
    mask_image(mask).save(root / "train_masks" / f"{image_id}_mask.gif", format="GIF")


def train_params(**changes: object) -> TrainParams:
    """The repository's train params with `changes` (fp32 unless told: figures alike on every CPU kind)."""
    base = parse(yaml.safe_load((REPO / "params.yaml").read_text())).train
    return base.model_copy(update={"precision": "fp32"} | changes)


def untrained_checkpoint(
    path: Path,
    size: tuple[int, int] = (16, 24),
    features: tuple[int, ...] = (4, 8),
    space_to_depth: int = 1,
    block: str = "conv",
) -> Path:
    """A U-Net checkpoint straight from its (seeded) initialisation: for the code paths that need a model."""
    torch.manual_seed(0)
    config = {"in_channels": 3, "out_channels": 1, "features": list(features)}
    config |= {"space_to_depth": space_to_depth, "block": block}
    save_checkpoint(path, {"model_config": config, "image_size": list(size), "model": UNet(**config).state_dict()})
    return path


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose header claims width x height pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "grey").save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_declaring(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "grey").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def photo_frame(*photos: Path) -> pd.DataFrame:
    """What the served model takes: each photo's file bytes, base64-encoded, in column `image`."""
    return pd.DataFrame({"image": [base64.b64encode(photo.read_bytes()).decode("ascii") for photo in photos]})


@pytest.fixture(scope="session", autouse=True)
def backend_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """predict --backend auto's measurements (carvana.inference.fastest) in the session's folder, not ~/.cache."""
    os.environ["CARVANA_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """3 cars x 2 views of tiny pairs."""
    root = tmp_path / "data"
    for car in ("0aaaaaaaaaaa", "0bbbbbbbbbbb", "0ccccccccccc"):
        for view in (1, 2):
            write_pair(root, f"{car}_{view:02d}")
    return root


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """One real `dvc repro` of the whole pipeline on tiny synthetic data, shared by the end-to-end tests."""
    from pipeline_workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("pipeline"))
    workspace.run("dvc", "repro")
    return workspace


@pytest.fixture
def repo_params() -> dict:
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())
