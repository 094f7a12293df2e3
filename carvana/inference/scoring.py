"""Scoring predictions the way Kaggle did: per image, at the photo's original resolution (probabilities
upsampled, then thresholded), against the true masks of the download stage."""

from pathlib import Path

import numpy as np
import torch

from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.inference.refine import guided
from carvana.inference.segmenter import upsample
from carvana.model.metrics import ScoreAccumulator


def full_res_scores(
    root: Path, ids: list[str], probabilities: np.ndarray, threshold: float, refine: int = 0
) -> ScoreAccumulator:
    """Dice, IoU and accuracy per image of (N, h, w) probabilities against root's masks of `ids`, upsampled and,
    with `refine` > 0, refined at full resolution by a guided filter of that radius."""
    scores = ScoreAccumulator()
    for image_id, probability in zip(ids, probabilities):
        truth = read_mask(mask_path(root, image_id)).astype(bool)
        full = upsample(probability, truth.shape)
        if refine:
            full = guided(full, read_image(image_path(root, image_id)), refine)
        pred = full > threshold
        scores.add(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None])
    return scores
