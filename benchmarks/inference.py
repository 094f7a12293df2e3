"""Full-resolution inference: the render_masks stage's per-photo path against bare decoding of the same JPEGs.

`render_photo` decodes the 1918x1280 photo, predicts at the model's resolution, upsamples and thresholds the
probabilities, writes the Kaggle mask GIF, scores it against the true mask and writes the overlay PNG. Decoding
the JPEG is work no render can skip, so render rate / decode rate is the share of the render time spent
decoding: 1.0 would mean everything after the decode is free. The weights are untrained and the rate barely
depends on them: an untrained net predicts little or no car, whose mask GIF writes ~2 ms faster than a real car's.
"""

from pathlib import Path

import torch

from benchmarks.dataset import photo_size
from benchmarks.measure import best_rates
from benchmarks.recipes import Recipe
from benchmarks.report import Row, quantity
from carvana.data.imageio import read_image
from carvana.data.layout import image_path, mask_path
from carvana.model.checkpoint import save_checkpoint
from carvana.inference.segmenter import Segmenter
from carvana.model.unet import UNet
from carvana.render_masks import Photo, render_photo


def measure(recipe: Recipe, root: Path, ids: list[str], work: Path, repeats: int, min_seconds: float) -> Row:
    params = recipe.params
    torch.manual_seed(params.seed)
    model_config = {"in_channels": 3, "out_channels": 1, "features": list(params.train.model.features)}
    checkpoint = work / "untrained.pt"
    state = {"model_config": model_config, "image_size": list(recipe.size), "model": UNet(**model_config).state_dict()}
    save_checkpoint(checkpoint, state)
    segmenter = Segmenter(checkpoint)
    photos = [Photo(i, image_path(root, i), mask_path(root, i)) for i in ids]
    masks_dir, overlays_dir = work / "masks", work / "overlays"
    masks_dir.mkdir(exist_ok=True)
    overlays_dir.mkdir(exist_ok=True)
    cfg = params.render_masks

    def render() -> int:
        for photo in photos:
            render_photo(segmenter, photo, cfg.threshold, cfg.overlay_width, masks_dir, overlays_dir)
        return len(photos)

    def decode() -> int:
        for photo in photos:
            read_image(photo.path)
        return len(photos)

    render_photo(segmenter, photos[0], cfg.threshold, cfg.overlay_width, masks_dir, overlays_dir)  # warm-up
    rendered, decoded = best_rates([render, decode], repeats, min_seconds)
    height, width = photo_size(root, ids[0])
    return Row(
        f"inference: render_masks per photo vs bare JPEG decode ({width}x{height}, {recipe.network})",
        quantity(rendered, "img/s"),
        quantity(decoded, "img/s"),
        rendered / decoded,
        "—",
    )
