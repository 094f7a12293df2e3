"""Stage render_masks: predicted masks in Kaggle format at each photo's original size, overlays that
show the errors, and a contact sheet of the worst cases by dice.

Renders the val photos by default, or every photo in the folder named by `render_masks.images`, with the same
engine as `carvana.predict`. Writes stages/render_masks/{masks/<id>_mask.gif, overlays/<id>.png, worst_cases.png}.
"""

import os
from pathlib import Path

import mlflow
import numpy as np
import torch
from PIL import Image

from carvana.core.atomic import atomic_dir, atomic_write
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import checkpoint_path, read_run_id, read_split, stage_dir
from carvana.core.params import flatten, load_params
from carvana.core.paths import user_path
from carvana.data.imageio import read_mask
from carvana.data.layout import image_path, mask_path
from carvana.data.pictures import contact_sheet, overlay, resize_to_width
from carvana.data.resize import resize_mask
from carvana.inference.engine import predict
from carvana.inference.photos import Photo, find_photos
from carvana.inference.segmenter import FlipAveraged, TorchSegmenter
from carvana.inference.writers import MaskGifs, PerPhoto, Prediction
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import resolve_device
from carvana.model.metrics import per_image_scores
from carvana.tracking.runs import continue_run


def main() -> None:
    keep_freed_memory()
    params = load_params()
    cfg = params.render_masks
    run_id = read_run_id()
    segmenter = TorchSegmenter(checkpoint_path("best.pt"), resolve_device("auto"))
    segmenter = FlipAveraged(segmenter) if cfg.tta else segmenter
    photos, truths = photos_to_render(cfg.images)
    out = stage_dir("render_masks")
    with atomic_dir(out / "masks") as masks_dir, atomic_dir(out / "overlays") as overlays_dir:
        writers = [MaskGifs(masks_dir), Overlays(overlays_dir, truths, cfg.overlay_width)]
        outcomes = predict(photos, segmenter, writers, cfg.threshold, threads=os.cpu_count() or 1, refine=cfg.refine)
        dice = {outcome.photo.image_id: outcome.values[Overlays.key] for outcome in outcomes}
    sheet = worst_cases_sheet(dice, out / "overlays", cfg.worst_cases)
    atomic_write(out / "worst_cases.png", lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"render_masks: {len(dice)} masks and overlays -> {out}")

    with continue_run(run_id, "render_masks"):
        mlflow.set_tags(flatten(cfg, "render_masks."))
        mlflow.log_artifacts(str(out / "overlays"), artifact_path="render_masks/overlays")
        mlflow.log_artifact(str(out / "worst_cases.png"), artifact_path="render_masks")


class Overlays(PerPhoto):
    """<id>.png: the prediction tinted over the photo, scaled to `width`; with a true mask, the errors in colour.
    Returns the photo's dice against its true mask (None without one)."""

    key = "dice"

    def __init__(self, folder: Path, truths: dict[str, Path], width: int) -> None:
        self.folder, self.truths, self.width = folder, truths, width

    def write(self, prediction: Prediction) -> float | None:
        truth_path = self.truths.get(prediction.photo.image_id)
        truth = read_mask(truth_path) if truth_path else None
        small = resize_to_width(prediction.rgb, self.width)
        size = small.shape[:2]
        picture = overlay(
            small, resize_mask(prediction.mask, size), None if truth is None else resize_mask(truth, size)
        )
        # zlib level 1: a third of the default's encoding time for a few percent more bytes
        path = self.folder / f"{prediction.photo.image_id}.png"
        atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG", compress_level=1))
        if truth is None:
            return None
        return float(
            per_image_scores(torch.from_numpy(prediction.mask)[None], torch.from_numpy(truth)[None])["dice"][0]
        )


def photos_to_render(folder: str | None) -> tuple[list[Photo], dict[str, Path]]:
    """The val photos with their true masks, or every photo in `folder` (no truth to score against)."""
    if folder is None:
        root = stage_dir("download")
        ids = read_split("val")
        photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]
        return photos, {i: mask_path(root, i) for i in ids}
    path = user_path(folder)
    if not path.is_dir():
        raise CarvanaError(f"params: `render_masks.images` is {folder!r} ({path}), which is not a folder of photos")
    return find_photos([str(path)]), {}


def worst_cases_sheet(dice: dict[str, float | None], overlays: Path, count: int) -> Image.Image:
    """The lowest-dice overlays (the first ones when there is no truth to score against), read back from disk."""
    worst = sorted(dice, key=lambda image_id: dice[image_id] if dice[image_id] is not None else 0.0)[:count]
    tiles = [
        (np.asarray(Image.open(overlays / f"{i}.png")), i if dice[i] is None else f"{i}  dice {dice[i]:.4f}")
        for i in worst
    ]
    return contact_sheet(tiles)


if __name__ == "__main__":
    run_main(main)
