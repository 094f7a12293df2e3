"""The tutorial's albumentations recipe, built from params, plus optional brightness/contrast jitter and colour
changes: of the whole photo, or of the car alone (repainted through its mask).

Images arrive already resized to the training resolution by the prepare stage, so the recipe's
Resize happened once, at load time; what is left runs on small arrays.
"""

from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from carvana.core.params import AugmentParams
from carvana.data.repaint import random_colour, repaint


def to_unit_range() -> A.Normalize:
    return A.Normalize(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), max_pixel_value=255.0)


def train_transform(augment: AugmentParams) -> A.Compose:
    return A.Compose(
        [
            RepaintCar(augment.repaint_feather, p=augment.repaint_p),
            A.OneOf([A.HueSaturationValue(180, 0, 0, p=1), A.ChannelShuffle(p=1), A.ToGray(p=1)], p=augment.colour_p),
            A.Rotate(limit=augment.rotate_limit, p=augment.rotate_p),
            *shift_scale(augment),
            A.HorizontalFlip(p=augment.hflip_p),
            A.VerticalFlip(p=augment.vflip_p),
            A.RandomBrightnessContrast(p=augment.brightness_contrast_p),
            to_unit_range(),
            ToTensorV2(),
        ]
    )


def shift_scale(augment: AugmentParams) -> list[A.Affine]:
    """The photo zoomed and shifted, its edges' pixels carried outwards (a studio's floor and wall, not black).
    Left out when off, so that recipes without it draw the same random numbers as before it existed."""
    if augment.shift_scale_p == 0:
        return []
    return [
        A.Affine(
            scale=(1 - augment.scale_limit, 1 + augment.scale_limit),
            translate_percent=(-augment.shift_limit, augment.shift_limit),
            border_mode=cv2.BORDER_REPLICATE,
            p=augment.shift_scale_p,
        )
    ]


class RepaintCar(A.DualTransform):
    """The car, its mask's pixels, in a random paint with its shading kept (carvana.data.repaint): a car is a car
    in any colour, faded across its edge over `feather` pixels (0: a hard edge). The mask is unchanged."""

    def __init__(self, feather: float, p: float) -> None:
        super().__init__(p=p)
        self.feather = feather

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"colour": random_colour(self.random_generator), "car": data["mask"]}

    def apply(self, img: np.ndarray, colour: tuple[float, float, float], car: np.ndarray, **_: Any) -> np.ndarray:
        return repaint(img, car, colour, self.feather)

    def apply_to_mask(self, mask: np.ndarray, **_: Any) -> np.ndarray:
        return mask


def eval_transform() -> A.Compose:
    return A.Compose([to_unit_range(), ToTensorV2()])
