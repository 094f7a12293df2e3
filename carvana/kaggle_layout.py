"""File naming of the Kaggle Carvana training set: train/<car>_<NN>.jpg and train_masks/<car>_<NN>_mask.gif."""

import re
from pathlib import Path

IMAGE_DIR = "train"
MASK_DIR = "train_masks"
VIEWS_PER_CAR = 16
IMAGE_ID = re.compile(r"^(?P<car>.+)_(?P<view>\d{2})$")  # Kaggle: car = 12 hex digits


def image_path(root: Path, image_id: str) -> Path:
    return root / IMAGE_DIR / f"{image_id}.jpg"


def mask_path(root: Path, image_id: str) -> Path:
    return root / MASK_DIR / f"{image_id}_mask.gif"


def image_id(car: str, view: int) -> str:
    return f"{car}_{view:02d}"


def car_of(image_id: str) -> str:
    return image_id.rsplit("_", 1)[0]


def image_ids(root: Path) -> list[str]:
    """Sorted ids of the JPEGs under root/train."""
    return sorted(path.stem for path in (root / IMAGE_DIR).glob("*.jpg"))
