"""How a model makes its masks: the threshold, mirror TTA, the learned edges and the guided filter's radius
(params.yaml's `inference` group). evaluate scores a model with them and records them with it: in the checkpoint it
writes (stages/evaluate/model.pt, and the registered model built from it) and in an ONNX export's metadata. Every user
of the model (predict, serve, the served model, render_masks) starts from what is recorded, unless told otherwise."""

from carvana.core.params import InferenceParams

UNRECORDED = InferenceParams(threshold=0.5, tta=False, refine=0, edge_refiner=False, one_car=False)  # never evaluated
KEY = "inference"  # in a checkpoint
METADATA = {  # in an ONNX export
    "threshold": "inference_threshold",
    "tta": "inference_tta",
    "refine": "inference_refine",
    "edge_refiner": "inference_edge_refiner",
    "one_car": "inference_one_car",
}
ADDED_LATER = {"edge_refiner": False, "one_car": False}  # what models scored before these settings existed used


def recorded(checkpoint: dict) -> InferenceParams:
    """The settings a checkpoint was scored with (UNRECORDED when it carries none)."""
    return InferenceParams(**(ADDED_LATER | checkpoint[KEY])) if KEY in checkpoint else UNRECORDED


def overridden(settings: InferenceParams, **given: float | bool | int | None) -> InferenceParams:
    """`settings` with the values the user gave (None: not given)."""
    return settings.model_copy(update={name: value for name, value in given.items() if value is not None})


def as_metadata(settings: InferenceParams) -> dict[str, str]:
    return {key: str(getattr(settings, name)).lower() for name, key in METADATA.items()}


def from_metadata(metadata: dict[str, str]) -> InferenceParams:
    value = {name: metadata[key] for name, key in METADATA.items() if key in metadata}
    value = {name: str(default).lower() for name, default in ADDED_LATER.items()} | value
    if len(value) < len(METADATA):
        return UNRECORDED
    return InferenceParams(
        threshold=float(value["threshold"]),
        tta=value["tta"] == "true",
        refine=int(value["refine"]),
        edge_refiner=value["edge_refiner"] == "true",
        one_car=value["one_car"] == "true",
    )


def described(settings: InferenceParams) -> str:
    """`threshold 0.5, mirror TTA, refine 8` (what predict and serve say they use)."""
    parts = [f"threshold {settings.threshold:g}"]
    parts += ["mirror TTA"] if settings.tta else []
    parts += ["learned edges"] if settings.edge_refiner else []
    parts += [f"refine {settings.refine}"] if settings.refine else []
    parts += ["one car"] if settings.one_car else []
    return ", ".join(parts)
