"""How a model makes its masks: the threshold, mirror TTA and the edge refinement's radius (params.yaml's
`inference` group). evaluate scores a model with them and records them with it: in the checkpoint it writes
(stages/evaluate/model.pt, and the registered model built from it) and in an ONNX export's metadata. Every user of
the model (predict, serve, the served model, render_masks) starts from what is recorded, unless told otherwise."""

from carvana.core.params import InferenceParams

UNRECORDED = InferenceParams(threshold=0.5, tta=False, refine=0)  # a model that was never evaluated
KEY = "inference"  # in a checkpoint
METADATA = {"threshold": "inference_threshold", "tta": "inference_tta", "refine": "inference_refine"}  # ONNX


def recorded(checkpoint: dict) -> InferenceParams:
    """The settings a checkpoint was scored with (UNRECORDED when it carries none)."""
    return InferenceParams(**checkpoint[KEY]) if KEY in checkpoint else UNRECORDED


def overridden(settings: InferenceParams, **given: float | bool | int | None) -> InferenceParams:
    """`settings` with the values the user gave (None: not given)."""
    return settings.model_copy(update={name: value for name, value in given.items() if value is not None})


def as_metadata(settings: InferenceParams) -> dict[str, str]:
    return {key: str(getattr(settings, name)).lower() for name, key in METADATA.items()}


def from_metadata(metadata: dict[str, str]) -> InferenceParams:
    if not all(key in metadata for key in METADATA.values()):
        return UNRECORDED
    value = {name: metadata[key] for name, key in METADATA.items()}
    return InferenceParams(threshold=float(value["threshold"]), tta=value["tta"] == "true", refine=int(value["refine"]))


def described(settings: InferenceParams) -> str:
    """`threshold 0.5, mirror TTA, refine 8` (what predict and serve say they use)."""
    parts = [f"threshold {settings.threshold:g}"]
    parts += ["mirror TTA"] if settings.tta else []
    parts += [f"refine {settings.refine}"] if settings.refine else []
    return ", ".join(parts)
