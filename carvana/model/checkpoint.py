"""Checkpoints: a model's weights plus what rebuilding it anywhere needs (model config, image size, the
params and epoch that made it).

Saved atomically (a crash never leaves a truncated file) and loaded with `weights_only=True` (plain tensors
and containers; a file that holds anything else is refused, never unpickled). Optimizer and scaler state
belong to training's resume state, not to these files.
"""

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from carvana.core.atomic import atomic_write
from carvana.core.errors import CarvanaError
from carvana.model.refiner import EdgeRefiner
from carvana.model.unet import UNet

RETRAIN = "re-run `dvc repro -f train` to write it again"
REFIT = "re-run `dvc repro -f train_refiner` to write it again"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint's contents, checked to hold a model's weights, config and image size."""
    checkpoint = read_state(path, device, "train", RETRAIN)
    problem = structure_problem(checkpoint)
    if problem:
        raise CarvanaError(f"{path}: not a carvana checkpoint ({problem}); {RETRAIN}")
    return checkpoint


def load_refiner(path: Path) -> dict[str, Any]:
    """A learned boundary refiner's file ({"config", "model"}), checked to build."""
    state = read_state(path, "cpu", "train_refiner", REFIT)
    build_refiner(state, path)
    return state


def read_state(path: Path, device: torch.device | str, stage: str, fix: str) -> Any:
    """What torch.save wrote to `path` (by `stage`), weights only; any failure is one line ending in `fix`."""
    if not path.exists():
        raise CarvanaError(f"{path} not found: run the {stage} stage first (`dvc repro {stage}`)")
    try:
        with warnings.catch_warnings():  # torch warns on stderr about pickle protocols it was not written with
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise CarvanaError(
            f"{path}: not a checkpoint this project wrote (damaged, or holding objects other than tensors and "
            f"plain containers, which are never unpickled: that could run code); {fix}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CarvanaError(f"{path}: unreadable checkpoint ({reason}); {fix}") from None
    return checkpoint


def structure_problem(checkpoint: Any) -> str | None:
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}, not a dict"
    missing = [key for key in ("model", "model_config", "image_size") if key not in checkpoint]
    if missing:
        return f"no {', '.join(missing)}"
    config, size = checkpoint["model_config"], checkpoint["image_size"]
    if not isinstance(checkpoint["model"], dict) or not isinstance(config, dict):
        return "model and model_config must be dicts"
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        return f"image_size {size!r} is not [height, width]"
    return None


def build_model(checkpoint: dict[str, Any], path: Path, device: torch.device | str = "cpu") -> UNet:
    """The checkpoint's model with its weights, in eval mode on `device`."""
    try:
        model = UNet(**checkpoint["model_config"])
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, TypeError, ValueError, ZeroDivisionError) as error:
        raise misfit(path, error, RETRAIN) from None
    return model.to(device).eval()


def build_refiner(state: Any, path: Path, device: torch.device | str = "cpu") -> EdgeRefiner:
    """A learned boundary refiner ({"config", "model"}, as train_refiner writes it, or within a scored model)."""
    try:
        refiner = EdgeRefiner(**state["config"])
        refiner.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise misfit(path, error, REFIT) from None
    return refiner.to(device).eval()


def misfit(path: Path, error: Exception, fix: str) -> CarvanaError:
    # load_state_dict's first line only names the model; the next ones say which weight does not fit
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    reason = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
    return CarvanaError(f"{path}: its weights do not fit the model it describes ({reason}); {fix}")
