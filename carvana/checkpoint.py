"""Checkpoints: model, optimizer and scaler state plus what is needed to rebuild the model anywhere.

Saved atomically (a crash never leaves a truncated file) and loadable on a CPU-only machine with
`weights_only=True` (plain tensors and containers, no pickled code).
"""

from pathlib import Path
from typing import Any

import torch

from carvana.atomic import atomic_write
from carvana.errors import CarvanaError
from carvana.model import UNet


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    if not path.exists():
        raise CarvanaError(f"{path} not found: run the train stage first (`dvc repro train`)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError) as error:
        raise CarvanaError(f"{path}: unreadable checkpoint ({error}); re-run `dvc repro -f train`") from error


def model_from_checkpoint(checkpoint: dict[str, Any], device: torch.device | str = "cpu") -> UNet:
    model = UNet(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()
