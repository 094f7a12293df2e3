"""What a prediction becomes, one writer per kind of output: Kaggle's mask GIFs, a submission CSV, cut-outs with a
transparent background, and the car on a new background.

A writer's `write` runs in a worker thread, once per photo, and returns a value; `collect` receives those values in
photo order in the caller's thread (the submission's rows). Every file is written whole or not at all, and a
stopped run leaves no half-written submission behind (`abort`).
"""

import csv
import gzip
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
from PIL import Image, ImageColor

from carvana.core.atomic import atomic_write, prepared_parent, temp_prefix
from carvana.core.errors import CarvanaError
from carvana.data.imageio import mask_image, read_image
from carvana.inference import rle
from carvana.inference.photos import AnyPhoto

SOFT_EDGE = 0.5  # cut-out alpha ramps from transparent to opaque over this span of probability around the threshold


@dataclass
class Prediction:
    photo: AnyPhoto
    probability: np.ndarray  # (height, width) float32 at the photo's own size
    threshold: float

    @cached_property
    def mask(self) -> np.ndarray:
        return (self.probability > self.threshold).astype(np.uint8)

    @cached_property
    def rgb(self) -> np.ndarray:
        """The photo itself, decoded at full size (only the writers that show it need it)."""
        return read_image(self.photo.open(), name=self.photo.name)

    def alpha(self, hard: bool) -> np.ndarray:
        """Opacity in [0, 1]: the mask, or a soft edge from the upsampled probability."""
        if hard:
            return self.mask.astype(np.float32)
        return np.clip((self.probability - self.threshold) / SOFT_EDGE + 0.5, 0, 1)


class Writer(Protocol):
    key: str  # names what `write` returns in an engine Outcome's values

    def check(self, photo: AnyPhoto, width: int, height: int) -> None:
        """Refuse (CarvanaError) a photo this writer's format cannot hold, before any writer writes it."""
        ...

    def write(self, prediction: Prediction) -> Any: ...

    def collect(self, photo: AnyPhoto, value: Any) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class PerPhoto:
    """Writers of one output per photo (a file, complete when it appears, or a value), with nothing to finish."""

    limit: int | None = None  # the most pixels a side the output's format holds
    format_name = ""

    def check(self, photo: AnyPhoto, width: int, height: int) -> None:
        if self.limit is not None and max(width, height) > self.limit:
            raise CarvanaError(
                f"{photo.name}: {width}x{height} is more than the {self.limit} pixels a side {self.format_name} "
                "holds; leave it out or shrink it"
            )

    def collect(self, photo: AnyPhoto, value: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class MaskGifs(PerPhoto):
    """<id>_mask.gif at the photo's size: Kaggle's palette GIF, values 0/1."""

    key, limit, format_name = "masks", 65535, "GIF"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def name(image_id: str) -> str:
        return f"{image_id}_mask.gif"

    def write(self, prediction: Prediction) -> None:
        path = self.folder / self.name(prediction.photo.image_id)
        atomic_write(path, lambda tmp: mask_image(prediction.mask).save(tmp, format="GIF"))


class Cutouts(PerPhoto):
    """<id>.png (or .webp): the car opaque, the background transparent."""

    key = "cutouts"

    def __init__(self, folder: Path, hard: bool, image_format: str = "png") -> None:
        self.folder, self.hard, self.format = folder, hard, image_format
        self.limit, self.format_name = (16383, "WebP") if image_format == "webp" else (None, "PNG")

    @staticmethod
    def name(image_id: str, image_format: str) -> str:
        return f"{image_id}.{image_format}"

    def write(self, prediction: Prediction) -> None:
        path = self.folder / self.name(prediction.photo.image_id, self.format)
        atomic_write(path, lambda tmp: save_cutout(prediction, self.hard, tmp, self.format))


def save_cutout(prediction: Prediction, hard: bool, target: Path | BinaryIO, image_format: str = "png") -> None:
    """The photo with the car opaque and the background transparent, as RGBA PNG (or WebP) into `target`."""
    alpha = (prediction.alpha(hard) * 255).round().astype(np.uint8)
    image = Image.fromarray(np.dstack([prediction.rgb, alpha]))
    # zlib level 1: a third of the default's encoding time for a few percent more bytes
    image.save(target, format=image_format.upper(), compress_level=1)


class Backgrounds(PerPhoto):
    """<id>.jpg: the car composited onto a colour or onto another photo (scaled to cover the frame)."""

    key, limit, format_name = "composites", 65535, "JPEG"

    def __init__(self, folder: Path, background: str, hard: bool) -> None:
        self.folder, self.hard = folder, hard
        self.colour, self.photo = parse_background(background)

    @staticmethod
    def name(image_id: str) -> str:
        return f"{image_id}.jpg"

    def write(self, prediction: Prediction) -> None:
        height, width = prediction.probability.shape
        behind = self.backdrop(width, height)
        alpha = prediction.alpha(self.hard)[..., None]
        picture = (alpha * prediction.rgb + (1 - alpha) * behind).round().astype(np.uint8)
        path = self.folder / self.name(prediction.photo.image_id)
        atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="JPEG", quality=92))

    def backdrop(self, width: int, height: int) -> np.ndarray:
        if self.photo is None:
            return np.array(self.colour, dtype=np.float32)
        scale = max(width / self.photo.width, height / self.photo.height)
        size = (round(self.photo.width * scale), round(self.photo.height * scale))
        resized = self.photo.resize(size, Image.Resampling.BILINEAR)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.float32)


def parse_background(spec: str) -> tuple[tuple[int, int, int] | None, Image.Image | None]:
    """A colour (`white`, `#1e90ff`, `rgb(0,128,255)`) or the path of a photo."""
    if Path(spec).expanduser().is_file():
        return None, Image.fromarray(read_image(Path(spec).expanduser()))
    try:
        return ImageColor.getrgb(spec)[:3], None
    except ValueError:
        raise CarvanaError(
            f"--background {spec!r} is neither a colour (a name like white, #1e90ff, rgb(0,128,255)) nor a photo"
        ) from None


class Rle(PerPhoto):
    """The mask as Kaggle's run-length encoding: a value per photo, for a submission to collect."""

    key = "submission"

    def write(self, prediction: Prediction) -> str:
        return rle.encode(prediction.mask)


class Submission(Rle):
    """Kaggle's submission: `img,rle_mask` rows in photo order, `.csv` or `.csv.gz` (written by the csv module: an id
    with a comma or a quote is quoted); it appears when complete."""

    def __init__(self, path: Path) -> None:
        if not path.name.endswith((".csv", ".csv.gz")):
            raise CarvanaError(f"--submission {path}: name it .csv or .csv.gz")
        self.path = path
        self.tmp = prepared_parent(path) / f"{temp_prefix(path)}{os.urandom(4).hex()}"
        opener = gzip.open if path.name.endswith(".gz") else open
        self.file = opener(self.tmp, "wt", newline="")
        self.rows = csv.writer(self.file, lineterminator="\n")
        self.rows.writerow(["img", "rle_mask"])

    def collect(self, photo: AnyPhoto, value: Any) -> None:
        self.add_row(photo.image_id, value)

    def add_row(self, image_id: str, encoded: str) -> None:
        self.rows.writerow([f"{image_id}.jpg", encoded])

    def close(self) -> None:
        self.file.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)
