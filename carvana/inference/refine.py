"""Edges refined at the photo's full resolution: a guided filter (He, Sun and Tang, 2010) on the upsampled
probabilities, with the photo as the guide.

A model run at 160x240 puts the edge of a 1918x1280 car to within a few photo pixels; upsampling blurs it over
eight. The guided filter fits, in every small window, the probabilities as a linear function of the photo's
brightness, so the edge moves onto the photo's own edge where there is one, and stays put where the photo is
flat. The fit's slopes and offsets vary slowly, so they are fitted on a grid a few times coarser and upsampled (the
fast guided filter, He and Sun, 2015): the mask follows the full-resolution photo, for a fraction of the cost.
"""

from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from carvana.core.errors import CarvanaError
from carvana.core.params import InferenceParams
from carvana.inference.one_car import one_car

EPS = 1e-3  # the filter's regularisation, in squared brightness (0..1): edges weaker than ~0.03 are smoothed over
MAX_STEP = 4  # the coarse grid's largest cell, in photo pixels: 1/16 of the exact filter's box filtering

Refinement = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (H, W) probabilities, (H, W, 3) photo -> refined


def refinement(settings: InferenceParams, learned: Refinement | None) -> Refinement | None:
    """What the upsampled probabilities go through before the threshold, as `settings` say: the model's learned
    boundary refiner (`learned`, carvana.inference.learned_edges), the guided filter, then one car kept
    (carvana.inference.one_car); None: none of them."""
    steps: list[Refinement] = []
    if settings.edge_refiner:
        if learned is None:
            raise CarvanaError(
                "inference.edge_refiner is on but this model holds no learned boundary refiner (evaluate puts "
                "train_refiner's into stages/evaluate/model.pt); use that model, or turn it off (--no-edge-refiner)"
            )
        steps.append(learned)
    if settings.refine:
        steps.append(partial(guided, radius=settings.refine))
    if settings.one_car:
        steps.append(partial(one_car, threshold=settings.threshold))
    if not steps:
        return None

    def refined(probability: np.ndarray, photo: np.ndarray) -> np.ndarray:
        for step in steps:
            probability = step(probability, photo)
        return probability

    return refined


def guided(
    probability: np.ndarray, photo: np.ndarray, radius: int, eps: float = EPS, step: int | None = None
) -> np.ndarray:
    """(H, W) float32 probabilities refined with the (H, W, 3) uint8 photo as guide; radius in photo pixels. The fit
    is made on a grid of `step`-pixel cells (by default half the radius, at most MAX_STEP; 1: the exact filter of
    2010)."""
    guide = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    height, width = guide.shape
    step = step or max(1, min(MAX_STEP, radius // 2))
    coarse = (round(width / step), round(height / step))
    small_guide = cv2.resize(guide, coarse, interpolation=cv2.INTER_AREA)
    small_probability = cv2.resize(probability, coarse, interpolation=cv2.INTER_AREA)
    window = 2 * round(radius / step) + 1

    def mean(image: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(image, -1, (window, window))

    mean_guide, mean_probability = mean(small_guide), mean(small_probability)
    covariance = mean(small_guide * small_probability) - mean_guide * mean_probability
    variance = mean(small_guide * small_guide) - mean_guide * mean_guide
    slope = covariance / (variance + eps)
    offset = mean_probability - slope * mean_guide

    def full(image: np.ndarray) -> np.ndarray:
        return cv2.resize(mean(image), (width, height), interpolation=cv2.INTER_LINEAR)

    return full(slope) * guide + full(offset)
