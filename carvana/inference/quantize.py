"""INT8 post-training quantization of the ONNX export, and the accuracy gate an INT8 model must pass.

onnxruntime's static quantization calibrates the activations' ranges on photos the model trained on and writes
QuantizeLinear/DequantizeLinear pairs around the convolutions (QDQ: int8 weights per output channel, uint8
activations); onnxruntime and OpenVINO both run such a file with INT8 kernels. The weights use 7 of the 8 bits
(`reduce_range`): CPUs without VNNI (AVX2 only) multiply uint8 by int8 in 16-bit sums that saturate at full
range, and the default model's masks then disagreed with fp32's on half the pixels under onnxruntime (on 0.03 %
with it). The gate scores the INT8 model on the val photos as evaluate scores the fp32 one (full resolution, the
recorded inference settings): an INT8 model whose mean dice falls more than `max_drop` below fp32's is refused.
"""

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carvana.core.atomic import atomic_write
from carvana.core.errors import CarvanaError
from carvana.core.params import InferenceParams
from carvana.data.resize import resize_photo
from carvana.inference.onnx_export import INPUT, require
from carvana.inference.refine import refinement
from carvana.inference.scoring import FullResScores, spread
from carvana.inference.segmenter import FlipAveraged, Segmenter

CALIBRATION_PHOTOS = 256  # "a few hundred": more moves the ranges little and costs minutes
CALIBRATION_BATCH = 8
MAX_DICE_DROP = 0.001


def quantize_onnx(fp32: Path, out: Path, photos: np.ndarray) -> None:
    """Write `fp32`'s model quantized to INT8, calibrated on `photos` ((N, H, W, 3) uint8 at the model's size),
    with fp32's metadata (size, inference settings), whole or not at all."""
    onnx, quantization = require("onnx"), require("onnxruntime.quantization")
    shape_inference = require("onnxruntime.quantization.shape_inference")

    class Photos(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(np.array_split(photos, -(-len(photos) // CALIBRATION_BATCH)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.ascontiguousarray(batch)}

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="carvana-int8-") as scratch:
            prepared = Path(scratch) / "prepared.onnx"  # shapes inferred, BatchNorm folded into the convolutions
            shape_inference.quant_pre_process(str(fp32), str(prepared))
            quantization.quantize_static(
                str(prepared),
                str(tmp),
                Photos(),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )
        model = onnx.load(str(tmp))
        model.metadata_props.extend(onnx.load(str(fp32), load_external_data=False).metadata_props)
        onnx.save(model, str(tmp))

    atomic_write(out, write)


def sampled(images: np.ndarray, size: tuple[int, int], count: int) -> np.ndarray:
    """Up to `count` of the prepared photos `images`, spread evenly over them, in memory at the model's size."""
    picked = images[spread(count, len(images))]
    if picked.shape[1:3] == size:
        return np.array(picked)
    return np.stack([resize_photo(photo, size) for photo in picked])


@dataclass(frozen=True)
class Gate:
    fp32_dice: float
    int8_dice: float
    photos: int
    max_drop: float = MAX_DICE_DROP

    @property
    def drop(self) -> float:
        return self.fp32_dice - self.int8_dice

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def __str__(self) -> str:
        return (
            f"full-resolution dice on {self.photos} val photos: INT8 {self.int8_dice:.4f}, fp32 {self.fp32_dice:.4f} "
            f"({-self.drop:+.4f}; the gate allows a drop of {self.max_drop:g})"
        )

    def check(self) -> None:
        if not self.passed:
            raise CarvanaError(f"--int8: refused, nothing written: {self}; keep the fp32 model")


def full_res_dice(
    segmenter: Segmenter, root: Path, ids: list[str], images: np.ndarray, settings: InferenceParams, batch_size: int
) -> float:
    """Mean dice of root's photos `ids` at full resolution, as the model is used (`settings`: TTA, refinement);
    `images` are the photos at the segmenter's size."""
    segmenter = FlipAveraged(segmenter) if settings.tta else segmenter
    scores = FullResScores(root, settings.threshold, refinement(settings, segmenter.edge_refiner))
    for start in range(0, len(ids), batch_size):
        rows = slice(start, start + batch_size)
        scores.add_probabilities(ids[rows], segmenter.probabilities(np.array(images[rows])))
    return scores.means()["dice"]
