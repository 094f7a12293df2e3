"""One epoch of training and one pass of val-set scoring.

The loss stays on the device during an epoch and is read once at its end (no host sync per step); a
non-finite epoch loss stops training there, before any checkpoint can hold the weights it produced.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from carvana.core.errors import CarvanaError
from carvana.core.params import TrainParams
from carvana.model.device import Precision, memory_format
from carvana.model.losses import Loss, loss_function
from carvana.model.metrics import ScoreAccumulator
from carvana.training import distributed
from carvana.training.ema import Ema
from carvana.training.schedule import lr_scheduler

CPU = torch.device("cpu")


@dataclass
class Fit:
    """The model being trained and what a step does to it."""

    model: nn.Module  # the weights being trained, a plain module
    step: nn.Module  # what training steps run through: `model`, compiled and/or wrapped for DDP (same weights)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loss_fn: Loss
    device: torch.device
    precision: Precision
    ema: Ema | None = None  # an average of the weights, updated after every step

    @classmethod
    def of(cls, model: nn.Module, cfg: TrainParams, steps_per_epoch: int, device: torch.device = CPU, world: int = 1):
        """Training of `model` as params.yaml's train group says: Adam with the lr schedule, the loss, the number
        format, torch.compile, an average of the weights; across `world` processes, BatchNorm over the global batch
        and gradients averaged."""
        if world > 1:
            model = distributed.global_batchnorm(model, device.type)
        precision = Precision.choose(device, cfg.precision)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        step = torch.compile(model) if cfg.compile else model
        return cls(
            model=model,
            step=distributed.wrap(step, device) if world > 1 else step,
            optimizer=optimizer,
            scheduler=lr_scheduler(optimizer, cfg.lr_schedule, cfg.epochs, steps_per_epoch),
            scaler=torch.amp.GradScaler(device.type, enabled=precision.needs_scaler),
            loss_fn=loss_function(cfg.loss, cfg.boundary_weight),
            device=device,
            precision=precision,
            ema=Ema(model, cfg.ema) if cfg.ema else None,
        )

    @property
    def scored(self) -> nn.Module:
        """What val scoring runs and checkpoints keep: the average of the weights if there is one, else the weights.
        A plain module: scoring on process 0 alone starts no collective operation."""
        return self.ema.model if self.ema else self.model

    def to_device(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True, memory_format=memory_format(self.device))
        return images, masks.to(self.device, non_blocking=True)


def train_epoch(fit: Fit, loader: DataLoader, epoch: int) -> float:
    """One pass over the train batches; returns the mean loss."""
    fit.step.train()
    total, count = torch.zeros((), device=fit.device), 0
    for images, masks in tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None):  # silent off a terminal
        loss = compute_gradients(fit, images, masks)
        fit.scaler.step(fit.optimizer)
        fit.scaler.update()
        fit.scheduler.step()
        if fit.ema:
            fit.ema.update(fit.model)
        total += loss.detach() * len(images)
        count += len(images)
    mean = distributed.mean(total / count).item()  # every process holds as many samples: the mean of means
    if not math.isfinite(mean):
        raise CarvanaError(f"train: loss became {mean} at epoch {epoch}; lower `train.lr` and re-run")
    return mean


def compute_gradients(fit: Fit, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Forward and backward of one batch (across processes: this process's share of it), leaving the (scaled)
    gradients of the batch's mean loss on the weights; returns that loss."""
    images, masks = fit.to_device(images, masks)
    with fit.precision.autocast():
        loss = fit.loss_fn(fit.step(images).float(), masks)  # the loss in fp32 whatever the model's format
    fit.optimizer.zero_grad(set_to_none=True)
    fit.scaler.scale(loss).backward()
    return loss


@torch.no_grad()
def score_val(fit: Fit, loader: DataLoader, *sinks: Callable[[int, np.ndarray], None]) -> dict[str, float]:
    """Mean loss and per-image scores over the val set. Each batch's car probabilities (float32, B x H x W) go to
    every sink with the index of the batch's first image, in order; nothing is kept for the whole val set."""
    fit.scored.eval()
    scores = ScoreAccumulator()
    total, start = torch.zeros((), device=fit.device), 0
    for images, masks in loader:
        images, masks = fit.to_device(images, masks)
        with fit.precision.autocast():
            logits = fit.scored(images).float()
        total += fit.loss_fn(logits, masks) * len(images)
        scores.add(logits > 0, masks.bool())
        probabilities = torch.sigmoid(logits[:, 0]).cpu().numpy()
        for sink in sinks:
            sink(start, probabilities)
        start += len(images)
    return {"loss": total.item() / len(loader.dataset), **scores.means()}
