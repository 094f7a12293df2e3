"""Full-resolution inference: the render_masks stage's path against bare decoding of the same JPEGs.

The stage runs the prediction engine with two writers: each 1918x1280 photo is decoded at the model's
resolution, predicted, its probabilities upsampled and thresholded, the Kaggle mask GIF written, the photo
decoded again at full size for the overlay PNG, scored against its true mask. Here with one worker thread, so it
compares with one thread decoding. Decoding the JPEG is work no render can skip, so render rate / decode rate is
the share of the render time spent decoding: 1.0 would mean everything after the decode is free. The weights are
untrained and the rate barely depends on them: an untrained net predicts little or no car, whose mask GIF writes
~2 ms faster than a real car's.
"""

from pathlib import Path

from benchmarks.dataset import photo_size
from benchmarks.measure import best_rates
from benchmarks.recipes import Recipe
from benchmarks.report import Row, quantity
from carvana.data.imageio import read_image
from carvana.data.layout import image_path, mask_path
from carvana.inference.engine import predict
from carvana.inference.photos import Photo
from carvana.inference.segmenter import TorchSegmenter
from carvana.inference.writers import MaskGifs
from carvana.render_masks import Overlays


def measure(recipe: Recipe, root: Path, ids: list[str], work: Path, repeats: int, min_seconds: float) -> Row:
    segmenter = TorchSegmenter(recipe.untrained_checkpoint(work / "untrained.pt"))
    photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]
    truths = {i: mask_path(root, i) for i in ids}
    masks_dir, overlays_dir = work / "masks", work / "overlays"
    cfg = recipe.params.render_masks

    def render(batch: list[Photo] = photos) -> int:
        writers = [MaskGifs(masks_dir), Overlays(overlays_dir, truths, cfg.overlay_width)]
        return sum(1 for _ in predict(batch, segmenter, writers, cfg.threshold, threads=1))

    def decode() -> int:
        for photo in photos:
            read_image(photo.path)
        return len(photos)

    render(photos[:1])  # warm-up
    rendered, decoded = best_rates([render, decode], repeats, min_seconds)
    height, width = photo_size(root, ids[0])
    return Row(
        f"inference: render_masks per photo vs bare JPEG decode ({width}x{height}, {recipe.network})",
        quantity(rendered, "img/s"),
        quantity(decoded, "img/s"),
        rendered / decoded,
        "—",
    )
