"""Training losses on logits: the tutorial's BCE, and BCE plus soft dice."""

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean per-image soft dice; eps keeps empty masks finite."""
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    intersection = (probs * target).sum(1)
    dice = (2 * intersection + eps) / (probs.sum(1) + target.sum(1) + eps)
    return 1 - dice.mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)


LOSSES: dict[str, Loss] = {"bce": F.binary_cross_entropy_with_logits, "bce_dice": bce_dice_loss}
