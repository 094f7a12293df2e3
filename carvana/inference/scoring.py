"""Scoring predictions the way Kaggle did: per image, at the photo's original resolution (probabilities
upsampled, then thresholded), against the true masks of the download stage."""

from pathlib import Path

import numpy as np
import torch

from carvana.data.imageio import read_mask
from carvana.data.layout import mask_path
from carvana.inference.segmenter import upsample
from carvana.model.metrics import ScoreAccumulator


def full_res_scores(root: Path, ids: list[str], probabilities: np.ndarray, threshold: float) -> ScoreAccumulator:
    """Dice, IoU and accuracy per image of (N, h, w) probabilities against root's masks of `ids`."""
    scores = ScoreAccumulator()
    for image_id, probability in zip(ids, probabilities):
        truth = read_mask(mask_path(root, image_id)).astype(bool)
        pred = upsample(probability, truth.shape) > threshold
        scores.add(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None])
    return scores
