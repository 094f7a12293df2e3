"""Scoring predictions the way Kaggle did: per image, at the photo's original resolution (probabilities
upsampled, then thresholded), against the true masks of the download stage. One photo at a time: memory stays
flat whatever the number of photos. Train, evaluate and render_masks all score through here."""

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.inference.refine import Refinement
from carvana.inference.segmenter import upsample
from carvana.model.metrics import ScoreAccumulator


class FullResScores(ScoreAccumulator):
    """Dice, IoU and accuracy per photo of root's photos, at their own resolution."""

    def __init__(self, root: Path, threshold: float, refinement: Refinement | None = None) -> None:
        super().__init__()
        self.root, self.threshold, self.refinement = root, threshold, refinement
        self.seconds = 0.0  # spent scoring

    def sink(self, ids: Sequence[str]) -> Callable[[int, np.ndarray], None]:
        """Scores batches of probabilities as they come, the first of each being the photo ids[start]."""
        return lambda start, probabilities: self.add_probabilities(
            ids[start : start + len(probabilities)], probabilities
        )

    def add_probabilities(self, ids: Sequence[str], probabilities: np.ndarray) -> list[np.ndarray]:
        """(N, h, w) probabilities at the model's size, upsampled to each photo's size and refined at full
        resolution by `refinement` (carvana.inference.refine) if any; returns the N masks scored."""
        started = time.perf_counter()
        masks = [
            self.score(probability, self.truth(image_id), partial(read_image, image_path(self.root, image_id)))
            for image_id, probability in zip(ids, probabilities)
        ]
        self.seconds += time.perf_counter() - started
        return masks

    def score(self, probability: np.ndarray, truth: np.ndarray, photo: Callable[[], np.ndarray]) -> np.ndarray:
        """One photo's probabilities at the model's size, scored against its full-size `truth`; `photo()` is the
        photo itself, which refinement follows. Returns the mask scored."""
        full = upsample(probability, truth.shape)
        if self.refinement:
            full = self.refinement(full, photo())
        mask = full > self.threshold
        self.add(torch.from_numpy(mask)[None], torch.from_numpy(truth)[None])
        return mask

    def truth(self, image_id: str) -> np.ndarray:
        return read_mask(mask_path(self.root, image_id)).astype(bool)


def spread(count: int, total: int) -> np.ndarray:
    """Indices of at most `count` of `total` photos, evenly spread over them (sorted ids: over the cars)."""
    return np.linspace(0, total - 1, min(count, total)).round().astype(int)
