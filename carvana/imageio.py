"""Reading and writing Carvana photos (RGB JPEG) and masks (palette GIF, pixel values 0/1)."""

from pathlib import Path

import numpy as np
from PIL import Image

from carvana.atomic import atomic_write
from carvana.errors import CarvanaError

# Kaggle's masks are palette GIFs whose index 0 is black (background) and 1 is white (car).
MASK_PALETTE = [0, 0, 0, 255, 255, 255]


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB; a file that does not fully decode raises CarvanaError naming it."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise CarvanaError(f"{path}: cannot decode image ({error}); replace or remove the file") from error


def read_mask(path: Path) -> np.ndarray:
    """HxW uint8 in {0, 1}. Reads palette GIFs through their palette, so index order does not matter."""
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as error:
        raise CarvanaError(f"{path}: cannot decode mask ({error}); replace or remove the file") from error
    values = np.unique(grey)
    if not set(values.tolist()) <= {0, 255} and not set(values.tolist()) <= {0, 1}:
        raise CarvanaError(f"{path}: mask is not binary (values {values[:6].tolist()}...); masks must be black/white")
    return (grey > 0).astype(np.uint8)


def mask_image(mask: np.ndarray) -> Image.Image:
    """A {0,1} HxW array as a Kaggle-style palette image."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(MASK_PALETTE)
    return image


def write_mask_gif(path: Path, mask: np.ndarray) -> None:
    atomic_write(path, lambda tmp: mask_image(mask).save(tmp, format="GIF"))
