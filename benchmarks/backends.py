"""Full-resolution masks through each inference backend against PyTorch: the same U-Net, the same photos.

Each side runs the prediction engine as `carvana predict --masks` does (decode at the model's size, the model on
batches of 16, upsample to the photo's size, threshold, write Kaggle's GIF), so the rate is masks/s at full
resolution and only the backend differs: onnxruntime on the ONNX export, OpenVINO on the same graph converted
(fp32), and OpenVINO on its INT8 quantization (calibrated on the prepared photos, as `carvana export --int8`
does). For a recipe served with TTA or guided refinement (the `cpu` preset), one more row: its masks as served,
INT8 on OpenVINO against fp32 on torch. Each runtime uses its default threads (torch's intra-op threads in the
header, one per physical core for onnxruntime and OpenVINO).
"""

import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.dataset import photo_size
from benchmarks.inference import described, served_masks
from benchmarks.measure import compare
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.data.layout import image_path
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.onnx_export import export_onnx
from carvana.inference.openvino_backend import OpenVinoSegmenter
from carvana.inference.photos import Photo
from carvana.inference.quantize import CALIBRATION_PHOTOS, quantize_onnx, sampled
from carvana.inference.segmenter import Segmenter, TorchSegmenter
from carvana.inference.settings import UNRECORDED

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
    out = work / "backend-masks"
    plain = UNRECORDED  # threshold 0.5, no TTA, no refinement
    torch_segmenter = TorchSegmenter(checkpoint, batch_size=BATCH)
    torch_masks = served_masks(photos, torch_segmenter, plain, out)
    torch_masks()  # warm-up
    height, width = photo_size(root, ids[0])
    rows = []
    for name, segmenter in backends.items():
        ours = served_masks(photos, segmenter, plain, out)
        ours()
        rows.append(
            Row.of(
                f"inference: {name} vs torch (predict --masks at {width}x{height}, {recipe.network})",
                compare(ours, torch_masks, repeats, min_seconds),
                "masks/s",
                "≥ 1",
            )
        )
    served = recipe.params.inference.model_copy(update={"edge_refiner": False})
    if served.tta or served.refine:  # the recipe makes its masks otherwise than plain
        ours, theirs = (
            served_masks(photos, backends["OpenVINO INT8"], served, out),
            served_masks(photos, torch_segmenter, served, out),
        )
        ours()
        rows.append(
            Row.of(
                f"inference: the {recipe.name} recipe as served ({described(served)}) on OpenVINO INT8 vs torch "
                f"({width}x{height} photos, {recipe.network})",
                compare(ours, theirs, repeats, min_seconds),
                "masks/s",
                "ours ≥ 10 masks/s",
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
