"""Full-resolution inference: the prediction engine (`carvana.predict`, `render_masks`) against the loops it replaced.

Masks: the engine writing Kaggle mask GIFs at the photos' 1918x1280 vs a milesial/Pytorch-UNet-style loop (full decode,
PIL bicubic resize, one photo at a time through the model, logits upsampled with torch, thresholded, GIF saved). Served:
the masks as the `cpu edges` recipe makes them (mirror TTA, the learned boundary refiner) vs as the recommended `cpu`
recipe does (mirror TTA, guided refinement). Render: render_masks on a folder of photos (the engine drawing overlays) vs
a photo-by-photo path. Memory: the peak memory of `python -m carvana.predict --masks` over 4x as many photos as over the
base set: flat memory keeps it near 1. The model is the default U-Net trained for a few epochs on the benchmark's own
photos, so its masks (and the GIFs encoding them) look like a real model's.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.dataset import REPO, photo_size
from benchmarks.measure import compare, peak_memory
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.core.params import InferenceParams
from carvana.data.imageio import mask_image, read_image
from carvana.data.layout import image_path
from carvana.data.pictures import overlay, resize_to_width
from carvana.data.resize import resize_mask, resize_photo
from carvana.inference.engine import predict
from carvana.inference.learned_edges import KEY as REFINER
from carvana.inference.photos import Photo
from carvana.inference.refine import refinement
from carvana.inference.segmenter import Segmenter, TorchSegmenter, with_tta
from carvana.inference.writers import MaskGifs
from carvana.model.checkpoint import load_checkpoint, save_checkpoint
from carvana.model.refiner import EdgeRefiner, refiner_config
from carvana.model.unet import UNet, unet_config
from carvana.render_masks import Overlays
from carvana.training.augment import train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, train_epoch


def trained_checkpoint(recipe: Recipe, arrays: tuple[np.ndarray, np.ndarray], work: Path, epochs: int) -> Path:
    """The recipe's U-Net trained for a few epochs on the prepared photos, as a checkpoint (cached in `work`)."""
    path = work / f"trained-{recipe.name}-{epochs}.pt"
    if path.exists():
        return path
    params, cfg = recipe.params, recipe.params.train
    torch.manual_seed(params.seed)
    loader = make_loader(
        SegmentationArrays(*arrays, train_transform(cfg.augment), params.seed), cfg.batch_size, True, 0, False
    )
    config = unet_config(cfg.model)
    model = UNet(**config)
    fit = Fit.of(model, cfg.model_copy(update={"lr_schedule": "cosine", "epochs": epochs}), len(loader))
    for epoch in range(1, epochs + 1):
        start_epoch(loader, epoch)
        train_epoch(fit, loader, epoch)
    state = {"model": model.state_dict(), "model_config": config, "image_size": list(recipe.size), "epoch": epochs}
    save_checkpoint(path, state)
    return path


def measure_masks(
    recipe: Recipe, root: Path, ids: list[str], checkpoint: Path, work: Path, repeats: int, min_seconds: float
) -> Row:
    segmenter = TorchSegmenter(checkpoint)
    photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]
    out = work / "masks"

    def engine() -> int:
        return sum(1 for _ in predict(photos, segmenter, [MaskGifs(out)], threads=os.cpu_count() or 1))

    def milesial() -> int:
        for photo in photos:
            milesial_mask(segmenter.model.unet, segmenter.size, photo.path, out / f"{photo.image_id}_mask.gif")
        return len(photos)

    engine()  # warm-up
    height, width = photo_size(root, ids[0])
    return Row.of(
        f"inference: predict --masks vs a milesial-style loop ({width}x{height} photos, {recipe.network})",
        compare(engine, milesial, repeats, min_seconds),
        "masks/s",
        "ours ≥ 20 masks/s",
    )


def measure_served(
    recipe: Recipe,
    today: Recipe,
    root: Path,
    ids: list[str],
    checkpoint: Path,
    work: Path,
    repeats: int,
    min_seconds: float,
) -> Row:
    """predict --masks as `recipe` is meant to be used (its `inference` settings) vs as `today` makes them, the same
    network in both. The model carries a refiner as train_refiner starts it: its speed does not depend on its
    weights, and where it runs (the tiles the coarse edge crosses) comes from the trained network."""
    config = refiner_config(recipe.params.train_refiner.width)
    model = load_checkpoint(checkpoint) | {REFINER: {"config": config, "model": EdgeRefiner(**config).state_dict()}}
    photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]
    out = work / "served-masks"

    def served(settings: InferenceParams) -> Callable[[], int]:
        return served_masks(photos, TorchSegmenter(checkpoint, checkpoint=model), settings, out)

    ours, theirs = served(recipe.params.inference), served(today.params.inference)
    ours()  # warm-up
    height, width = photo_size(root, ids[0])
    return Row.of(
        f"inference: the {recipe.name} recipe as served ({described(recipe.params.inference)}) vs the {today.name} "
        f"recipe ({described(today.params.inference)}; {width}x{height} photos, {recipe.network})",
        compare(ours, theirs, repeats, min_seconds),
        "masks/s",
        "ours ≥ 10 masks/s",
    )


