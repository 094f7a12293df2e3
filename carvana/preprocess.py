"""Decode each photo and mask once and resize it to the model's resolution.

JPEGs are decoded with libjpeg's DCT scaling (PIL draft mode) to the smallest power-of-two reduction
still at least the target size, then resized with an anti-aliasing filter: far faster than a full decode
and visually the same. Masks are resized as greyscale and re-thresholded at one half, which keeps edges
where the area-weighted majority puts them.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from carvana.errors import CarvanaError
from carvana.imageio import read_mask


def load_photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 at size = (height, width)."""
    height, width = size
    try:
        with Image.open(path) as image:
            image.draft("RGB", (width, height))
            return np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    except (OSError, SyntaxError, ValueError) as error:
        raise CarvanaError(f"{path}: cannot decode image ({error}); replace or remove the file") from error


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) {0,1} uint8 at size = (height, width)."""
    height, width = size
    grey = Image.fromarray(mask * 255).resize((width, height), Image.Resampling.BILINEAR)
    return (np.asarray(grey) >= 128).astype(np.uint8)


def load_pair(paths: tuple[Path, Path], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    image_path, mask_path = paths
    return load_photo(image_path, size), resize_mask(read_mask(mask_path), size)


def load_pairs(
    pairs: Sequence[tuple[Path, Path]], size: tuple[int, int], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Photos (N, H, W, 3) and masks (N, H, W) as uint8, decoded in parallel across cores."""
    workers = workers or os.cpu_count() or 1
    load = partial(load_pair, size=size)
    if workers == 1 or len(pairs) < 8:
        loaded = [load(pair) for pair in pairs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            loaded = list(pool.map(load, pairs, chunksize=8))
    images, masks = zip(*loaded)
    return np.stack(images), np.stack(masks)
