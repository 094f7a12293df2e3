"""Cars repainted through their masks: a photo's car in another paint, its shading and highlights kept.

Sixteen cars do not cover the colour wheel: a model trained on them may learn their paints rather than cars. The
repaint check scores the val photos repainted in PAINTS (evaluate's `repaint_*` metrics, `carvana cv`'s paint
columns); training can repaint its photos at random (`train.augment.repaint_p`). Only the car's pixels change:
each takes the paint's colour scaled by its brightness relative to the car's median (so shading, windows and tyres
stay darker), and highlights brighter than the median blend towards white as they do on a glossy car.

A binary mask repaints its edge pixels wholly, so the paint stops in a step exactly where the label changes: real
photos blend car and floor across their edge pixels. Training can fade the paint across the edge instead
(`feather`: the mask blurred into an opacity), so a network does not learn that an edge is where the colour jumps.
"""

import colorsys

import cv2
import numpy as np

PAINTS: dict[str, tuple[int, int, int]] = {  # sRGB of a panel in even light
    "yellow": (235, 195, 25),
    "orange": (235, 115, 20),
    "green": (35, 150, 55),
    "cyan": (25, 185, 205),
    "purple": (110, 45, 155),
    "pink": (235, 120, 175),
    "white": (238, 238, 238),
    "black": (22, 22, 24),
}
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 brightness of an RGB pixel


def repaint(
    photo: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float], feather: float = 0.0
) -> np.ndarray:
    """`photo` (H, W, 3 uint8) with the pixels where `mask` is set in `colour` (RGB in [0, 1]); a new array. With
    `feather` 0 every other pixel is as it was; above 0 the paint's opacity is the mask blurred by a Gaussian of that
    sigma in pixels, so it fades across the edge (pixels just outside the mask take a little paint)."""
    car = mask.astype(bool)
    out = photo.copy()
    if not car.any():
        return out
    median = float(np.clip(np.median(photo[car].astype(np.float32) / 255 @ LUMA), 1 / 255, 254 / 255))
    opacity = car.astype(np.float32)
    if feather:
        opacity = cv2.GaussianBlur(opacity, (0, 0), feather)
    touched = opacity > 0
    pixels = photo[touched].astype(np.float32) / 255
    shade = pixels @ LUMA / median  # 1: the car's typical panel; below: shadow, glass, tyres; above: highlights
    paint = np.asarray(colour, dtype=np.float32)
    gloss = np.clip((shade - 1) / (1 / median - 1), 0, 1)[:, None]  # a pixel of brightness 1 stays white
    painted = paint * np.minimum(shade, 1)[:, None] + (1 - paint) * gloss
    alpha = opacity[touched][:, None]
    out[touched] = np.round(np.clip(alpha * painted + (1 - alpha) * pixels, 0, 1) * 255).astype(np.uint8)
    return out


def paint_colour(name: str) -> tuple[float, float, float]:
    red, green, blue = PAINTS[name]
    return red / 255, green / 255, blue / 255


def random_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """Any paint: a hue from the whole wheel, from grey to vivid, from near black to near white."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.95)
    return colorsys.hsv_to_rgb(hue, saturation, value)
