"""Training/validation samples from in-memory uint8 arrays, with reproducible augmentation.

The sampler hands out (epoch, index) keys: each epoch's order is a function of (seed, epoch) and each sample's
augmentation of (seed, epoch, index). So a run gives the same batches whatever the number of DataLoader workers,
a resumed run the same batches as an uninterrupted one, and workers can stay alive across epochs (they never need
to be told the epoch: it comes with every key).
"""

from collections.abc import Iterator

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

Key = tuple[int, int]  # (epoch, index)
AUGMENT, SHUFFLE = 0, 1  # keep the two seed streams apart


class SegmentationArrays(Dataset):
    def __init__(self, images: np.ndarray, masks: np.ndarray, transform: A.Compose, seed: int) -> None:
        self.images = images
        self.masks = masks
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        self.transform.set_random_seed(derived_seed(self.seed, AUGMENT, epoch, index))
        # copy the (possibly memory-mapped, read-only) row into a small writable array
        sample = self.transform(image=np.array(self.images[index]), mask=np.array(self.masks[index]))
        return sample["image"], sample["mask"].unsqueeze(0).float()


def derived_seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


class EpochSampler(Sampler[Key]):
    """(epoch, index) keys for one epoch. Validation: every index, in order. Training: shuffled from
    (seed, epoch), cut into full global batches of `global_batch` (the last incomplete one is skipped: a batch of
    one breaks BatchNorm), and of each global batch this process's share (rank `rank` of `world` processes, each
    taking global_batch / world consecutive samples). So every process count sees the same global batches."""

    def __init__(self, size: int, seed: int, global_batch: int | None = None, rank: int = 0, world: int = 1) -> None:
        self.size = size
        self.seed = seed
        self.global_batch = global_batch
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.global_batch is None:
            return self.size
        return self.size // self.global_batch * (self.global_batch // self.world)

    def __iter__(self) -> Iterator[Key]:
        if self.global_batch is None:
            return ((self.epoch, index) for index in range(self.size))
        generator = torch.Generator().manual_seed(derived_seed(self.seed, SHUFFLE, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        share = self.global_batch // self.world
        starts = range(0, self.size - self.global_batch + 1, self.global_batch)
        return ((self.epoch, index) for start in starts for index in order[start + self.rank * share :][:share])


def start_epoch(loader: DataLoader, epoch: int) -> None:
    """Draw epoch `epoch`'s order and augmentation next: the same batches an uninterrupted run draws there."""
    loader.sampler.set_epoch(epoch)


def make_loader(
    dataset: SegmentationArrays,
    batch_size: int,
    training: bool,
    workers: int,
    pin_memory: bool,
    rank: int = 0,
    world: int = 1,
) -> DataLoader:
    """Training: this process's share of shuffled full batches of `batch_size` (see EpochSampler).
    Validation: every image, in order, in batches of `batch_size`."""
    sampler = EpochSampler(len(dataset), dataset.seed, batch_size if training else None, rank, world)
    return DataLoader(
        dataset,
        batch_size=batch_size // world if training else batch_size,
        sampler=sampler,
        num_workers=workers,
        # the workers' base seed comes from here, not from the global RNG (samples are seeded by their key)
        generator=torch.Generator().manual_seed(dataset.seed),
        pin_memory=pin_memory,
        # forking workers every epoch would copy the training process's memory page by page as it writes it
        persistent_workers=workers > 0,
    )
