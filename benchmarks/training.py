"""Training throughput end to end vs the model alone: is the input pipeline hidden behind the model's steps?

Both sides run the train stage's own `train_epoch` (forward, loss, backward, optimizer step, per batch) on
the same model: end to end it draws batches from the stage's DataLoader over the prepared arrays (with the
recipe's loader workers); model-only it is handed the same number of batches already in memory.
"""

import itertools
from collections.abc import Iterable

import numpy as np
import torch

from benchmarks.measure import compare
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.model.unet import UNet
from carvana.training.augment import train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, train_epoch

DEVICE = torch.device("cpu")


def measure(recipe: Recipe, arrays: tuple[np.ndarray, np.ndarray], repeats: int, min_seconds: float) -> Row:
    params, cfg = recipe.params, recipe.params.train
    images, masks = arrays
    full_batches = len(images) // cfg.batch_size
    steps = min(recipe.steps, full_batches) if recipe.steps else full_batches
    count = steps * cfg.batch_size
    dataset = SegmentationArrays(images[:count], masks[:count], train_transform(cfg.augment), params.seed)
    loader = make_loader(dataset, cfg.batch_size, training=True, workers=cfg.num_workers, pin_memory=False)

    torch.manual_seed(params.seed)
    model = UNet(features=cfg.model.features).to(DEVICE)
    fit = Fit.of(model, cfg.model_copy(update={"epochs": 1}), steps, DEVICE)

    def epoch(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
        # train_epoch only iterates its loader, so a list of in-memory batches stands in for one
        train_epoch(fit, batches, epoch=1)
        return count

    epochs = itertools.count(1)

    def end_to_end() -> int:
        start_epoch(loader, next(epochs))  # a fresh order and augmentation each epoch, as in training
        return epoch(loader)

    batch = next(iter(loader))
    in_memory = [batch] * steps
    epoch([batch])  # warm-up
    return Row.of(
        f"training: end to end vs model-only ({recipe.network}, batch {cfg.batch_size}, "
        f"{cfg.num_workers} loader workers, {steps} steps)",
        compare(end_to_end, lambda: epoch(in_memory), repeats, min_seconds),
        "img/s",
        "≥ 0.95",
    )
