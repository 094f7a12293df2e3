"""A checkpoint's U-Net as one self-contained ONNX file, and that file logged to the model's MLflow run.

The graph is the `Segmenter` protocol as a file: input `images`, (N, H, W, 3) uint8 RGB photos at the model's size
as decoded; output `probabilities`, (N, H, W) float32 car probabilities (the scaling to [0, 1] and the sigmoid
are in the graph). N is a dynamic axis (`batch`); H and W are fixed at the checkpoint's image size, which the
file's metadata_props hold as `image_height` and `image_width`, beside the inference settings the model was
scored with (`inference_threshold`, `inference_tta`, `inference_refine`, `inference_edge_refiner`,
`inference_one_car`) and, when the model has one, its learned boundary refiner as a second ONNX graph
(`edge_refiner_onnx`, base64: inputs `photos` (K, s, s, 3) uint8 and `probabilities` (K, s, s) float32 tiles, output
`refined`): onnxruntime and the file are all it takes to run it as it was scored.

Opset 20, pinned: what torch 2.13's exporter (torch.export-based, `dynamo=True`) writes natively, so no version
conversion runs; onnxruntime reads it from 1.17 on. The weights are inside the file (no external .data file).
"""

import base64
import importlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch
from mlflow.tracking import MlflowClient

from carvana.core.atomic import atomic_write
from carvana.core.errors import CarvanaError
from carvana.inference.learned_edges import KEY as REFINER
from carvana.inference.learned_edges import TILE, TileProbabilities
from carvana.inference.segmenter import PhotoProbabilities
from carvana.inference.settings import as_metadata, recorded
from carvana.model.checkpoint import build_model, build_refiner, load_checkpoint
from carvana.model.refiner import MARGIN
from carvana.tracking.store import connect

OPSET = 20
INPUT, OUTPUT = "images", "probabilities"
SIZE_KEYS = ("image_height", "image_width")
ARTIFACT_DIR, ARTIFACT_NAME = "onnx", "model.onnx"
REFINER_KEY = "edge_refiner_onnx"  # in the metadata: the refiner's own ONNX graph, base64
REFINER_INPUTS, REFINER_OUTPUT = ("photos", "probabilities"), "refined"
EXAMPLE_BATCH = 2  # torch.export fixes every dimension of size 1 in the example input


def export_onnx(checkpoint_path: Path, out: Path) -> tuple[int, int]:
    """Write the checkpoint's model to `out` as ONNX, whole or not at all; returns its image size (height, width)."""
    require("onnxscript")  # torch's exporter imports it (and onnx) on first use
    checkpoint = load_checkpoint(checkpoint_path)
    size = tuple(checkpoint["image_size"])
    model = PhotoProbabilities(build_model(checkpoint, checkpoint_path))
    metadata = dict(zip(SIZE_KEYS, map(str, size))) | as_metadata(recorded(checkpoint))
    if REFINER in checkpoint:
        metadata[REFINER_KEY] = refiner_onnx(TileProbabilities(build_refiner(checkpoint[REFINER], checkpoint_path)))
    example = torch.zeros((EXAMPLE_BATCH, *size, 3), dtype=torch.uint8)

    def write(tmp: Path) -> None:
        program = onnx_program(model, (example,), [INPUT], [OUTPUT])
        program.model.metadata_props.update(metadata)
        program.save(tmp, external_data=False)

    atomic_write(out, write)  # exported inside the write: an unwritable output fails at once, not after the export
    return size


def refiner_onnx(model: TileProbabilities) -> str:
    """The learned boundary refiner as a serialized ONNX graph, base64."""
    side = TILE + 2 * MARGIN
    example = (torch.zeros((EXAMPLE_BATCH, side, side, 3), dtype=torch.uint8), torch.zeros((EXAMPLE_BATCH, side, side)))
    program = onnx_program(model, example, list(REFINER_INPUTS), [REFINER_OUTPUT])
    return base64.b64encode(program.model_proto.SerializeToString()).decode("ascii")


def onnx_program(
    model: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str]
) -> torch.onnx.ONNXProgram:
    """`model` exported with a dynamic first axis (`batch`) on every input, the other axes fixed as in `example`."""
    batch = torch.export.Dim("batch")
    with quiet_exporter():
        return torch.onnx.export(
            model,
            example,
            dynamo=True,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=tuple({0: batch} for _ in example),
            verbose=False,
        )


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """No exporter chatter on stderr: its notes on torchvision ops it skips and torch's own deprecation warnings."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


NEEDS = {
    "onnx": "ONNX export and the onnxruntime backend",
    "openvino": "OpenVINO export and the openvino backend",
    "ray": "predict --ray and its actors",
}


def require(module: str, extra: str = "onnx") -> ModuleType:
    """An import of an optional extra (`onnx`, `openvino`), or one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise CarvanaError(
            f"{module} is not installed; {NEEDS[extra]} need the {extra} extra: "
            f'pip install -c constraints.txt -e ".[{extra}]"'
        ) from None


def log_export(path: Path, run_id: str, int8: bool = False) -> str:
    """Log an export to the run that trained its model: an ONNX file as onnx/model.onnx whatever its own name, an
    OpenVINO folder as openvino/ (onnx-int8/, openvino-int8/ when quantized); returns where."""
    folder = ("openvino" if path.is_dir() else ARTIFACT_DIR) + ("-int8" if int8 else "")
    client = MlflowClient(connect())
    if path.is_dir():
        client.log_artifacts(run_id, str(path), folder)
        return f"{folder}/"
    with tempfile.TemporaryDirectory(prefix="carvana-onnx-") as scratch:
        named = Path(scratch) / ARTIFACT_NAME
        named.symlink_to(path.resolve())  # MLflow copies (or uploads) the file the link points to
        client.log_artifact(run_id, str(named), folder)
    return f"{folder}/{ARTIFACT_NAME}"
