"""Full-resolution masks through each inference backend against PyTorch: the same U-Net, the same photos.

Each side runs the prediction engine as `carvana predict --masks` does (decode at the model's size, the model on
batches of 16, upsample to the photo's size, threshold, write Kaggle's GIF), so the rate is masks/s at full
resolution and only the backend differs: onnxruntime on the ONNX export, OpenVINO on the same graph converted
(fp32), and OpenVINO on its INT8 quantization (calibrated on the prepared photos, as `carvana export --int8`
does). Each runtime uses its default threads (torch's intra-op threads in the header, one per physical core
for onnxruntime and OpenVINO).
"""

import multiprocessing
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.dataset import photo_size
from benchmarks.measure import compare
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.data.layout import image_path
from carvana.inference.engine import predict
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.onnx_export import export_onnx
from carvana.inference.openvino_backend import OpenVinoSegmenter
from carvana.inference.photos import Photo
from carvana.inference.quantize import CALIBRATION_PHOTOS, quantize_onnx, sampled
from carvana.inference.segmenter import Segmenter, TorchSegmenter
from carvana.inference.writers import MaskGifs

BATCH = 16


def measure(*args: Any) -> list[Row]:
    """The rows of `measure_here`, measured in a fresh process: onnxruntime's and OpenVINO's native thread pools
    stay out of the benchmark's own process (with them loaded, a later row's process died of SIGSEGV)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(measure_here, *args).result()


def measure_here(
    recipe: Recipe,
    root: Path,
    ids: list[str],
    images: np.ndarray,
    checkpoint: Path,
    work: Path,
    repeats: int,
    min_seconds: float,
) -> list[Row]:
    """A row per backend against torch; `images` are prepared photos at the recipe's size, for INT8 calibration."""
    backends = exported_backends(checkpoint, sampled(images, recipe.size, CALIBRATION_PHOTOS), work)
    photos = [Photo(i, str(image_path(root, i)), image_path(root, i)) for i in ids]

    def masks(segmenter: Segmenter) -> Callable[[], int]:
        out = work / "backend-masks"
        return lambda: sum(1 for _ in predict(photos, segmenter, [MaskGifs(out)], 0.5, BATCH, os.cpu_count() or 1))

    torch_masks = masks(TorchSegmenter(checkpoint, batch_size=BATCH))
    torch_masks()  # warm-up
    height, width = photo_size(root, ids[0])
    rows = []
    for name, segmenter in backends.items():
        ours = masks(segmenter)
        ours()
        rows.append(
            Row.of(
                f"inference: {name} vs torch (predict --masks at {width}x{height}, {recipe.network})",
                compare(ours, torch_masks, repeats, min_seconds),
                "masks/s",
                "≥ 1",
            )
        )
    return rows


def exported_backends(checkpoint: Path, calibration: np.ndarray, work: Path) -> dict[str, Segmenter]:
    with tempfile.TemporaryDirectory(prefix="carvana-backends-", dir=work) as scratch:
        fp32, int8 = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        export_onnx(checkpoint, fp32)
        quantize_onnx(fp32, int8, calibration)
        return {
            "onnxruntime": OnnxSegmenter(fp32, BATCH),
            "OpenVINO fp32": OpenVinoSegmenter.for_model(fp32, BATCH),
            "OpenVINO INT8": OpenVinoSegmenter.for_model(int8, BATCH),
        }
