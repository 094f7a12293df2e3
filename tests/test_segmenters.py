"""Segmenters built from others (mirror averaging, ensembles) and the full-resolution edge refinement."""

import cv2
import numpy as np
import pytest

from carvana.inference.refine import guided
from carvana.inference.segmenter import Ensemble, FlipAveraged, upsample, with_tta
from carvana.inference.settings import UNRECORDED


class Brightness:
    """A stand-in model: the probability of car is the photo's brightness in its left half, 0 on the right."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.settings, self.edge_refiner = UNRECORDED, None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        assert images.shape[1:3] == self.size
        bright = images.mean(axis=3).astype(np.float32) / 255
        bright[:, :, self.size[1] // 2 :] = 0
        return bright


def photos(count: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, *size, 3), dtype=np.uint8)


def test_flip_averaging_is_the_mean_with_the_mirror_image():
    images = photos(2, (8, 12))
    plain = Brightness((8, 12)).probabilities(images)
    mirrored = Brightness((8, 12)).probabilities(images[:, :, ::-1])[:, :, ::-1]
    assert np.allclose(FlipAveraged(Brightness((8, 12))).probabilities(images), (plain + mirrored) / 2)


def test_tta_mirrors_only_when_the_settings_ask():
    images = photos(2, (8, 12))
    model = Brightness((8, 12))
    assert with_tta(model, False) is model
    mirroring = with_tta(model, True)
    assert isinstance(mirroring, FlipAveraged) and mirroring.segmenter is model
    assert not np.allclose(mirroring.probabilities(images), model.probabilities(images))


def test_an_ensemble_averages_models_of_any_size_at_the_largest():
    images = photos(3, (16, 24))
    same = Ensemble([Brightness((16, 24)), Brightness((16, 24))])
    assert same.size == (16, 24) and np.allclose(same.probabilities(images), Brightness((16, 24)).probabilities(images))
    mixed = Ensemble([Brightness((8, 12)), Brightness((16, 24))])
    result = mixed.probabilities(images)
    assert mixed.size == (16, 24) and result.shape == (3, 16, 24) and np.isfinite(result).all()


@pytest.mark.numerics
def test_upsampling_matches_torchs_bilinear():
    import torch
    import torch.nn.functional as F

    probability = np.random.default_rng(1).random((12, 18), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(probability)[None, None], size=(96, 144), mode="bilinear")[0, 0]
    assert np.abs(upsample(probability, (96, 144)) - expected.numpy()).max() < 1e-5


@pytest.mark.parametrize("radius", [4, 8])
def test_refinement_snaps_a_blurred_edge_to_the_photos_edge(radius):
    truth = np.zeros((240, 360), dtype=np.uint8)
    cv2.circle(truth, (180, 120), 80, 1, -1)
    photo = np.dstack([truth * 170 + 40] * 3).astype(np.uint8)
    coarse = cv2.resize(truth.astype(np.float32), (45, 30), interpolation=cv2.INTER_AREA)  # a model 8x smaller
    blurred = upsample(cv2.GaussianBlur(coarse, (3, 3), 0.8), truth.shape)

    def errors(probability: np.ndarray) -> int:
        return int(((probability > 0.5) != truth.astype(bool)).sum())

    assert errors(guided(blurred, photo, radius)) < errors(blurred) / 2


def test_refinement_on_a_coarse_grid_makes_the_exact_filters_mask():
    truth = np.zeros((480, 720), dtype=np.uint8)
    cv2.ellipse(truth, (360, 240), (250, 120), 10, 0, 360, 1, -1)
    noise = np.random.default_rng(0).integers(0, 30, truth.shape)
    photo = np.dstack([truth * 150 + 50 + noise] * 3).astype(np.uint8)  # a textured car on a textured floor
    coarse = cv2.resize(truth.astype(np.float32), (90, 60), interpolation=cv2.INTER_AREA)
    blurred = upsample(cv2.GaussianBlur(coarse, (3, 3), 0.8), truth.shape)
    exact, fast = guided(blurred, photo, 8, step=1), guided(blurred, photo, 8)
    differ = int(((exact > 0.5) != (fast > 0.5)).sum())
    edge = int(cv2.Canny(truth * 255, 100, 200).astype(bool).sum())
    assert differ < edge / 20  # a pixel in twenty along the edge, at most
