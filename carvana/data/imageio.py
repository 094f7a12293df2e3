"""Reading and writing Carvana photos (RGB JPEG) and masks (palette GIF, pixel values 0/1).

Every image is opened through `open_image`: a file that does not decode, or whose header declares more
pixels than Pillow's decompression-bomb limit (89 million; Kaggle's photos have 2.5 million), is refused
with one error naming it, before anything is decoded.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from carvana.core.atomic import atomic_write
from carvana.core.errors import CarvanaError

# Kaggle's masks are palette GIFs whose index 0 is black (background) and 1 is white (car).
MASK_PALETTE = [0, 0, 0, 255, 255, 255]
WIDE_GREY = ("I;16", "I;16L", "I;16B", "I")  # 16-bit greyscale PNGs open in these modes
ORIENTATION = 0x0112  # the EXIF tag phones write: how the stored pixels are turned relative to the photo's view
QUARTER_TURNED = (5, 6, 7, 8)  # orientations whose stored width and height are the shown height and width


@contextmanager
def open_image(source: Path | BinaryIO, what: str = "image", name: str | None = None) -> Iterator[Image.Image]:
    """Image.open of a path or file object (`name` names it in errors), with every way it can fail to open or
    decode turned into one CarvanaError."""
    name = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
        with image:
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CarvanaError(
            f"{name}: the {what} declares more than {Image.MAX_IMAGE_PIXELS:,} pixels (a corrupt header or a "
            "decompression bomb); replace or remove the file"
        ) from None
    except Image.UnidentifiedImageError:  # its message names a file object by its repr
        raise CarvanaError(
            f"{name}: cannot decode {what} (not in a format Pillow reads: JPEG, PNG, GIF, WebP, ...); replace or "
            "remove the file"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise CarvanaError(f"{name}: cannot decode {what} ({error}); replace or remove the file") from error


def rgb(image: Image.Image) -> Image.Image:
    """Any photo as 8-bit RGB; 16-bit greyscale is scaled down, not clipped to white."""
    if image.mode in WIDE_GREY:
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    return image.convert("RGB")


def orientation(image: Image.Image) -> int:
    return image.getexif().get(ORIENTATION, 1)


def upright(image: Image.Image) -> Image.Image:
    """The photo as every viewer shows it: its EXIF orientation applied (a phone's portrait photo is stored on
    its side, with orientation 6 or 8)."""
    return ImageOps.exif_transpose(image) if orientation(image) != 1 else image


def read_image(source: Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB, upright."""
    with open_image(source, name=name) as image:
        return np.asarray(rgb(upright(image)))


def read_mask(path: Path) -> np.ndarray:
    """HxW uint8 in {0, 1}. Reads palette GIFs through their palette, so index order does not matter."""
    with open_image(path, "mask") as image:
        grey = np.asarray(image.convert("L"))
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
