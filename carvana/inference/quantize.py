"""INT8 post-training quantization of the ONNX export, and the accuracy gate an INT8 model must pass.

onnxruntime's static quantization calibrates the activations' ranges on photos the model trained on and writes
QuantizeLinear/DequantizeLinear pairs around the convolutions (QDQ: int8 weights per output channel, uint8
activations); onnxruntime and OpenVINO both run such a file with INT8 kernels. The weights use 7 of the 8 bits
(`reduce_range`): CPUs without VNNI (AVX2 only) multiply uint8 by int8 in 16-bit sums that saturate at full
range, and the default model's masks then disagreed with fp32's on half the pixels under onnxruntime (on 0.03 %
with it). A model holding the learned boundary refiner has its refiner's graph quantized the same way, calibrated
on tiles along the coarse edges of train photos at full resolution (what the refiner is given in use). The gate
scores the INT8 model on the val photos as evaluate scores the fp32 one (full resolution, the recorded inference
settings, the INT8 refiner included): an INT8 model whose mean dice falls more than `max_drop` below fp32's is
refused.
"""

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carvana.core.atomic import atomic_write
from carvana.core.errors import CarvanaError
from carvana.core.params import InferenceParams
from carvana.data.resize import resize_photo
from carvana.inference.onnx_export import INPUT, REFINER_INPUTS, REFINER_KEY, require
from carvana.inference.refine import refinement
from carvana.inference.scoring import FullResScores, spread
from carvana.inference.segmenter import Segmenter, with_tta

CALIBRATION_PHOTOS = 256  # "a few hundred": more moves the ranges little and costs minutes
CALIBRATION_BATCH = 8
CALIBRATION_TILES = 64  # the refiner's calibration batch
MAX_DICE_DROP = 0.001

EdgeTiles = tuple[np.ndarray, np.ndarray]  # (K, s, s, 3) uint8 photo tiles, (K, s, s) float32 probabilities


def quantize_onnx(fp32: Path, out: Path, photos: np.ndarray, tiles: EdgeTiles | None = None) -> None:
    """Write `fp32`'s model quantized to INT8, calibrated on `photos` ((N, H, W, 3) uint8 at the model's size),
    with fp32's metadata (size, inference settings), whole or not at all. Its learned boundary refiner, when `tiles`
    are given to calibrate it on, is quantized too."""
    onnx = require("onnx")

    def write(tmp: Path) -> None:
        quantize_graph(fp32, tmp, [{INPUT: batch} for batch in batches(photos, CALIBRATION_BATCH)])
        model = onnx.load(str(tmp))
        metadata = {prop.key: prop.value for prop in onnx.load(str(fp32), load_external_data=False).metadata_props}
        if tiles is not None:
            metadata[REFINER_KEY] = quantized_refiner(metadata[REFINER_KEY], tiles)
        onnx.helper.set_model_props(model, metadata)
        onnx.save(model, str(tmp))

    atomic_write(out, write)


def quantized_refiner(graph: str, tiles: EdgeTiles) -> str:
    """The refiner's ONNX graph (base64, as the export's metadata holds it) quantized, calibrated on `tiles`."""
    with tempfile.TemporaryDirectory(prefix="carvana-int8-") as scratch:
        fp32, int8 = Path(scratch) / "refiner.onnx", Path(scratch) / "refiner-int8.onnx"
        fp32.write_bytes(base64.b64decode(graph))
        photos, probabilities = tiles
        feeds = [
            dict(zip(REFINER_INPUTS, pair))
            for pair in zip(batches(photos, CALIBRATION_TILES), batches(probabilities, CALIBRATION_TILES))
        ]
        quantize_graph(fp32, int8, feeds)
        return base64.b64encode(int8.read_bytes()).decode("ascii")


def quantize_graph(fp32: Path, out: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """onnxruntime's static QDQ quantization of the ONNX file `fp32` into `out`, its activations' ranges taken from
    running it on `feeds`."""
    quantization = require("onnxruntime.quantization")
    shape_inference = require("onnxruntime.quantization.shape_inference")

    class Feeds(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="carvana-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"  # shapes inferred, BatchNorm folded into the convolutions
        shape_inference.quant_pre_process(str(fp32), str(prepared))
        quantization.quantize_static(
            str(prepared),
            str(out),
            Feeds(),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )


def batches(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(rows[start : start + size]) for start in range(0, len(rows), size)]


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
    segmenter = with_tta(segmenter, settings.tta)
    scores = FullResScores(root, settings.threshold, refinement(settings, segmenter.edge_refiner))
    for start in range(0, len(ids), batch_size):
        rows = slice(start, start + batch_size)
        scores.add_probabilities(ids[rows], segmenter.probabilities(np.array(images[rows])))
    return scores.means()["dice"]
