"""The learned boundary refiner at work: the photo's full resolution seen only in tiles along the coarse mask's edge.

The band is every pixel within BAND photo pixels of the upsampled mask's boundary; the photo is cut into TILE-pixel
tiles, those that hold band pixels are run through the refiner (each with MARGIN pixels of context around it), and
the refined probabilities replace the upsampled ones inside the band only. A car's outline crosses a few dozen of the
~600 tiles of a 1918x1280 photo, so the refiner costs a fraction of running it on the whole photo.
"""

from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import nn

from carvana.model.refiner import MARGIN, EdgeRefiner

TILE = 64  # photo pixels a side of the tiles the refiner runs on (plus MARGIN on every side)
BAND = 8  # photo pixels either side of the coarse boundary that the refiner may change
KEY = "edge_refiner"  # in a checkpoint: {"config": ..., "model": state dict}

TileRun = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (K, s, s, 3) uint8, (K, s, s) float32 -> (K, s, s)


class TileProbabilities(nn.Module):
    """The refiner as inference runs it: photo and coarse-probability tiles in, refined probabilities out. What the
    torch runner runs and what an ONNX export holds."""

    def __init__(self, refiner: EdgeRefiner) -> None:
        super().__init__()
        self.refiner = refiner
        self.eval()

    def forward(self, photos: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.refiner(photos, probabilities))


def band(probability: np.ndarray, width: int = BAND) -> np.ndarray:
    """(H, W) bool: the pixels within `width` of the boundary of `probability` > 0.5."""
    car = (probability > 0.5).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return cv2.dilate(car, disc) != cv2.erode(car, disc)


def tile_origins(region: np.ndarray) -> np.ndarray:
    """(K, 2) top-left corners (y, x) of the TILE-pixel tiles that hold any pixel of `region`."""
    height, width = region.shape
    rows, cols = -(-height // TILE), -(-width // TILE)
    padded = np.zeros((rows * TILE, cols * TILE), dtype=bool)
    padded[:height, :width] = region
    return np.argwhere(padded.reshape(rows, TILE, cols, TILE).any(axis=(1, 3))) * TILE


def padded(image: np.ndarray) -> np.ndarray:
    """`image` with MARGIN pixels around it and enough below and right for whole tiles, edges repeated: tile (y, x)
    with its context is padded[y : y + TILE + 2 * MARGIN, x : x + TILE + 2 * MARGIN]."""
    height, width = image.shape[:2]
    extra = ((MARGIN, MARGIN + (-height) % TILE), (MARGIN, MARGIN + (-width) % TILE))
    return np.pad(image, extra + ((0, 0),) * (image.ndim - 2), mode="edge")


def cut(image: np.ndarray, origins: np.ndarray, size: int) -> np.ndarray:
    """The `size`-pixel crops of a padded image at `origins`, stacked."""
    return np.stack([image[y : y + size, x : x + size] for y, x in origins])


class LearnedRefiner:
    """Full-resolution probabilities refined along their boundary by a refiner, run by `run` on batches of tiles."""

    def __init__(self, run: TileRun, batch_size: int = 64) -> None:
        self.run, self.batch_size = run, batch_size

    def __call__(self, probability: np.ndarray, photo: np.ndarray) -> np.ndarray:
        region = band(probability)
        origins = tile_origins(region)
        if not len(origins):
            return probability
        size = TILE + 2 * MARGIN
        photos, probabilities = padded(photo), padded(probability)
        refined = probability.copy()
        for start in range(0, len(origins), self.batch_size):
            batch = origins[start : start + self.batch_size]
            out = self.run(cut(photos, batch, size), cut(probabilities, batch, size))[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
            for (y, x), tile in zip(batch, out):
                rows, cols = slice(y, y + TILE), slice(x, x + TILE)
                inside = region[rows, cols]  # smaller than a tile at the photo's right and bottom edges
                view = refined[rows, cols]
                view[inside] = tile[: inside.shape[0], : inside.shape[1]][inside]
        return refined


def torch_refiner(refiner: EdgeRefiner, device: torch.device | str = "cpu") -> LearnedRefiner:
    """A refiner run with PyTorch on `device`."""
    model = TileProbabilities(refiner).to(device)

    @torch.no_grad()
    def run(photos: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        inputs = (torch.from_numpy(photos).to(device), torch.from_numpy(probabilities).to(device))
        return model(*inputs).cpu().numpy()

    return LearnedRefiner(run)
