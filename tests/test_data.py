"""The training loader: batches are a function of (seed, epoch) alone, whatever the workers and whatever ran before."""

import numpy as np
import pytest
import torch

from carvana.core.params import load_params
from carvana.training.augment import eval_transform, train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (10, 24, 32, 3), dtype=np.uint8), rng.integers(0, 2, (10, 24, 32), dtype=np.uint8)


def loader(arrays, workers: int = 0, shuffle: bool = True, seed: int = 5) -> torch.utils.data.DataLoader:
    augment = train_transform(load_params().train.augment) if shuffle else eval_transform()
    return make_loader(SegmentationArrays(*arrays, augment, seed), 4, shuffle, workers, pin_memory=False)


def epoch_batches(loader: torch.utils.data.DataLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    start_epoch(loader, epoch)
    return list(loader)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for pair in zip(a, b) for x, y in zip(*pair))


def test_batches_do_not_depend_on_the_workers(arrays):
    serial, parallel = loader(arrays), loader(arrays, workers=2)
    for epoch in (1, 2, 3):  # workers stay alive across epochs and still follow them
        assert same(epoch_batches(serial, epoch), epoch_batches(parallel, epoch))


def test_an_epoch_is_drawn_the_same_whatever_ran_before(arrays):
    uninterrupted = loader(arrays)
    [epoch_batches(uninterrupted, epoch) for epoch in (1, 2)]
    resumed = loader(arrays)
    assert same(epoch_batches(uninterrupted, 3), epoch_batches(resumed, 3))


def test_epochs_and_seeds_differ_in_order_and_augmentation(arrays):
    one = loader(arrays)
    assert not same(epoch_batches(one, 1), epoch_batches(one, 2))
    assert not same(epoch_batches(one, 1), epoch_batches(loader(arrays, seed=6), 1))


def test_training_takes_full_batches_each_image_at_most_once(arrays):
    start_epoch(train := loader(arrays), 4)
    keys = list(train.sampler)
    indices = [index for _, index in keys]
    assert {epoch for epoch, _ in keys} == {4}
    assert len(indices) == len(set(indices)) == 8  # 10 images in batches of 4: the last 2 wait for another epoch
    assert indices != sorted(indices)  # shuffled
    assert [len(images) for images, _ in train] == [4, 4]


def test_processes_share_each_global_batch(arrays):
    """Two processes, each with half of every batch, see exactly the batches one process sees."""
    dataset = SegmentationArrays(*arrays, eval_transform(), 5)
    one = make_loader(dataset, 4, True, 0, pin_memory=False)
    halves = [make_loader(dataset, 4, True, 0, pin_memory=False, rank=rank, world=2) for rank in (0, 1)]
    for epoch in (1, 2):
        for part in (one, *halves):
            start_epoch(part, epoch)
        for (images, masks), (images0, masks0), (images1, masks1) in zip(one, *halves, strict=True):
            assert torch.equal(images, torch.cat([images0, images1])) and torch.equal(
                masks, torch.cat([masks0, masks1])
            )


def test_validation_comes_in_order_and_unaugmented(arrays):
    images = torch.cat([batch for batch, _ in epoch_batches(loader(arrays, shuffle=False), 1)])
    assert torch.allclose(images, torch.from_numpy(arrays[0]).permute(0, 3, 1, 2).float() / 255)
