"""One car per photo: the car pixels outside the outline of the largest connected car region are dropped.

A Carvana photo shows one car, and its true mask is one region (over the sample's 256 masks, at most 59 pixels lie
outside the largest one). A model that has not seen a floor like this one may mark patches of it as car: dark strips
below the turntable, reflections. Such patches are regions of their own, away from the car; what lies within the
car's outline (a wing mirror seen through a window, say) is kept.
"""

import cv2
import numpy as np


def one_car(probability: np.ndarray, photo: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) probabilities with the car pixels (above `threshold`) outside the outline of the largest car region set
    to 0; the rest as they were, so a soft cut-out keeps its edge. (The photo is not looked at: the argument makes
    this a refinement step, carvana.inference.refine.)"""
    car = (probability > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(car, connectivity=8)
    if count <= 2:  # background and at most one region
        return probability
    largest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(largest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = cv2.drawContours(np.zeros_like(largest), contours, -1, 1, cv2.FILLED)
    return np.where(car > outline, np.float32(0), probability)
