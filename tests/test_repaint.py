"""The repaint generator (carvana/data/repaint.py) and the training augmentation built on it."""

import colorsys

import numpy as np
import pytest

from carvana.core.params import AugmentParams
from carvana.data.repaint import PAINTS, paint_colour, random_colour, repaint
from carvana.training.augment import train_transform


def car_photo(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shaded grey car (a gradient with a white highlight) on a noisy background, and its mask."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    mask = np.zeros((60, 90), dtype=np.uint8)
    mask[15:45, 20:70] = 1
    shade = np.linspace(40, 200, 50, dtype=np.uint8)[None, :, None]
    photo[15:45, 20:70] = np.broadcast_to(shade, (30, 50, 3))
    photo[20:22, 30:34] = 255  # a highlight
    return photo, mask


@pytest.mark.parametrize("paint", list(PAINTS))
def test_only_the_car_changes_and_it_takes_the_paint(paint: str) -> None:
    photo, mask = car_photo()
    painted = repaint(photo, mask, paint_colour(paint))
    assert painted.dtype == np.uint8 and painted.shape == photo.shape
    assert np.array_equal(painted[mask == 0], photo[mask == 0])  # the background, to the bit
    assert np.array_equal(painted[20:22, 30:34], np.full((2, 4, 3), 255))  # the highlight stays white
    brightness = painted[25:45, 20:70].astype(float).mean(axis=(0, 2))  # rows below the highlight
    assert np.all(np.diff(brightness) >= 0) and brightness[-1] > brightness[0]  # the shading is kept
    hue, saturation, _ = colorsys.rgb_to_hsv(*(painted[40, 44] / 255))  # as bright as the car's median
    paint_hue, paint_saturation, _ = colorsys.rgb_to_hsv(*paint_colour(paint))
    if paint_saturation > 0.2:  # a colour: the car's typical panel takes its hue
        assert abs(hue - paint_hue) < 0.03 and saturation == pytest.approx(paint_saturation, abs=0.05)
    else:  # white, black: no colour
        assert saturation < paint_saturation + 0.05


def test_the_same_inputs_give_the_same_photo_and_the_input_is_not_touched() -> None:
    photo, mask = car_photo()
    before = photo.copy()
    first, second = (repaint(photo, mask, paint_colour("green")) for _ in range(2))
    assert np.array_equal(first, second) and np.array_equal(photo, before)


def test_a_photo_without_a_car_is_returned_unchanged() -> None:
    photo, _ = car_photo()
    assert np.array_equal(repaint(photo, np.zeros(photo.shape[:2]), paint_colour("yellow")), photo)


def test_a_feathered_repaint_fades_across_the_edge_and_nowhere_else() -> None:
    photo, mask = car_photo()
    hard, soft = repaint(photo, mask, paint_colour("yellow")), repaint(photo, mask, paint_colour("yellow"), 0.7)
    assert np.array_equal(soft[20:40, 25:65], hard[20:40, 25:65])  # inside, 5 pixels from the edge: wholly painted
    far = np.ones_like(mask, dtype=bool)
    far[10:50, 15:75] = False
    assert np.array_equal(soft[far], photo[far])  # outside, 5 pixels from the edge: untouched
    for inside, outside in ((20, 19), (69, 70)):  # the edge's pixels, on row 30
        photo_px, hard_px, soft_px = (image[30, inside].astype(float) for image in (photo, hard, soft))
        assert 0.55 < np.abs(soft_px - photo_px).sum() / np.abs(hard_px - photo_px).sum() < 0.95  # mostly paint
        assert not np.array_equal(soft[30, outside], photo[30, outside])  # a little paint


def test_random_paints_cover_the_colour_wheel() -> None:
    rng = np.random.default_rng(0)
    hues = [colorsys.rgb_to_hsv(*random_colour(rng))[0] for _ in range(500)]
    assert np.histogram(hues, bins=6, range=(0, 1))[0].min() > 50


def test_training_repaints_the_car_alone_and_keeps_the_mask() -> None:
    photo, mask = car_photo()
    augment = AugmentParams.off(repaint_p=1)
    transform = train_transform(augment)
    results = []
    for seed in (1, 1, 2):
        transform.set_random_seed(seed)
        sample = transform(image=photo.copy(), mask=mask.copy())
        results.append((sample["image"].numpy(), sample["mask"].numpy()))
    (image, out_mask), (again, _), (other, _) = results
    assert np.array_equal(out_mask, mask)
    original = photo.transpose(2, 0, 1) / 255
    assert np.allclose(image[:, mask == 0], original[:, mask == 0])  # the background as it was
    assert not np.allclose(image[:, mask == 1], original[:, mask == 1])  # the car repainted
    assert np.array_equal(image, again) and not np.array_equal(image, other)  # the seed decides the paint
