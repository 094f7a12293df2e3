"""The learning-rate schedule, stepped once per batch."""

import math

import torch


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-batch multiplier of the base lr: constant, or one linear warm-up epoch then cosine decay to zero."""
    total = epochs * steps_per_epoch
    warmup = steps_per_epoch if epochs > 1 else 0

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
