"""What the boundary refiner learns from: tiles of the train photos at full resolution, centred on the coarse mask's
edge, with the coarse network's upsampled probabilities and the true mask.

The coarse probabilities are the trained network's own on its train photos, which it fits better than photos it
never saw; each tile's probabilities are therefore shifted against its photo by up to `jitter` pixels, so the refiner
learns to move edges the coarse network misplaced, not to trust them.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.inference.learned_edges import TILE, band, padded
from carvana.inference.segmenter import Segmenter, upsample
from carvana.model.refiner import MARGIN

SIZE = TILE + 2 * MARGIN  # a tile with its context


@dataclass(frozen=True)
class Tiles:
    photos: np.ndarray  # (K, SIZE, SIZE, 3) uint8
    probabilities: np.ndarray  # (K, SIZE, SIZE) float32, the coarse network's, upsampled (and shifted)
    truths: np.ndarray  # (K, SIZE, SIZE) uint8 {0, 1}
    weights: np.ndarray  # (K, SIZE, SIZE) uint8: 1 on the band pixels inside the tile (what inference replaces)


def sample_tiles(
    segmenter: Segmenter,
    root: Path,
    ids: list[str],
    images: np.ndarray,
    per_photo: int,
    jitter: int,
    rng: np.random.Generator,
    batch_size: int = 16,
) -> Tiles:
    """`per_photo` tiles of each photo `ids` (`images`: the same photos at the segmenter's size), their centres drawn
    from the band around the coarse boundary."""
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, len(ids), batch_size):
        rows = slice(start, start + batch_size)
        coarse = segmenter.probabilities(images[rows])
        for image_id, probability in zip(ids[rows], coarse):
            photo = read_image(image_path(root, image_id))
            truth = read_mask(mask_path(root, image_id))
            parts.append(photo_tiles(photo, truth, upsample(probability, truth.shape), per_photo, jitter, rng))
    return Tiles(*(np.concatenate(column) for column in zip(*parts)))


def photo_tiles(
    photo: np.ndarray, truth: np.ndarray, probability: np.ndarray, count: int, jitter: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    region = band(probability)
    centres = np.argwhere(region)
    if not len(centres):  # no boundary (an empty or full mask): tiles anywhere, the refiner learns to keep them
        centres = np.argwhere(np.ones_like(region))
    height, width = truth.shape
    limit = np.array([height - TILE, width - TILE]).clip(min=0)
    origins = (centres[rng.integers(len(centres), size=count)] - TILE // 2).clip(0, limit)
    shifts = rng.integers(-jitter, jitter + 1, size=(count, 2))
    photos, truths = padded(photo), padded(truth)
    probabilities, regions = padded(probability), padded(region.astype(np.uint8))
    inner = np.zeros((SIZE, SIZE), dtype=np.uint8)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = 1
    columns: list[list[np.ndarray]] = [[], [], [], []]
    for (y, x), (dy, dx) in zip(origins, shifts):
        sy, sx = (np.array([y + dy, x + dx]).clip(0, np.array(probabilities.shape) - SIZE)).tolist()
        tile = (slice(y, y + SIZE), slice(x, x + SIZE))
        moved = (slice(sy, sy + SIZE), slice(sx, sx + SIZE))
        for column, part in zip(columns, (photos[tile], probabilities[moved], truths[tile], regions[moved] * inner)):
            column.append(part)
    return tuple(np.stack(column) for column in columns)
