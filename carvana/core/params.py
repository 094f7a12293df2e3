"""params.yaml as one schema: every key's type, bounds and help are declared here, once.

A wrong key, type or value stops the stage with one line naming the key (e.g. `train.lr`) and what it takes.
`python -m carvana.core.params` prints the whole schema.
"""

import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from carvana.core.cli import Parser
from carvana.core.errors import CarvanaError, run_main
from carvana.data.repaint import PAINTS

PARAMS_FILE = Path("params.yaml")


def _number_from_string(value: Any) -> Any:
    # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number everyone means.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Float = Annotated[float, BeforeValidator(_number_from_string)]
Probability = Annotated[Float, Field(ge=0, le=1)]
Paint = Literal[tuple(PAINTS)]  # type: ignore[valid-type]  # the repaint check's paints, by name


class Group(BaseModel):
    """A params group: unknown keys, wrong types (no silent 2.5 -> 2) and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SyntheticParams(Group):
    cars: int = Field(ge=1, description="cars to generate, 16 views each")
    width: int = Field(ge=32, description="photo width in pixels (Kaggle's: 1918)")
    height: int = Field(ge=32, description="photo height in pixels (Kaggle's: 1280)")
    jpeg_quality: int = Field(ge=1, le=100, description="JPEG quality of the photos")


class DownloadParams(Group):
    source: str = Field(
        min_length=1,
        description="synthetic, kaggle, or a folder/.zip in Kaggle layout (relative to the repository root)",
    )
    synthetic: SyntheticParams


class SplitValParams(Group):
    val_fraction: Float = Field(
        gt=0, lt=1, description="share of cars held out for validation, rounded, at least one car"
    )
    val_cars: int | None = Field(
        ge=0, description="an exact number of held-out cars; overrides val_fraction; 0: a final fit on every car"
    )
    folds: int | None = Field(ge=2, description="cross-validation: the cars in this many seeded groups; overrides both")
    fold: int = Field(ge=0, description="with folds: the group held out for validation, 0 .. folds-1")

    @model_validator(mode="after")
    def _fold_exists(self) -> "SplitValParams":
        if self.folds is not None and self.fold >= self.folds:
            raise CarvanaError(
                f"params: `split_val.fold` is {self.fold} but `split_val.folds` is {self.folds}; "
                f"folds are numbered 0 to {self.folds - 1}"
            )
        return self


class PrepareParams(Group):
    image_height: int = Field(ge=16, description="model input height in pixels")
    image_width: int = Field(ge=16, description="model input width in pixels")
    workers: int | None = Field(ge=1, description="decoding processes; null: one per core")


class ModelParams(Group):
    features: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=1, description="U-Net encoder widths, one per level, e.g. [16, 32, 64, 128]"
    )
    space_to_depth: int = Field(
        ge=1,
        le=8,
        description="N > 1: each NxN block of the prepared image folded into channels, so the U-Net runs at 1/N of "
        "prepare's resolution and predicts every pixel of it (more resolution per FLOP); 1: off",
    )
    block: Literal["conv", "separable"] = Field(
        description="conv: the tutorial's 3x3 convolutions; separable: depthwise-separable ones but the first "
        "(about a sixth of the FLOPs at the same widths)"
    )


class AugmentParams(Group):
    rotate_limit: Float = Field(ge=0, le=180, description="rotation range in degrees, +-")
    rotate_p: Probability
    shift_scale_p: Probability = Field(
        description="the photo zoomed by up to +-scale_limit and shifted by up to +-shift_limit of its size"
    )
    scale_limit: Float = Field(ge=0, lt=1, description="zoom range, +- (0.2: 0.8x .. 1.2x)")
    shift_limit: Float = Field(ge=0, le=0.5, description="shift range, +- a share of the photo's width and height")
    hflip_p: Probability
    vflip_p: Probability
    brightness_contrast_p: Probability
    colour_p: Probability = Field(
        description="the whole photo's colours changed: hue rotated, channels shuffled or grey"
    )
    repaint_p: Probability = Field(description="the car (its mask) repainted in a random colour, its shading kept")
    repaint_feather: Float = Field(
        ge=0, le=8, description="pixels (a Gaussian's sigma) the repaint fades over across the car's edge; 0: hard"
    )

    @classmethod
    def off(cls, **on: float) -> "AugmentParams":
        """No augmentation but what `on` turns on (scripts and tests that build their own training)."""
        return cls(**{name: 0.0 for name in cls.model_fields} | on)


class TrainParams(Group):
    device: str = Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, description="images per optimizer step, over all processes")
    processes: int = Field(ge=1, description="training processes (torchrun); each takes batch_size / processes")
    lr: Float = Field(gt=0, le=1, description="Adam's learning rate")
    lr_schedule: Literal["constant", "cosine"]
    num_workers: int = Field(ge=0, description="DataLoader worker processes")
    loss: Literal["bce", "bce_dice"]
    boundary_weight: Float = Field(
        ge=1, le=100, description="weight of the loss's BCE on pixels within 2 of a mask edge (1: plain BCE)"
    )
    ema: Float = Field(
        ge=0, lt=1, description="decay of an average of the weights, scored and kept instead of them (0: off)"
    )
    keep: Literal["best", "last"] = Field(
        description="the epoch kept as the model (checkpoints/best.pt, what evaluate scores): the best val dice's, "
        "or the last (a val score chosen on the cars it is then judged on flatters cross-validation)"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        description="auto: bf16 where the hardware computes it natively (fp16 on older GPUs), else fp32"
    )
    compile: bool
    panels_per_epoch: int = Field(ge=0, le=64, description="photo|truth|prediction rows logged per epoch")
    full_res_every: int = Field(
        ge=0, description="score the val cars at the photos' resolution every N epochs and at the last; 0: never"
    )
    model: ModelParams
    augment: AugmentParams


class InferenceParams(Group):
    threshold: Float = Field(gt=0, lt=1, description="probability above which a pixel is car")
    tta: bool = Field(description="average each photo's prediction with its mirror image's")
    refine: int = Field(ge=0, description="guided-filter radius refining edges at full resolution (0: upsample only)")
    edge_refiner: bool = Field(
        description="the learned boundary refiner (train_refiner's) corrects the edges at full resolution, before "
        "the guided filter if refine > 0"
    )
    one_car: bool = Field(
        description="keep the car pixels within the outline of the largest connected car region, after the edges "
        "are refined (a Carvana photo shows one car: stray patches of floor or backdrop are dropped)"
    )


class TrainRefinerParams(Group):
    steps: int = Field(ge=1, description="optimizer steps")
    batch_size: int = Field(ge=1, description="tiles per step")
    lr: Float = Field(gt=0, le=1, description="Adam's learning rate (cosine decay to zero)")
    width: int = Field(ge=1, le=256, description="channels of each of the refiner's convolutions")
    tiles_per_photo: int = Field(ge=1, description="tiles of each train photo, centred on the coarse mask's edge")
    jitter: int = Field(ge=0, le=16, description="photo pixels each tile's coarse mask is shifted by, at random")


class EvaluateParams(Group):
    batch_size: int = Field(ge=1)
    repaint: list[Paint] = Field(
        description="paints the val cars are also scored in, repainted through their masks (repaint_<paint>_dice_full)"
    )
    repaint_photos: int = Field(
        ge=1, description="val photos the repaint check scores at most, spread over the val cars (all when fewer)"
    )


class RenderMasksParams(Group):
    images: str | None = Field(description="null: the val photos; or a folder of .jpg/.jpeg/.png photos")
    worst_cases: int = Field(ge=1, description="overlays in the contact sheet")
    overlay_width: int = Field(ge=32, description="overlay width in pixels")


class Params(Group):
    seed: int = Field(ge=0, le=2**32 - 1, description="drives data generation, split, augmentation, initialisation")
    download: DownloadParams
    split_val: SplitValParams
    prepare: PrepareParams
    train: TrainParams
    train_refiner: TrainRefinerParams
    inference: InferenceParams
    evaluate: EvaluateParams
    render_masks: RenderMasksParams

    @model_validator(mode="after")
    def _model_fits_the_image(self) -> "Params":
        size = (self.prepare.image_height, self.prepare.image_width)
        train = self.train
        if train.batch_size % train.processes:
            raise CarvanaError(
                f"params: `train.batch_size` {train.batch_size} does not split evenly over `train.processes` "
                f"{train.processes}; make it a multiple of {train.processes}"
            )
        check_model_fits(train.model, size, train.batch_size // train.processes)
        return self


def check_model_fits(model: ModelParams, size: tuple[int, int], batch_size: int) -> None:
    """The stem folds blocks of `space_to_depth` pixels, so the image must be made of whole blocks; then each U-Net
    level halves the image: a too deep model pools it away, and BatchNorm needs more than one value per channel at
    the bottleneck."""
    block, features = model.space_to_depth, model.features
    if size[0] % block or size[1] % block:
        raise CarvanaError(
            f"params: `train.model.space_to_depth` is {block} but prepare's {size[0]}x{size[1]} is not made of "
            f"{block}x{block} blocks; make prepare.image_height and image_width multiples of {block}"
        )
    size = (size[0] // block, size[1] // block)
    image = f"{size[0]}x{size[1]} image" + (f" (prepare's, folded by space_to_depth {block})" if block > 1 else "")
    levels = len(features)
    height, width = size[0] >> levels, size[1] >> levels
    fits = min(size).bit_length() - 1
    if height < 1 or width < 1:
        raise CarvanaError(
            f"params: `train.model.features` has {levels} levels, but a {image} is halved to "
            f"nothing after {fits}; use at most {fits} features or raise prepare.image_height/image_width to at "
            f"least {2**levels * block}"
        )
    if batch_size * height * width == 1:
        raise CarvanaError(
            f"params: a batch of 1 per process, and `train.model.features` halves a {image} to "
            "1x1, so BatchNorm sees one value per channel; use 2 or more images per process, or one level fewer"
        )


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate the whole params file, so a typo anywhere is caught by the first stage."""
    if not path.exists():
        raise CarvanaError(f"{path} not found: run the stages from the repository root (where dvc.yaml is)")
    try:
        data = yaml.load(path.read_text(), UniqueKeys) or {}
    except yaml.YAMLError as error:
        raise CarvanaError(f"{path} is not valid YAML: {error}") from error
    return parse(data)


