"""The learned boundary refiner: the band and tiles it sees (carvana/inference/learned_edges.py), the network
(carvana/model/refiner.py), its training tiles (carvana/training/refiner_tiles.py), its cost in FLOPs and where the
settings switch it on (carvana/inference/refine.py)."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_checkpoint, write_pair
from torch import nn

from carvana.core.errors import CarvanaError
from carvana.data.imageio import read_image
from carvana.data.layout import image_path
from carvana.data.resize import resize_photo
from carvana.inference.learned_edges import BAND, TILE, LearnedRefiner, band, tile_origins, torch_refiner
from carvana.inference.refine import refinement
from carvana.inference.settings import UNRECORDED, from_metadata, recorded
from carvana.model.checkpoint import build_refiner, load_refiner, save_checkpoint
from carvana.model.flops import refiner_flops_per_tile
from carvana.model.refiner import DILATIONS, MARGIN, EdgeRefiner
from carvana.training.refiner_tiles import SIZE, Tiles, sample_tiles

SHAPE = (150, 203)  # not whole tiles: the last row and column of tiles hang over the photo's edge


def disc(shape: tuple[int, int] = SHAPE, radius: float = 50) -> np.ndarray:
    """(H, W) float32 probabilities: a soft-edged disc, as an upsampled mask looks."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    distance = np.hypot(y - shape[0] / 2, x - shape[1] / 2)
    return (1 / (1 + np.exp((distance - radius) / 2))).astype(np.float32)


def photo_of(probability: np.ndarray) -> np.ndarray:
    return np.repeat((probability[..., None] > 0.5) * 200 + 20, 3, axis=2).astype(np.uint8)


def test_the_band_is_the_pixels_near_the_boundary():
    probability = disc()
    region = band(probability)
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    distance = np.abs(np.hypot(y - SHAPE[0] / 2, x - SHAPE[1] / 2) - 50)
    assert region[distance < BAND - 1].all() and not region[distance > BAND + 1].any()


def test_the_tiles_cover_the_band_and_nothing_else():
    region = band(disc())
    origins = tile_origins(region)
    covered = np.zeros((SHAPE[0] + TILE, SHAPE[1] + TILE), dtype=bool)
    for y, x in origins:
        assert region[y : y + TILE, x : x + TILE].any()
        covered[y : y + TILE, x : x + TILE] = True
    assert covered[: SHAPE[0], : SHAPE[1]][region].all()


def test_only_the_band_is_replaced_even_in_tiles_over_the_edge():
    probability = disc(radius=90)  # the disc's boundary runs through the edge tiles
    refined = LearnedRefiner(lambda photos, probabilities: np.full(probabilities.shape, 7.0, np.float32))(
        probability, photo_of(probability)
    )
    region = band(probability)
    assert (refined[region] == 7).all() and np.array_equal(refined[~region], probability[~region])


def test_an_untrained_refiner_keeps_the_upsampled_probabilities():
    probability = disc()
    refined = torch_refiner(EdgeRefiner(8))(probability, photo_of(probability))
    np.testing.assert_allclose(refined, probability, atol=1.01e-4)  # band pixels kept 1e-4 from 0 and 1


def test_the_tiles_see_their_margin_and_batches_do_not_matter():
    torch.manual_seed(0)
    refiner = EdgeRefiner(8)
    nn.init.normal_(refiner.head.weight)  # a refiner that changes things
    probability = disc()
    photo = np.random.default_rng(0).integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    one_by_one = torch_refiner(refiner)
    one_by_one.batch_size = 1
    everything = torch_refiner(refiner)(probability, photo)
    np.testing.assert_allclose(one_by_one(probability, photo), everything, atol=1e-6)
    assert np.abs(everything - probability).max() > 0.01
    assert sum(DILATIONS) == MARGIN  # each output sees this far: the tiles are cut with as much context


def test_the_flop_count_is_three_forward_passes_less_the_input_gradient():
    width = 8
    pixels = SIZE * SIZE
    layers = [4 * width] + [width * width] * (len(DILATIONS) - 1)
    forward = 2 * pixels * (9 * sum(layers) + width)  # the 3x3 convolutions and the 1x1 head
    first = 2 * pixels * 9 * 4 * width  # the inputs need no gradient
    assert refiner_flops_per_tile({"width": width}, SIZE) == 3 * forward - first


class Brightness:
    """A stand-in for the coarse network: write_pair's car is the bright box."""

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return (images.mean(axis=3) > 110).astype(np.float32)


