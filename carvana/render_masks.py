"""Stage render_masks: predicted masks in Kaggle format at each photo's original size, overlays that
show the errors, and a contact sheet of the worst cases by dice.

Renders the val photos by default, or every photo in the folder named by `render_masks.images`.
Writes stages/render_masks/{masks/<id>_mask.gif, overlays/<id>.png, worst_cases.png}.
"""

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch
from PIL import Image

from carvana.core.atomic import atomic_dir, atomic_write
from carvana.core.errors import CarvanaError, list_some, run_main
from carvana.core.outputs import checkpoint_path, read_run_id, read_split, stage_dir
from carvana.core.params import flatten, load_params
from carvana.core.paths import user_path
from carvana.data.imageio import mask_image, read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.data.pictures import contact_sheet, overlay, resize_to_width
from carvana.data.resize import resize_mask, resize_photo
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import resolve_device
from carvana.model.metrics import per_image_scores
from carvana.model.segmenter import Segmenter, upsample
from carvana.tracking.runs import continue_run

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def main() -> None:
    keep_freed_memory()
    params = load_params()
    cfg = params.render_masks
    run_id = read_run_id()
    segmenter = Segmenter(checkpoint_path("best.pt"), resolve_device("auto"))
    photos = photos_to_render(cfg.images)
    out = stage_dir("render_masks")
    with atomic_dir(out / "masks") as masks_dir, atomic_dir(out / "overlays") as overlays_dir:
        results = [
            render_photo(segmenter, photo, cfg.threshold, cfg.overlay_width, masks_dir, overlays_dir)
            for photo in photos
        ]
    sheet = worst_cases_sheet(results, cfg.worst_cases)
    atomic_write(out / "worst_cases.png", lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"render_masks: {len(results)} masks and overlays -> {out}")

    with continue_run(run_id, "render_masks"):
        mlflow.set_tags(flatten(cfg, "render_masks."))
        mlflow.log_artifacts(str(out / "overlays"), artifact_path="render_masks/overlays")
        mlflow.log_artifact(str(out / "worst_cases.png"), artifact_path="render_masks")


@dataclass(frozen=True)
class Photo:
    image_id: str
    path: Path
    truth: Path | None  # its Kaggle mask, when there is one to score against


@dataclass(frozen=True)
class Rendered:
    image_id: str
    dice: float | None
    overlay: np.ndarray


def render_photo(
    segmenter: Segmenter, photo: Photo, threshold: float, overlay_width: int, masks_dir: Path, overlays_dir: Path
) -> Rendered:
    """Decode once, predict at the model's resolution, write the full-size mask GIF and a scaled-down overlay."""
    image = read_image(photo.path)
    probability = segmenter.probabilities(resize_photo(image, segmenter.size)[None])[0]
    pred = (upsample(probability, image.shape[:2]) > threshold).numpy().astype(np.uint8)
    mask_image(pred).save(masks_dir / f"{photo.image_id}_mask.gif", format="GIF")
    truth = read_mask(photo.truth) if photo.truth else None
    dice = None
    if truth is not None:
        dice = float(per_image_scores(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None])["dice"][0])
    small = resize_to_width(image, overlay_width)
    size = small.shape[:2]
    picture = overlay(small, resize_mask(pred, size), None if truth is None else resize_mask(truth, size))
    # zlib level 1: a third of the default's encoding time for a few percent more bytes
    Image.fromarray(picture).save(overlays_dir / f"{photo.image_id}.png", compress_level=1)
    return Rendered(photo.image_id, dice, picture)


def photos_to_render(folder: str | None) -> list[Photo]:
    """(id, photo, truth mask or None) for the val photos, or for every photo in `folder`."""
    if folder is None:
        root = stage_dir("download")
        return [Photo(i, image_path(root, i), mask_path(root, i)) for i in read_split("val")]
    path = user_path(folder)
    photos = sorted(p for p in path.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if path.is_dir() else []
    if not photos:
        raise CarvanaError(
            f"params: `render_masks.images` is {folder!r} ({path}), which holds no .jpg/.jpeg/.png photos"
        )
    stems = [p.stem for p in photos]
    clashes = sorted({p.name for p in photos if stems.count(p.stem) > 1})
    if clashes:
        raise CarvanaError(
            f"{path}: {list_some(clashes)} would write the same mask (one id per photo name without its "
            "suffix); rename or remove one of each"
        )
    return [Photo(p.stem, p, None) for p in photos]


def worst_cases_sheet(results: list[Rendered], count: int) -> Image.Image:
    """The lowest-dice overlays (the first ones when there is no truth to score against)."""
    scored = sorted(results, key=lambda r: r.dice if r.dice is not None else 0.0)
    tiles = [(r.overlay, r.image_id if r.dice is None else f"{r.image_id}  dice {r.dice:.4f}") for r in scored[:count]]
    return contact_sheet(tiles)


if __name__ == "__main__":
    run_main(main)
