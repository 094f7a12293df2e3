"""A model as OpenVINO IR (model.xml + model.bin in a folder), run with OpenVINO's CPU plugin.

The IR is converted from the ONNX export (carvana.inference.onnx_export): the same graph, uint8 photos in, car
probabilities out, with the image size and the inference settings in its runtime info under `carvana`. An INT8
export (carvana.inference.quantize) converts the same way: OpenVINO runs its QuantizeLinear/DequantizeLinear
pairs as INT8 convolutions. Compiled with f32 inference precision: on CPUs with bf16 units OpenVINO would
otherwise run fp32 models in bf16, outside the parity gate.

openvino is imported when a segmenter is made or a model converted: it comes with the optional `openvino` extra.
"""

import base64
import tempfile
import threading
from pathlib import Path

import numpy as np

from carvana.core.atomic import atomic_dir
from carvana.core.errors import CarvanaError
from carvana.inference.learned_edges import LearnedRefiner
from carvana.inference.onnx_export import INPUT, REFINER_KEY, SIZE_KEYS, export_onnx, require
from carvana.inference.segmenter import in_batches
from carvana.inference.settings import from_metadata

XML = "model.xml"
INFO = "carvana"  # the runtime-info section holding the ONNX file's metadata
EXPORT_HINT = "export it with `carvana export --openvino DIR --model CHECKPOINT`"
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def openvino():  # noqa: ANN201 (the module, typed only when installed)
    return require("openvino", extra="openvino")


def convert(onnx_file: Path, out: Path) -> None:
    """Write the ONNX model as OpenVINO IR into the folder `out` (model.xml, model.bin), whole or not at all, its
    ONNX metadata kept as runtime info. Weights stay fp32 (OpenVINO would store them as fp16 by default)."""
    ov = openvino()
    metadata = {prop.key: prop.value for prop in require("onnx").load(str(onnx_file)).metadata_props}
    model = ov.convert_model(str(onnx_file))
    for key, value in metadata.items():
        model.set_rt_info(value, [INFO, key])
    with atomic_dir(out) as tmp:
        ov.save_model(model, str(tmp / XML), compress_to_fp16=False)


def export_openvino(checkpoint_path: Path, out: Path) -> tuple[int, int]:
    """A checkpoint as OpenVINO IR in the folder `out`; returns its image size (height, width)."""
    with tempfile.TemporaryDirectory(prefix="carvana-openvino-") as scratch:
        onnx_file = Path(scratch) / "model.onnx"
        size = export_onnx(checkpoint_path, onnx_file)
        convert(onnx_file, out)
    return size


class OpenVinoSegmenter:
    """A model exported as OpenVINO IR, compiled for the CPU."""

    def __init__(self, path: Path, batch_size: int = 16) -> None:
        ov = openvino()
        xml = path / XML if path.is_dir() else path
        try:
            model = ov.Core().read_model(str(xml))
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
            raise CarvanaError(f"{path}: OpenVINO cannot read it ({reason}); {EXPORT_HINT}") from None
        info = model.get_rt_info()[INFO] if model.has_rt_info(INFO) else {}
        metadata = {key: value.astype(str) for key, value in info.items()}
        inputs = [port.get_any_name() for port in model.inputs]
        if inputs != [INPUT] or not all(key in metadata for key in SIZE_KEYS):
            raise CarvanaError(
                f"{path}: not a carvana export (input {INPUT!r} and {' and '.join(SIZE_KEYS)} in its runtime info); "
                f"{EXPORT_HINT}"
            )
        self.size = (int(metadata["image_height"]), int(metadata["image_width"]))
        self.settings = from_metadata(metadata)
        self.batch_size = batch_size
        self.compiled = ov.Core().compile_model(model, "CPU", F32)
        self.edge_refiner = openvino_refiner(metadata)

    @classmethod
    def for_model(cls, path: Path, batch_size: int = 16) -> "OpenVinoSegmenter":
        """IR as it is; an .onnx file or a checkpoint converted first, in a temporary folder (the compiled model is
        in memory, so the files can go)."""
        if path.suffix == ".xml" or path.is_dir():
            return cls(path, batch_size)
        with tempfile.TemporaryDirectory(prefix="carvana-openvino-") as scratch:
            ir = Path(scratch) / "ir"
            if path.suffix == ".onnx":
                convert(path, ir)
            else:
                export_openvino(path, ir)
            return cls(ir, batch_size)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return in_batches(self.run, images, self.batch_size)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled(batch)[0]


def openvino_refiner(metadata: dict[str, str]) -> LearnedRefiner | None:
    """The export's learned boundary refiner (its ONNX graph, kept in the runtime info) compiled for the CPU."""
    if REFINER_KEY not in metadata:
        return None
    ov = openvino()
    with tempfile.TemporaryDirectory(prefix="carvana-openvino-") as scratch:
        graph = Path(scratch) / "refiner.onnx"
        graph.write_bytes(base64.b64decode(metadata[REFINER_KEY]))
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(graph)), "CPU", F32)
    # predict refines on several threads at once, and an infer request runs one inference at a time ("Infer
    # Request is busy"): one request per thread
    requests = threading.local()

    def run(photos: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        if not hasattr(requests, "request"):
            requests.request = compiled.create_infer_request()
        return requests.request.infer([photos, probabilities])[0]

    return LearnedRefiner(run)
