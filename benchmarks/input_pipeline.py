"""Training loader throughput: our prepared arrays vs the original tutorial's decode-every-step dataset.

Ours: `prepare` decoded each photo once into uint8 arrays at the model's resolution; per sample the loader
copies a row of the memory-mapped arrays and runs the augmentation. Baseline: the tutorial's CarvanaDataset,
which opens the full 1918x1280 JPEG and GIF on every step and resizes inside the augmentation.
Both run in the main process (no DataLoader workers) with the same batch size, so the ratio is the per-sample
work saved.
"""

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.measure import compare
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.data.layout import image_path, mask_path
from carvana.training.augment import train_transform
from carvana.training.loader import SegmentationArrays, make_loader


class TutorialDataset(Dataset):
    """The tutorial's CarvanaDataset, deliberately unchanged: full-size decode, float mask, resize per sample."""

    def __init__(self, root: Path, ids: list[str], transform: A.Compose) -> None:
        self.root = root
        self.ids = ids
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.array(Image.open(image_path(self.root, self.ids[index])).convert("RGB"))
        mask = np.array(Image.open(mask_path(self.root, self.ids[index])).convert("L"), dtype=np.float32)
        mask[mask == 255.0] = 1.0
        sample = self.transform(image=image, mask=mask)
        return sample["image"], sample["mask"].unsqueeze(0)


def tutorial_transform(recipe: Recipe) -> A.Compose:
    """Our augmentation with the tutorial's Resize in front of it."""
    height, width = recipe.size
    return A.Compose([A.Resize(height=height, width=width), *train_transform(recipe.params.train.augment).transforms])


def measure(
    recipe: Recipe, root: Path, ids: list[str], arrays: tuple[np.ndarray, np.ndarray], repeats: int, min_seconds: float
) -> Row:
    params = recipe.params
    ours = make_loader(
        SegmentationArrays(*arrays, train_transform(params.train.augment), params.seed),
        params.train.batch_size,
        training=True,
        workers=0,
        pin_memory=False,
    )
    baseline = DataLoader(
        TutorialDataset(root, ids, tutorial_transform(recipe)), batch_size=params.train.batch_size, shuffle=True
    )
    for loader in (ours, baseline):  # warm-up
        next(iter(loader))
    height, width = recipe.size
    return Row.of(
        f"input pipeline: prepared arrays vs decode per step ({height}x{width}, batch {params.train.batch_size})",
        compare(lambda: samples(ours), lambda: samples(baseline), repeats, min_seconds),
        "samples/s",
        "> 1",
    )


def samples(loader: DataLoader) -> int:
    """Draw one epoch of batches; how many samples it held."""
    return sum(len(images) for images, _ in loader)
