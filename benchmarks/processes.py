"""Training across processes: 2 torchrun processes (DDP over gloo) vs 1, on the same global batches.

Both sides run the train stage's own pieces (loader shares, `train_epoch`, `distributed.relaunch`) in a fresh
`python -m benchmarks.processes` subprocess that times whole epochs after a warm-up one. On this project's 2-core
CPU this checks the code path, it is no speed-up: one process already keeps both cores busy with its intra-op
threads, and two processes share the same two cores and add an all-reduce of the gradients every step. Processes
pay off where each has a device (or a machine) of its own.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.measure import Comparison
from benchmarks.recipes import Recipe, recipes
from benchmarks.report import Row
from carvana.model.unet import UNet
from carvana.training import distributed
from carvana.training.augment import train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, train_epoch


def measure(recipe: Recipe, arrays: tuple[np.ndarray, np.ndarray], work: Path, repeats: int, min_seconds: float) -> Row:
    np.save(work / "processes-images.npy", arrays[0])
    np.save(work / "processes-masks.npy", arrays[1])
    features = [str(width) for width in recipe.params.train.model.features]
    batch = recipe.params.train.batch_size

    def rate(processes: int) -> float:
        command = [sys.executable, "-m", "benchmarks.processes", str(work), "--processes", str(processes)]
        command += ["--seconds", str(min_seconds), "--batch", str(batch), "--features", *features]
        return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-1])

    rounds = [(rate(2), rate(1)) for _ in range(repeats)]  # the sides take turns, as in measure.compare
    return Row.of(
        f"training: 2 torchrun processes vs 1 ({recipe.network}, global batch {batch}; a code-path check on "
        "2 cores, not a speed-up)",
        Comparison.of_rounds(*zip(*rounds)),
        "img/s",
        "—",
    )


def train_for(work: Path, seconds: float, features: list[int], batch: int) -> None:
    """Train on the saved arrays for whole epochs until `seconds` have passed; process 0 prints images/s."""
    ranks = distributed.start("cpu")
    torch.manual_seed(0)
    images, masks = np.load(work / "processes-images.npy"), np.load(work / "processes-masks.npy")
    cfg = recipes()[0].params.train.model_copy(update={"epochs": 1, "batch_size": batch})
    loader = make_loader(
        SegmentationArrays(images, masks, train_transform(cfg.augment), seed=0),
        batch,
        True,
        0,
        False,
        ranks.rank,
        ranks.world,
    )
    fit = Fit.of(UNet(features=features), cfg, len(loader), torch.device("cpu"), ranks.world)
    train_epoch(fit, loader, 0)  # warm-up
    epochs, start = 0, time.perf_counter()
    while distributed.from_main(time.perf_counter() - start < seconds):
        epochs += 1
        start_epoch(loader, epochs)
        train_epoch(fit, loader, epochs)
    if ranks.main:
        print(epochs * (len(images) // batch * batch) / (time.perf_counter() - start))
    distributed.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser("python -m benchmarks.processes")
    parser.add_argument("work", type=Path)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128])
    args = parser.parse_args()
    if args.processes > 1 and not distributed.under_torchrun():
        distributed.relaunch(args.processes, "benchmarks.processes")
    train_for(args.work, args.seconds, args.features, args.batch)
