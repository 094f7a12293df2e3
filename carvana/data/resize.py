"""Decode a photo and its mask and resize them to the model's resolution.

JPEGs are decoded with libjpeg's DCT scaling (PIL draft mode) to the smallest power-of-two reduction still
at least the target size, then resized with an anti-aliasing filter: several times faster than a full
decode, and within a grey level or two of it. Masks are resized as greyscale and re-thresholded at one
half, which keeps edges where the area-weighted majority puts them.
"""

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from carvana.data.imageio import QUARTER_TURNED, open_image, orientation, read_mask, rgb, upright

RESAMPLE = Image.Resampling.BILINEAR  # PIL widens the kernel when shrinking: an anti-aliased resize


def load_photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 at size = (height, width)."""
    return load_photo_sized(path, size)[1]


def load_photo_sized(
    source: Path | BinaryIO, size: tuple[int, int], name: str | None = None
) -> tuple[tuple[int, int], np.ndarray]:
    """The photo's own (height, width) as shown (upright), and the upright photo at size = (height, width)."""
    height, width = size
    with open_image(source, name=name) as image:
        turned = orientation(image) in QUARTER_TURNED
        original = (image.width, image.height) if turned else (image.height, image.width)
        image.draft("RGB", (height, width) if turned else (width, height))  # the stored pixels' axes
        return original, np.asarray(rgb(upright(image)).resize((width, height), RESAMPLE))


def resize_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An already decoded (H, W, 3) photo at size = (height, width)."""
    height, width = size
    return np.asarray(Image.fromarray(photo).resize((width, height), RESAMPLE))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) {0,1} uint8 at size = (height, width)."""
    height, width = size
    grey = Image.fromarray(mask * 255).resize((width, height), RESAMPLE)
    return (np.asarray(grey) >= 128).astype(np.uint8)


def load_pair(image_path: Path, mask_path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return load_photo(image_path, size), resize_mask(read_mask(mask_path), size)
