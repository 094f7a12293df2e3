"""What the boundary refiner learns from: tiles of the train photos at full resolution, centred on the coarse mask's
edge, with the coarse network's upsampled probabilities and the true mask.

The coarse probabilities are the trained network's own on its train photos, which it fits better than photos it
never saw; each tile's probabilities are therefore shifted against its photo by up to `jitter` pixels, so the refiner
learns to move edges the coarse network misplaced, not to trust them.

The tiles are written to .npy files and read back memory-mapped: the operating system pages them in and out, so how
many there are is bounded by the disk, not the memory (58 KB a tile: ~9 GB for Kaggle's 5,088 train photos at 32 a
photo).
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
COLUMNS = {  # Tiles' fields: their type and the shape of one tile's
    "photos": (np.uint8, (SIZE, SIZE, 3)),
    "probabilities": (np.float32, (SIZE, SIZE)),
    "truths": (np.uint8, (SIZE, SIZE)),
    "weights": (np.uint8, (SIZE, SIZE)),
}


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
    folder: Path,
    batch_size: int = 16,
) -> Tiles:
    """`per_photo` tiles of each photo `ids` (`images`: the same photos at the segmenter's size), their centres drawn
    from the band around the coarse boundary; stored in `folder`."""
    count = len(ids) * per_photo
    tiles = Tiles(
        **{
            name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=(count, *shape))
            for name, (dtype, shape) in COLUMNS.items()
        }
    )
    for start in range(0, len(ids), batch_size):
        rows = slice(start, start + batch_size)
        coarse = segmenter.probabilities(images[rows])
        for index, (image_id, probability) in enumerate(zip(ids[rows], coarse), start):
            photo = read_image(image_path(root, image_id))
            truth = read_mask(mask_path(root, image_id))
            cut = photo_tiles(photo, truth, upsample(probability, truth.shape), per_photo, jitter, rng)
            for column, part in zip(vars(tiles).values(), cut):
                column[index * per_photo : (index + 1) * per_photo] = part
    return tiles


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
