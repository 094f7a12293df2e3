"""Stage render_masks: overlays that show each mask over its photo (and its errors, where the truth is known), and
a contact sheet of the worst cases by dice.

By default the val photos, drawn from what evaluate wrote (stages/evaluate/masks.csv.gz and per_image.tsv: the
masks it scored, nothing predicted twice; none for a final fit); with `render_masks.images`, every photo in that
folder, predicted by the model evaluate scored, with its settings. Writes stages/render_masks/{overlays/<id>.png,
worst_cases.png}.
"""

import gzip
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
from PIL import Image

from carvana.core.atomic import atomic_dir, atomic_write
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import read_run_id, scored_model_path, stage_dir
from carvana.core.params import RenderMasksParams, flatten, load_params
from carvana.core.paths import user_path
from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.data.pictures import contact_sheet, overlay, resize_to_width
from carvana.data.resize import resize_mask
from carvana.inference import rle
from carvana.inference.engine import predict
from carvana.inference.photos import find_photos
from carvana.inference.refine import refinement
from carvana.inference.segmenter import TorchSegmenter, with_tta
from carvana.inference.writers import PerPhoto, Prediction
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import resolve_device
from carvana.tracking.runs import continue_run

THREADS = os.cpu_count() or 1  # decoding and PNG encoding release the GIL


def main() -> None:
    keep_freed_memory()
    cfg = load_params().render_masks
    run_id = read_run_id()
    out = stage_dir("render_masks")
    with atomic_dir(out / "overlays") as overlays:
        dice = render_val(overlays, cfg.overlay_width) if cfg.images is None else render_folder(overlays, cfg)
    sheet = worst_cases_sheet(dice, out / "overlays", cfg.worst_cases)
    atomic_write(out / "worst_cases.png", lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"render_masks: {len(dice)} overlays -> {os.path.relpath(out)}")

    with continue_run(run_id, "render_masks"):
        mlflow.set_tags(flatten(cfg, "render_masks."))
        mlflow.log_artifacts(str(out / "overlays"), artifact_path="render_masks/overlays")
        mlflow.log_artifact(str(out / "worst_cases.png"), artifact_path="render_masks")


def render_val(folder: Path, width: int) -> dict[str, float | None]:
    """The val masks evaluate wrote, over their photos, errors coloured; each photo's dice as evaluate scored it."""
    root, evaluated = stage_dir("download"), stage_dir("evaluate")
    dice = {row[0]: float(row[2]) for row in tsv_rows(evaluated / "per_image.tsv")}

    def draw(row: tuple[str, str]) -> None:
        image_id, encoded = row
        photo = read_image(image_path(root, image_id))
        mask = rle.decode(encoded, photo.shape[:2])
        write_overlay(folder / f"{image_id}.png", photo, mask, read_mask(mask_path(root, image_id)), width)

    with ThreadPoolExecutor(THREADS) as pool:
        for _ in pool.map(draw, mask_rows(evaluated / "masks.csv.gz")):
            pass
    return dice


def render_folder(folder: Path, cfg: RenderMasksParams) -> dict[str, float | None]:
    """Every photo of `render_masks.images`, predicted by the model evaluate scored, with its settings."""
    path = user_path(cfg.images)
    if not path.is_dir():
        raise CarvanaError(f"params: `render_masks.images` is {cfg.images!r} ({path}), which is not a folder of photos")
    segmenter = TorchSegmenter(scored_model_path(), resolve_device("auto"))
    settings = segmenter.settings
    segmenter = with_tta(segmenter, settings.tta)
    writers = [Overlays(folder, cfg.overlay_width)]
    outcomes = predict(
        find_photos([str(path)]),
        segmenter,
        writers,
        settings.threshold,
        threads=THREADS,
        refinement=refinement(settings, segmenter.edge_refiner),
    )
    return {outcome.photo.image_id: None for outcome in outcomes}


class Overlays(PerPhoto):
    """<id>.png: the prediction tinted over the photo, scaled to `width`."""

    key = "overlay"

    def __init__(self, folder: Path, width: int) -> None:
        self.folder, self.width = folder, width

    def write(self, prediction: Prediction) -> None:
        write_overlay(
            self.folder / f"{prediction.photo.image_id}.png", prediction.rgb, prediction.mask, None, self.width
        )


def write_overlay(path: Path, photo: np.ndarray, mask: np.ndarray, truth: np.ndarray | None, width: int) -> None:
    """The mask over the photo, scaled to `width`; with a true mask, the errors in colour."""
    small = resize_to_width(photo, width)
    size = small.shape[:2]
    picture = overlay(small, resize_mask(mask, size), None if truth is None else resize_mask(truth, size))
    # zlib level 1: a third of the default's encoding time for a few percent more bytes
    atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG", compress_level=1))


def tsv_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def mask_rows(path: Path) -> Iterator[tuple[str, str]]:
    """(id, run-length encoding) of each row of a Kaggle-format masks CSV, read as it goes."""
    with gzip.open(path, "rt") as rows:
        next(rows)
        for row in rows:
            name, encoded = row.rstrip("\n").rsplit(",", 1)
            yield name.removesuffix(".jpg"), encoded


def worst_cases_sheet(dice: dict[str, float | None], overlays: Path, count: int) -> Image.Image:
    """The lowest-dice overlays (the first ones when there is no truth to score against), read back from disk."""
    worst = sorted(dice, key=lambda image_id: dice[image_id] if dice[image_id] is not None else 0.0)[:count]
    tiles = [
        (np.asarray(Image.open(overlays / f"{i}.png")), i if dice[i] is None else f"{i}  dice {dice[i]:.4f}")
        for i in worst
    ]
    return contact_sheet(tiles, empty="no val photos (a final fit): set render_masks.images to draw your own")


if __name__ == "__main__":
    run_main(main)
