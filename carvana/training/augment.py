"""The tutorial's albumentations recipe, built from params (plus optional brightness/contrast jitter).

Images arrive already resized to the training resolution by the prepare stage, so the recipe's
Resize happened once, at load time; what is left runs on small arrays.
"""

import albumentations as A
from albumentations.pytorch import ToTensorV2

from carvana.core.params import AugmentParams


def to_unit_range() -> A.Normalize:
    return A.Normalize(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), max_pixel_value=255.0)


def train_transform(augment: AugmentParams) -> A.Compose:
    return A.Compose(
        [
            A.Rotate(limit=augment.rotate_limit, p=augment.rotate_p),
            A.HorizontalFlip(p=augment.hflip_p),
            A.VerticalFlip(p=augment.vflip_p),
            A.RandomBrightnessContrast(p=augment.brightness_contrast_p),
            to_unit_range(),
            ToTensorV2(),
        ]
    )


def eval_transform() -> A.Compose:
    return A.Compose([to_unit_range(), ToTensorV2()])
