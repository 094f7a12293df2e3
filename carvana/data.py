"""Training/validation samples from in-memory uint8 arrays, with reproducible augmentation.

Each sample's augmentation is seeded from (seed, epoch, index) and each epoch's shuffling from (seed, epoch),
so a run gives the same batches whatever the number of DataLoader workers, and a resumed run the same
batches as an uninterrupted one.
"""

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class SegmentationArrays(Dataset):
    def __init__(self, images: np.ndarray, masks: np.ndarray, transform: A.Compose, seed: int) -> None:
        self.images = images
        self.masks = masks
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.transform.set_random_seed(derived_seed(self.seed, AUGMENT, self.epoch, index))
        # copy the (possibly memory-mapped, read-only) row into a small writable array
        sample = self.transform(image=np.array(self.images[index]), mask=np.array(self.masks[index]))
        return sample["image"], sample["mask"].unsqueeze(0).float()


AUGMENT, SHUFFLE = 0, 1  # keep the two seed streams apart


def derived_seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def start_epoch(loader: DataLoader, epoch: int) -> None:
    """Make epoch `epoch`'s shuffling and augmentation a function of (seed, epoch) alone, so a resumed run
    draws exactly the batches the uninterrupted run would have."""
    dataset = loader.dataset
    dataset.epoch = epoch
    loader.generator.manual_seed(derived_seed(dataset.seed, SHUFFLE, epoch))


def make_loader(
    dataset: SegmentationArrays, batch_size: int, shuffle: bool, workers: int, seed: int, pin_memory: bool
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,  # workers must see dataset.epoch, set before each epoch
    )
