"""The training augmentation's zoom and shift (carvana/training/augment.py)."""

import albumentations as A
import numpy as np
from scipy import ndimage

from carvana.core.params import AugmentParams
from carvana.training.augment import train_transform

CAR, FLOOR = (200, 30, 30), (120, 120, 120)


def studio_photo() -> tuple[np.ndarray, np.ndarray]:
    """A red car touching the photo's left edge on a grey floor, and its mask."""
    photo = np.full((64, 96, 3), FLOOR, dtype=np.uint8)
    mask = np.zeros((64, 96), dtype=np.uint8)
    mask[20:44, 0:60] = 1
    photo[mask == 1] = CAR
    return photo, mask


def augmented(augment: AugmentParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    photo, mask = studio_photo()
    transform = train_transform(augment)
    transform.set_random_seed(seed)
    sample = transform(image=photo, mask=mask)
    return (sample["image"].numpy().transpose(1, 2, 0) * 255).round(), sample["mask"].numpy()


def test_off_it_is_not_in_the_recipe_so_older_recipes_draw_the_same_numbers() -> None:
    transforms = train_transform(AugmentParams.off(rotate_p=1, rotate_limit=10, hflip_p=0.5)).transforms
    assert not any(isinstance(transform, A.Affine) for transform in transforms)


def test_the_mask_follows_the_photo_and_the_frame_is_filled_with_the_photo_not_black() -> None:
    augment = AugmentParams.off(shift_scale_p=1, scale_limit=0.3, shift_limit=0.2)
    areas = []
    for seed in range(8):
        image, mask = augmented(augment, seed)
        inside = ndimage.binary_erosion(mask == 1, iterations=2)
        outside = ndimage.binary_erosion(mask == 0, iterations=2)
        assert inside.any() and outside.any()
        assert np.allclose(image[inside], CAR, atol=1) and np.allclose(image[outside], FLOOR, atol=1)
        areas.append(int(mask.sum()))
    assert len(set(areas)) == len(areas)  # a new zoom and shift each time
    assert min(areas) < studio_photo()[1].sum() < max(areas)
