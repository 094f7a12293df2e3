"""File naming of the Kaggle Carvana training set: train/<car>_<NN>.jpg and train_masks/<car>_<NN>_mask.gif."""

import re
from pathlib import Path

IMAGE_DIR = "train"
MASK_DIR = "train_masks"
VIEWS_PER_CAR = 16
# Kaggle's cars are 12 hex digits; a team's own may be any name of letters, digits, '-' and '_'.
IMAGE_ID = re.compile(r"^(?P<car>[A-Za-z0-9][A-Za-z0-9_-]*)_(?P<view>\d{2})$")
ID_RULE = "<car>_<NN> (car: letters, digits, '-' or '_'; NN: two digits)"
PHOTO_SUFFIXES = (".jpg", ".jpeg")  # any case; stored as .jpg


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


def stored_name(folder: str, name: str) -> str | None:
    """The name a source file gets in the Kaggle layout (`X.JPG`/`X.jpeg` -> `X.jpg`), or None when it is not
    a photo or mask. Hidden names are skipped: macOS adds '._<name>.jpg' resource forks when it copies or zips."""
    if name.startswith("."):
        return None
    stem, dot, suffix = name.rpartition(".")
    if folder == IMAGE_DIR and dot and f".{suffix.lower()}" in PHOTO_SUFFIXES:
        return f"{stem}.jpg"
    if folder == MASK_DIR and name.lower().endswith("_mask.gif"):
        return f"{name[: -len('_mask.gif')]}_mask.gif"
    return None
