"""The gradients of one training batch as the train stage computes them, in one process or in each of several
under torchrun: `python -m torch.distributed.run --nproc-per-node 2 tests/ddp_gradients.py OUT [--break WHAT]`.

Every process saves its weights' gradients and its BatchNorm running statistics as OUT/rank<N>.pt. `--break`
builds the step with one piece of the multi-process training left out, as a bug would: `averaging` (no gradient
all-reduce: each process keeps the gradient of its own share), `batchnorm` (BatchNorm statistics per process, not
over the global batch).
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from conftest import train_params

from carvana.core.params import AugmentParams
from carvana.model.unet import UNet
from carvana.training import distributed
from carvana.training.augment import train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, compute_gradients

BATCH = 8
CPU = torch.device("cpu")


def photos(count: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((count, 32, 48), dtype=np.uint8)
    for mask in masks:
        top, left = rng.integers(2, 14), rng.integers(2, 24)
        mask[top : top + rng.integers(8, 16), left : left + rng.integers(10, 22)] = 1
    return (masks[..., None] * 150 + rng.integers(0, 90, (count, 32, 48, 3))).astype(np.uint8), masks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--break", dest="broken", choices=["averaging", "batchnorm"])
    args = parser.parse_args()
    ranks = distributed.start("cpu")
    augment = AugmentParams.off(rotate_limit=35, rotate_p=1, hflip_p=0.5, vflip_p=0.1, brightness_contrast_p=0.5)
    loader = make_loader(
        SegmentationArrays(*photos(), train_transform(augment), seed=7), BATCH, True, 0, False, ranks.rank, ranks.world
    )
    torch.manual_seed(0)
    cfg = train_params(lr=1e-3, lr_schedule="constant", epochs=1, loss="bce_dice")
    fit = Fit.of(UNet(features=[4, 8, 16]), cfg, len(loader), CPU, ranks.world)
    if args.broken == "averaging":
        fit = replace(fit, step=fit.model)  # each process steps its own model: no all-reduce of the gradients
    if args.broken == "batchnorm":
        for module in fit.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.__class__ = torch.nn.BatchNorm2d  # statistics of this process's share only
    start_epoch(loader, 3)
    images, masks = next(iter(loader))
    compute_gradients(fit, images, masks)
    args.out.mkdir(parents=True, exist_ok=True)
    statistics = {n: b for n, b in fit.model.named_buffers() if n.endswith(("running_mean", "running_var"))}
    gradients = {name: p.grad for name, p in fit.model.named_parameters()}
    torch.save(gradients | statistics, args.out / f"rank{ranks.rank}.pt")
    distributed.stop()


if __name__ == "__main__":
    main()