def served_masks(photos: list[Photo], segmenter: Segmenter, settings: InferenceParams, out: Path) -> Callable[[], int]:
    """predict --masks on the photos as `settings` say (threshold, TTA, learned and guided refinement): the number of
    masks it wrote to `out`."""
    segmenter = with_tta(segmenter, settings.tta)
    refined = refinement(settings, segmenter.edge_refiner)
    threads = os.cpu_count() or 1
    return lambda: sum(
        1 for _ in predict(photos, segmenter, [MaskGifs(out)], settings.threshold, threads=threads, refinement=refined)
    )


def described(settings: InferenceParams) -> str:
    edges = "learned edges" if settings.edge_refiner else f"refine {settings.refine}" if settings.refine else "plain"
    return f"TTA {settings.tta}, {edges}"


def milesial_mask(model: torch.nn.Module, size: tuple[int, int], path: Path, out: Path) -> None:
    """milesial/Pytorch-UNet's predict.py for one photo: full decode and bicubic resize, the logits upsampled."""
    photo = Image.open(path)
    small = np.asarray(photo.resize(size[::-1], resample=Image.Resampling.BICUBIC), dtype=np.float32) / 255
    with torch.no_grad():
        logits = model(torch.from_numpy(small).permute(2, 0, 1)[None])
        logits = F.interpolate(logits, (photo.height, photo.width), mode="bilinear")
    mask_image((torch.sigmoid(logits)[0, 0] > 0.5).numpy().astype(np.uint8)).save(out, format="GIF")


def measure_render(
    recipe: Recipe, root: Path, ids: list[str], checkpoint: Path, work: Path, repeats: int, min_seconds: float
) -> Row:
    """render_masks on a folder of photos (`render_masks.images`): the engine drawing overlays vs a photo-by-photo
    path (decode, predict, upsample with torch, draw, in turn)."""
    segmenter = TorchSegmenter(checkpoint)
    photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]
    width = recipe.params.render_masks.overlay_width
    overlays = work / "render-overlays"
    overlays.mkdir(exist_ok=True)

    def engine() -> int:
        return sum(1 for _ in predict(photos, segmenter, [Overlays(overlays, width)], threads=os.cpu_count() or 1))

    def previous() -> int:
        for photo in photos:
            previous_render(segmenter, photo, width, overlays)
        return len(photos)

    return Row.of(
        f"render_masks: the engine vs a photo-by-photo path (overlays of a folder of photos; {recipe.network})",
        compare(engine, previous, repeats, min_seconds),
        "photos/s",
        "> 1",
    )


def previous_render(segmenter: TorchSegmenter, photo: Photo, width: int, overlays: Path) -> None:
    image = read_image(photo.path)
    probability = torch.from_numpy(segmenter.probabilities(resize_photo(image, segmenter.size)[None])[0])
    full = F.interpolate(probability[None, None], size=image.shape[:2], mode="bilinear", align_corners=False)
    pred = (full[0, 0] > 0.5).numpy().astype(np.uint8)
    small = resize_to_width(image, width)
    picture = overlay(small, resize_mask(pred, small.shape[:2]))
    Image.fromarray(picture).save(overlays / f"{photo.image_id}.png", compress_level=1)


def measure_memory(root: Path, ids: list[str], checkpoint: Path, work: Path, times: int = 4) -> Row:
    """Peak memory of predicting `times` x as many photos (symbolic links to the same files, named apart)."""
    few, many = linked_copies(root, ids, work / "memory-few", 1), linked_copies(root, ids, work / "memory-many", times)
    command = [sys.executable, "-m", "carvana.predict", "--model", str(checkpoint), "--masks", str(work / "memory")]
    base = peak_memory([*command[:3], str(few), *command[3:]], REPO)
    more = peak_memory([*command[:3], str(many), *command[3:]], REPO)
    return Row.of_memory(
        f"inference: peak memory of predict --masks over {times * len(ids)} photos vs {len(ids)}",
        more,
        base,
        "≈ 1 (flat)",
    )


def measure_ray(root: Path, ids: list[str], checkpoint: Path, work: Path, repeats: int, times: int = 4) -> Row:
    """`carvana predict --ray` (a Ray started on this machine for the run, its default actors) against plain predict,
    each a whole command from start to exit on `times` x the photos: Ray's start-up is part of its cost."""
    photos = linked_copies(root, ids, work / "ray-photos", times)

    def command(*extra: str) -> Callable[[], int]:
        argv = [sys.executable, "-m", "carvana.predict", str(photos), "--model", str(checkpoint)]
        argv += ["--masks", str(work / "ray-masks"), *extra]

        def run() -> int:
            subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
            return len(ids) * times

        return run

    return Row.of(
        f"inference: predict --ray vs predict ({len(ids) * times} photos, start-up included, a local Ray)",
        compare(command("--ray"), command(), repeats, min_seconds=1e-9),  # each command once a round
        "photos/s",
        "≈ 1 on one machine",
    )


def linked_copies(root: Path, ids: list[str], folder: Path, copies: int) -> Path:
    """A folder of `copies` symbolic links to each photo, named apart."""
    folder.mkdir(exist_ok=True)
    for copy in range(copies):
        for image_id in ids:
            target = folder / f"{image_id}-{copy}.jpg"
            if not target.exists():
                target.symlink_to(image_path(root, image_id).resolve())
    return folder
