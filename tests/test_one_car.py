"""One car per photo (carvana.inference.one_car): stray regions dropped, what lies within the car's outline kept,
the setting recorded with the model and honoured by every user of it."""

import numpy as np
from conftest import untrained_checkpoint

from carvana.inference.one_car import one_car
from carvana.inference.refine import refinement
from carvana.inference.settings import UNRECORDED, as_metadata, described, from_metadata, recorded

PHOTO = np.zeros((120, 160, 3), np.uint8)  # one_car does not look at the photo


def car_with_stray_patch() -> np.ndarray:
    """A car (a soft-edged rectangle with a window-sized hole holding a speck of car), and a patch of floor below."""
    probability = np.full((120, 160), 0.1, np.float32)
    probability[20:70, 20:140] = 0.9  # the car
    probability[35:50, 60:90] = 0.2  # a hole in it
    probability[40:43, 70:73] = 0.8  # within the hole: inside the car's outline
    probability[95:110, 40:120] = 0.7  # a strip of floor, a region of its own
    return probability


def test_regions_outside_the_largest_ones_outline_are_dropped():
    probability = car_with_stray_patch()
    kept = one_car(probability, PHOTO, threshold=0.5)
    assert (kept[95:110, 40:120] == 0).all()
    outside = np.ones(probability.shape, bool)
    outside[95:110, 40:120] = False
    assert np.array_equal(kept[outside], probability[outside])  # the car, its hole and the speck in it, as they were


def test_a_photo_with_one_car_or_none_is_left_as_it_is():
    probability = car_with_stray_patch()
    probability[95:110, 40:120] = 0.1
    assert np.array_equal(one_car(probability, PHOTO, threshold=0.5), probability)
    empty = np.zeros((8, 8), np.float32)
    assert one_car(empty, PHOTO, threshold=0.5) is empty


def test_the_threshold_decides_what_a_region_is():
    probability = car_with_stray_patch()
    assert np.array_equal(one_car(probability, PHOTO, threshold=0.75), probability)  # the floor is below it


def test_the_setting_turns_it_on_after_the_edges_are_refined():
    probability = car_with_stray_patch()
    assert refinement(UNRECORDED, None) is None
    on = refinement(UNRECORDED.model_copy(update={"one_car": True}), None)
    assert (on(probability, PHOTO)[95:110, 40:120] == 0).all()
    guided_then_one_car = refinement(UNRECORDED.model_copy(update={"one_car": True, "refine": 4}), None)
    car = guided_then_one_car(probability, PHOTO) > 0.5
    assert car[26:33, 26:134].all() and not car[95:110].any()


def test_the_setting_travels_with_the_model(tmp_path):
    from carvana.inference.segmenter import TorchSegmenter
    from carvana.model.checkpoint import load_checkpoint, save_checkpoint

    settings = UNRECORDED.model_copy(update={"one_car": True, "tta": True})
    assert from_metadata(as_metadata(settings)) == settings  # an ONNX or OpenVINO export
    path = untrained_checkpoint(tmp_path / "best.pt")
    save_checkpoint(path, load_checkpoint(path) | {"inference": settings.model_dump()})
    assert recorded(load_checkpoint(path)) == settings == TorchSegmenter(path).settings
    assert described(settings) == "threshold 0.5, mirror TTA, one car"