class UniqueKeys(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (DVC refuses such a params.yaml; PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise CarvanaError(
                    f"{PARAMS_FILE}: `{key}` is given twice (line {key_node.start_mark.line + 1}); keep one"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse(data: Any) -> Params:
    if not isinstance(data, dict):
        raise CarvanaError("params: params.yaml must be a mapping of keys")
    try:
        return Params.model_validate(data)
    except ValidationError as error:
        raise CarvanaError(describe(error.errors()[0])) from None


def describe(error: Any) -> str:
    """One line for pydantic's first error, naming the dotted key and what it takes."""
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    model, help_text = field_of(error["loc"])
    if error["type"] == "missing":
        return f"params: `{key}` is missing; add it to params.yaml (see README)"
    if error["type"] == "extra_forbidden":
        hint = nearest(str(error["loc"][-1]), list(model.model_fields))
        return f"params: unknown key `{key}`{hint}; known keys here: {', '.join(model.model_fields)}"
    if error["type"] == "model_type":
        return f"params: `{key or 'params.yaml'}` must be a mapping of keys"
    need = help_text if error["type"] == "string_pattern_mismatch" else error["msg"].replace("Input should be", "")
    hint = f" ({help_text})" if help_text and help_text != need else ""
    return f"params: `{key}` is {error['input']!r}; it must be {need.strip()}{hint}"


def field_of(loc: tuple[Any, ...]) -> tuple[type[BaseModel], str | None]:
    """The group holding the key at `loc` and the key's help text."""
    model: type[BaseModel] = Params
    help_text = None
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            break
        help_text = field.description
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
    return model, help_text


def flatten(group: BaseModel, prefix: str = "") -> dict[str, Any]:
    """{'train.lr': 1e-4, 'train.model.features': [16, 32], ...} for MLflow's flat params."""
    flat: dict[str, Any] = {}
    for name in type(group).model_fields:
        value = getattr(group, name)
        if isinstance(value, BaseModel):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def schema_rows(model: type[BaseModel] = Params, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, bounds, help) of every param."""
    rows = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            rows += schema_rows(field.annotation, f"{prefix}{name}.")
            continue
        bounds = [f"{symbol} {getattr(m, key)}" for m in field.metadata for key, symbol in BOUNDS if hasattr(m, key)]
        rows.append((f"{prefix}{name}", type_name(field.annotation), ", ".join(bounds) or "-", field.description or ""))
    return rows


def nearest(name: str, known: list[str]) -> str:
    """` (did you mean x?)` for the closest of `known`, or nothing."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        "carvana params",
        description="Every param of params.yaml: its type, bounds, value in this workspace and what it does. "
        "Change one with `dvc exp run -S KEY=VALUE`.",
    )
    parser.add_argument("keys", nargs="*", metavar="KEY", help="only these, e.g. train.lr train.model.features")
    keys = parser.parse_args(argv).keys
    rows = schema_rows()
    known = [row[0] for row in rows]
    for key in keys:
        if key not in known:
            raise CarvanaError(f"carvana params: no param `{key}`{nearest(key, known)}")
    values = flatten(load_params()) if PARAMS_FILE.exists() else {}
    for key, kind, bounds, help_text in rows:
        if not keys or key in keys:
            print(f"{key}  {kind}  {bounds}  = {values.get(key, '?')!r}  {help_text}".rstrip())


def type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is list:
        return f"list[{type_name(args[0])}]"
    return "null" if annotation is type(None) else annotation.__name__


BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="))


if __name__ == "__main__":
    run_main(main)
