"""The photos the benchmarks run on, and their arrays prepared at a model's resolution.

By default the 256 real Carvana pairs in ../shared/carvana-sample (next to the repository), else a synthetic
set at Kaggle's 1918x1280 in a temp folder. The shared data is only read, never copied.
"""

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from carvana.data.layout import VIEWS_PER_CAR, image_ids, image_path, mask_path
from carvana.prepare import prepare_split
from carvana.sources.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "carvana-sample"


def default_data(work: Path, images: int, seed: int) -> Path:
    """The shared real sample when present, else enough synthetic cars for `images` pairs, made in `work`."""
    if SHARED_SAMPLE.is_dir():
        return SHARED_SAMPLE
    root = work / "synthetic"
    generate(root, cars=math.ceil(images / VIEWS_PER_CAR), width=1918, height=1280, seed=seed)
    return root


def pick_ids(root: Path, images: int) -> list[str]:
    """The first `images` pairs, with their files read once so no benchmark pays for the first disk read."""
    ids = image_ids(root)[:images]
    if not ids:
        raise SystemExit(f"error: {root} holds no photos in Kaggle layout (train/<id>.jpg, train_masks/<id>_mask.gif)")
    for image_id in ids:
        image_path(root, image_id).read_bytes()
        mask_path(root, image_id).read_bytes()
    return ids


def photo_size(root: Path, image_id: str) -> tuple[int, int]:
    """(height, width) of a photo, from its header."""
    with Image.open(image_path(root, image_id)) as image:
        return image.height, image.width


def prepared_folder(root: Path, ids: list[str], size: tuple[int, int], work: Path) -> Path:
    """The prepare stage's output for ids at size (images.npy, masks.npy, ids.txt), made once per size by its code."""
    out = work / f"prepared-{size[0]}x{size[1]}"
    if not out.exists():
        prepare_split(root, ids, out, size, workers=os.cpu_count() or 1)
    return out


def prepared_arrays(root: Path, ids: list[str], size: tuple[int, int], work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Photos (N,H,W,3) and masks (N,H,W) at size, from prepared_folder, memory-mapped."""
    out = prepared_folder(root, ids, size, work)
    return np.load(out / "images.npy", mmap_mode="r"), np.load(out / "masks.npy", mmap_mode="r")