def test_training_tiles_are_seeded_and_centred_on_the_edge(tmp_path):
    ids = ["0aaaaaaaaaaa_01", "0aaaaaaaaaaa_02"]
    for seed, image_id in enumerate(ids):
        write_pair(tmp_path, image_id, size=(160, 240), seed=seed)
    images = np.stack([resize_photo(read_image(image_path(tmp_path, image_id)), (32, 48)) for image_id in ids])

    def tiles(seed: int) -> Tiles:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        return sample_tiles(Brightness(), tmp_path, ids, images, 5, 2, np.random.default_rng(seed), folder)

    first, again, other = tiles(1), tiles(1), tiles(2)
    assert first.photos.shape == (10, SIZE, SIZE, 3) and first.truths.shape == (10, SIZE, SIZE)
    assert np.array_equal(np.load(first.photos.filename), first.photos)  # on disk, read back memory-mapped
    assert all(np.array_equal(a, b) for a, b in zip(vars(first).values(), vars(again).values()))
    assert not np.array_equal(first.photos, other.photos)
    assert np.array_equal(first.truths > 0.5, first.photos.mean(axis=3) > 110)  # each tile's truth is its photo's
    inside = first.weights[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert first.weights.sum() == inside.sum() and (inside.reshape(10, -1).max(axis=1) == 1).all()  # edge in each
    moved = np.abs(first.probabilities - first.truths).reshape(10, -1).max(axis=1)
    assert (moved > 0.5).any()  # the coarse masks are shifted against their photos (jitter)


def test_a_refiner_file_is_checked_when_loaded(tmp_path):
    good = {"config": {"width": 4}, "model": EdgeRefiner(4).state_dict()}
    save_checkpoint(tmp_path / "refiner.pt", good)
    assert isinstance(build_refiner(load_refiner(tmp_path / "refiner.pt"), tmp_path), EdgeRefiner)
    save_checkpoint(tmp_path / "wrong.pt", good | {"config": {"width": 8}})
    with pytest.raises(CarvanaError, match=r"wrong.pt: its weights do not fit .*dvc repro -f train_refiner"):
        load_refiner(tmp_path / "wrong.pt")
    with pytest.raises(CarvanaError, match=r"missing.pt not found: run the train_refiner stage first"):
        load_refiner(tmp_path / "missing.pt")


def test_models_scored_before_the_refiner_and_one_car_existed_say_they_are_off():
    old = recorded({"inference": {"threshold": 0.4, "tta": True, "refine": 8}})
    assert (old.edge_refiner, old.one_car) == (False, False)
    old_export = {"inference_threshold": "0.4", "inference_tta": "true", "inference_refine": "8"}
    off = {"edge_refiner": False, "one_car": False}
    assert from_metadata(old_export).model_dump() == {"threshold": 0.4, "tta": True, "refine": 8} | off
    assert from_metadata({"inference_threshold": "0.4"}) == UNRECORDED


def test_the_settings_choose_the_refinements_in_order():
    probability = disc()
    photo = photo_of(probability)
    learned = LearnedRefiner(lambda photos, probabilities: np.ones_like(probabilities))
    assert refinement(UNRECORDED, learned) is None
    both = refinement(UNRECORDED.model_copy(update={"edge_refiner": True, "refine": 4}), learned)
    only_learned = refinement(UNRECORDED.model_copy(update={"edge_refiner": True}), learned)
    assert (only_learned(probability, photo)[band(probability)] == 1).all()
    assert not np.array_equal(both(probability, photo), only_learned(probability, photo))  # then the guided filter
    with pytest.raises(CarvanaError, match="holds no learned boundary refiner"):
        refinement(UNRECORDED.model_copy(update={"edge_refiner": True}), None)


def test_a_scored_model_carries_its_refiner_to_the_torch_segmenter(tmp_path: Path):
    from carvana.inference.segmenter import FlipAveraged, TorchSegmenter
    from carvana.model.checkpoint import load_checkpoint

    path = untrained_checkpoint(tmp_path / "best.pt")
    assert TorchSegmenter(path).edge_refiner is None
    refiner = {"config": {"width": 4}, "model": EdgeRefiner(4).state_dict()}
    save_checkpoint(path, load_checkpoint(path) | {"edge_refiner": refiner})
    assert isinstance(FlipAveraged(TorchSegmenter(path)).edge_refiner, LearnedRefiner)
