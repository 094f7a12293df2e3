"""An exported model (see onnx_export) as a segmenter, run with onnxruntime on the CPU.

onnxruntime is imported when a segmenter is made: it comes with the optional `onnx` extra.
"""

import base64
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from carvana.core.errors import CarvanaError
from carvana.inference.learned_edges import LearnedRefiner
from carvana.inference.onnx_export import INPUT, REFINER_INPUTS, REFINER_KEY, SIZE_KEYS, export_onnx, require
from carvana.inference.segmenter import in_batches
from carvana.inference.settings import from_metadata

EXPORT_HINT = "export it with `python -m carvana.export --onnx FILE --model CHECKPOINT`"


class OnnxSegmenter:
    """A model exported by carvana.export, run with onnxruntime's CPU provider."""

    def __init__(self, path: Path, batch_size: int = 16) -> None:
        onnxruntime = require("onnxruntime")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors (InvalidProtobuf, NoSuchFile, ...) derive from Exception
            reason = str(error).splitlines()[0]
            raise CarvanaError(f"{path}: onnxruntime cannot load it ({reason}); {EXPORT_HINT}") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        inputs = [node.name for node in self.session.get_inputs()]
        if inputs != [INPUT] or not all(key in metadata for key in SIZE_KEYS):
            raise CarvanaError(
                f"{path}: not a carvana export (input {INPUT!r} and {' and '.join(SIZE_KEYS)} in its metadata); "
                f"{EXPORT_HINT}"
            )
        height, width = (int(metadata[key]) for key in SIZE_KEYS)
        self.size = (height, width)
        self.settings = from_metadata(metadata)
        self.edge_refiner = onnx_refiner(metadata, onnxruntime)
        self.batch_size = batch_size

    @classmethod
    def for_model(cls, path: Path, batch_size: int = 16) -> "OnnxSegmenter":
        """An .onnx file as it is; a checkpoint exported first, to a temporary file (the session keeps the model
        in memory, so the file can go)."""
        if path.suffix == ".onnx":
            return cls(path, batch_size)
        with tempfile.TemporaryDirectory(prefix="carvana-onnx-") as scratch:
            exported = Path(scratch) / "model.onnx"
            export_onnx(path, exported)
            return cls(exported, batch_size)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return in_batches(self.run, images, self.batch_size)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT: batch})[0]


def onnx_refiner(metadata: dict[str, str], onnxruntime: Any) -> LearnedRefiner | None:
    """The export's learned boundary refiner run with onnxruntime, when it holds one."""
    if REFINER_KEY not in metadata:
        return None
    graph = base64.b64decode(metadata[REFINER_KEY])
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return LearnedRefiner(
        lambda photos, probabilities: session.run(None, dict(zip(REFINER_INPUTS, (photos, probabilities))))[0]
    )
