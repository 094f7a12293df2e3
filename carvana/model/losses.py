"""Training losses on logits: the tutorial's BCE, BCE plus soft dice, and either with the pixels along the mask's
edge weighted up (the first-placed Carvana solution weighted its boundary pixels 3x)."""

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EDGE_RADIUS = 2  # pixels each side of a mask edge (at the training resolution) that count as its boundary band


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean per-image soft dice; eps keeps empty masks finite."""
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    intersection = (probs * target).sum(1)
    dice = (2 * intersection + eps) / (probs.sum(1) + target.sum(1) + eps)
    return 1 - dice.mean()


def edge_band(target: torch.Tensor, radius: int = EDGE_RADIUS) -> torch.Tensor:
    """1 where a pixel of an (N, 1, H, W) mask is within `radius` pixels of its edge, else 0."""
    size = 2 * radius + 1
    dilated = F.max_pool2d(target, size, stride=1, padding=radius)
    eroded = -F.max_pool2d(-target, size, stride=1, padding=radius)
    return dilated - eroded


def bce_loss(logits: torch.Tensor, target: torch.Tensor, boundary_weight: float = 1.0) -> torch.Tensor:
    """BCE with logits; with `boundary_weight` > 1, a weighted mean in which edge-band pixels count that much."""
    if boundary_weight == 1.0:
        return F.binary_cross_entropy_with_logits(logits, target)
    weight = 1 + (boundary_weight - 1) * edge_band(target)
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum() / weight.sum()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, boundary_weight: float = 1.0) -> torch.Tensor:
    return bce_loss(logits, target, boundary_weight) + soft_dice_loss(logits, target)


LOSSES = {"bce": bce_loss, "bce_dice": bce_dice_loss}


def loss_function(name: str, boundary_weight: float = 1.0) -> Loss:
    """The loss `name` ("bce" or "bce_dice") with its BCE's edge band weighted `boundary_weight`x."""
    return partial(LOSSES[name], boundary_weight=boundary_weight)
