"""params.yaml as typed, validated dataclasses: every stage reads its own group plus the top-level seed.

A wrong key, type or value stops the stage with one line naming the key (e.g. `train.lr`) and what it takes.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from carvana.errors import CarvanaError

PARAMS_FILE = Path("params.yaml")


@dataclass(frozen=True)
class SyntheticParams:
    cars: int
    width: int
    height: int
    jpeg_quality: int


@dataclass(frozen=True)
class DownloadParams:
    source: str
    synthetic: SyntheticParams


@dataclass(frozen=True)
class SplitValParams:
    val_fraction: float
    val_cars: int | None


@dataclass(frozen=True)
class PrepareParams:
    image_height: int
    image_width: int
    workers: int | None


@dataclass(frozen=True)
class ModelParams:
    features: list[int]


@dataclass(frozen=True)
class AugmentParams:
    rotate_limit: float
    rotate_p: float
    hflip_p: float
    vflip_p: float
    brightness_contrast_p: float


@dataclass(frozen=True)
class TrainParams:
    device: str
    epochs: int
    batch_size: int
    lr: float
    lr_schedule: Literal["constant", "cosine"]
    num_workers: int
    loss: Literal["bce", "bce_dice"]
    amp: bool
    compile: bool
    panels_per_epoch: int
    model: ModelParams
    augment: AugmentParams


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    threshold: float


@dataclass(frozen=True)
class RenderMasksParams:
    images: str | None
    threshold: float
    worst_cases: int
    overlay_width: int


@dataclass(frozen=True)
class Params:
    seed: int
    download: DownloadParams
    split_val: SplitValParams
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    render_masks: RenderMasksParams


# (low, high) inclusive bounds; None leaves that side open.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "seed": (0, 2**32 - 1),
    "download.synthetic.cars": (1, None),
    "download.synthetic.width": (32, None),
    "download.synthetic.height": (32, None),
    "download.synthetic.jpeg_quality": (1, 100),
    "split_val.val_fraction": (0.0, 1.0),
    "split_val.val_cars": (1, None),
    "prepare.image_height": (16, None),
    "prepare.image_width": (16, None),
    "prepare.workers": (1, None),
    "train.epochs": (1, None),
    "train.batch_size": (1, None),
    "train.lr": (0.0, 1.0),
    "train.num_workers": (0, None),
    "train.panels_per_epoch": (0, 64),
    "train.model.features": (1, None),
    "train.augment.rotate_limit": (0.0, 180.0),
    "train.augment.rotate_p": (0.0, 1.0),
    "train.augment.hflip_p": (0.0, 1.0),
    "train.augment.vflip_p": (0.0, 1.0),
    "train.augment.brightness_contrast_p": (0.0, 1.0),
    "evaluate.batch_size": (1, None),
    "evaluate.threshold": (0.0, 1.0),
    "render_masks.threshold": (0.0, 1.0),
    "render_masks.worst_cases": (1, None),
    "render_masks.overlay_width": (32, None),
}


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate the whole params file, so a typo anywhere is caught by the first stage."""
    if not path.exists():
        raise CarvanaError(f"{path} not found: run the stages from the repository root (where dvc.yaml is)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise CarvanaError(f"{path} is not valid YAML: {error}") from error
    return parse(Params, data, "")


def parse(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys, types and ranges; errors name the dotted key."""
    if not isinstance(data, dict):
        raise CarvanaError(f"params: `{prefix.rstrip('.') or 'params.yaml'}` must be a mapping of keys")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CarvanaError(f"params: unknown key `{prefix}{unknown[0]}`; known keys here: {', '.join(sorted(fields))}")
    missing = [name for name in fields if name not in data]
    if missing:
        raise CarvanaError(f"params: `{prefix}{missing[0]}` is missing; add it to params.yaml (see README)")
    hints = typing.get_type_hints(cls)
    return cls(**{name: convert(hints[name], data[name], f"{prefix}{name}") for name in fields})


def convert(kind: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return parse(kind, value, f"{key}.")
    value = check_type(kind, value, key)
    check_range(key, value)
    return value


def check_type(kind: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(kind):
            return None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return check_type(inner, value, key)
    if origin is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise CarvanaError(f"params: `{key}` is {value!r}; choose one of {', '.join(map(str, choices))}")
        return value
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list) or not value:
            raise CarvanaError(f"params: `{key}` must be a non-empty list, e.g. [16, 32, 64, 128]")
        return [check_type(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        return parse_float_string(value, key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CarvanaError(f"params: `{key}` must be {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value


def parse_float_string(value: str, key: str) -> float:
    # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number everyone means.
    try:
        return float(value)
    except ValueError:
        raise CarvanaError(f"params: `{key}` must be a number, got {value!r}") from None


def check_range(key: str, value: Any) -> None:
    low, high = RANGES.get(key.split("[")[0], (None, None))
    for number in value if isinstance(value, list) else [value]:
        numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
        if numeric and ((low is not None and number < low) or (high is not None and number > high)):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            raise CarvanaError(f"params: `{key}` is {value!r}; it must be in {bounds}")


def flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """{'train.lr': 1e-4, 'train.model.features': '[16, 32]', ...} for MLflow's flat params."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(flatten(value, f"{prefix}{f.name}."))
        else:
            flat[f"{prefix}{f.name}"] = value
    return flat
