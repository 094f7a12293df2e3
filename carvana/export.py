"""Export a trained model: `carvana export --onnx model.onnx | --openvino DIR [--int8] [--model REF]`.

REF is what `carvana predict --model` takes: a checkpoint (.pt), models:/carvana-unet@champion (or another models:/
URI) or a run id; by default the champion if a tracking store is reachable, else stages/train/checkpoints/best.pt.

--onnx FILE     one ONNX file (opset 20): input `images` (N, H, W, 3) uint8 RGB with a dynamic batch axis, output
                `probabilities` (N, H, W) float32; the size and inference settings in its metadata.
--openvino DIR  OpenVINO IR (DIR/model.xml, DIR/model.bin) converted from that ONNX graph.
--int8          quantized to INT8 (onnxruntime's static quantization, calibrated on 256 of this workspace's
                prepared train photos; a learned boundary refiner too, on tiles along 32 train photos' edges), then
                gated: its full-resolution dice on the val photos may fall at most --max-dice-drop (0.001) below
                the fp32 model's, else nothing is written.

When the model's MLflow run is in the store (a models:/ URI, a run id, or this workspace's best.pt with its run in
stages/train/mlflow_run.json), the export is also logged to that run (onnx/, openvino/; int8 beside them). Run it
with `carvana predict PHOTOS --model model.onnx ...` or `--model DIR`.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from carvana.core.atomic import atomic_write, prepared_parent
from carvana.core.cli import Parser, probability
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import Prepared, load_prepared, stage_dir
from carvana.core.params import InferenceParams
from carvana.inference.learned_edges import KEY as REFINER
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.onnx_export import OPSET, export_onnx, log_export
from carvana.inference.openvino_backend import OpenVinoSegmenter, convert
from carvana.inference.quantize import (
    CALIBRATION_PHOTOS,
    MAX_DICE_DROP,
    EdgeTiles,
    Gate,
    full_res_dice,
    quantize_onnx,
    sampled,
)
from carvana.inference.references import default_reference, local_file, trained_by
from carvana.inference.scoring import spread
from carvana.inference.segmenter import Segmenter, TorchSegmenter, with_tta
from carvana.inference.settings import recorded
from carvana.model.checkpoint import load_checkpoint
from carvana.training.refiner_tiles import sample_tiles

GATE_BATCH = 16
CALIBRATION_TILE_PHOTOS = 32  # train photos whose edges calibrate the learned refiner's INT8 ranges
TILES_PER_PHOTO = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Parser("carvana export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--onnx", type=Path, metavar="FILE", help="write the model as one ONNX file")
    where.add_argument("--openvino", type=Path, metavar="DIR", help="write the model as OpenVINO IR in this folder")
    parser.add_argument("--int8", action="store_true", help="quantize to INT8, gated on the val photos' dice")
    parser.add_argument(
        "--max-dice-drop",
        type=probability,
        default=MAX_DICE_DROP,
        metavar="D",
        help=f"with --int8: how far its val dice may fall below fp32's (default {MAX_DICE_DROP})",
    )
    parser.add_argument("--model", help="the model to export (default: the champion, else best.pt)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint download
    args = parse_args(argv)
    reference = args.model or default_reference()
    checkpoint = local_file(reference)
    if checkpoint.suffix in (".onnx", ".xml") or checkpoint.is_dir():
        raise CarvanaError(f"--model {reference} is an exported model already; give a checkpoint (.pt), URI or run id")
    flag, out = ("--onnx", args.onnx) if args.onnx else ("--openvino", args.openvino)
    splits = prepared_splits() if args.int8 else None  # checked before minutes of work
    try:
        prepared_parent(out)  # a path that cannot be written fails at once
    except OSError as error:
        raise unwritable(flag, out, error) from None
    with tempfile.TemporaryDirectory(prefix="carvana-export-") as scratch:
        onnx_file = Path(scratch) / "model.onnx"
        height, width = export_onnx(checkpoint, onnx_file)
        if splits:
            onnx_file = int8(checkpoint, onnx_file, *splits, args.openvino is not None, args.max_dice_drop)
        try:
            write(onnx_file, flag, out)
        except OSError as error:
            raise unwritable(flag, out, error) from None
    kind = ("INT8" if args.int8 else "fp32") + (f", ONNX opset {OPSET}" if args.onnx else ", OpenVINO IR")
    print(f"export: {reference} -> {out} ({kind}, {height}x{width}, dynamic batch)")
    run_id = trained_by(reference)
    if run_id is None:
        print(f"export: not logged to MLflow: no run of {reference} in the tracking store")
        return
    print(f"export: logged to MLflow run {run_id} as {log_export(out, run_id, args.int8)}")


def unwritable(flag: str, out: Path, error: OSError) -> CarvanaError:
    return CarvanaError(f"{flag} {out}: cannot write it ({error}); give a path in a writable folder")


def write(onnx_file: Path, flag: str, out: Path) -> None:
    if flag == "--onnx":
        atomic_write(out, lambda tmp: shutil.copyfile(onnx_file, tmp))
    else:
        convert(onnx_file, out)


def prepared_splits() -> tuple[Prepared, Prepared]:
    try:
        return load_prepared("train"), load_prepared("val")
    except CarvanaError as error:
        needs = "--int8 calibrates on the prepared train photos and gates on the val photos"
        raise CarvanaError(f"{needs}: {error}") from None


def int8(checkpoint: Path, fp32: Path, train: Prepared, val: Prepared, openvino: bool, max_drop: float) -> Path:
    """fp32's model quantized (beside it), once it passes the gate against the checkpoint run with PyTorch."""
    loaded = load_checkpoint(checkpoint)
    size, settings = tuple(loaded["image_size"]), recorded(loaded)
    quantized = fp32.with_name("model-int8.onnx")
    tiles = edge_tiles(checkpoint, settings, train, size) if REFINER in loaded else None
    quantize_onnx(fp32, quantized, sampled(train.images, size, CALIBRATION_PHOTOS), tiles)
    val_photos = val.images if val.images.shape[1:3] == size else sampled(val.images, size, len(val.ids))

    def dice(segmenter: Segmenter) -> float:
        return full_res_dice(segmenter, stage_dir("download"), val.ids, val_photos, settings, GATE_BATCH)

    fp32_dice = dice(TorchSegmenter(checkpoint, batch_size=GATE_BATCH))
    gate = Gate(fp32_dice, dice(int8_segmenter(quantized, openvino)), len(val.ids), max_drop)
    gate.check()
    print(f"export: INT8 passed the gate: {gate}")
    return quantized


def edge_tiles(checkpoint: Path, settings: InferenceParams, train: Prepared, size: tuple[int, int]) -> EdgeTiles:
    """Tiles along the coarse mask's edge of some train photos at full resolution, with the probabilities the
    learned boundary refiner is given there (TTA as `settings` say): what its INT8 ranges are calibrated on."""
    coarse = TorchSegmenter(checkpoint, batch_size=GATE_BATCH)
    segmenter = with_tta(coarse, settings.tta)
    picked = spread(CALIBRATION_TILE_PHOTOS, len(train.ids))
    images = sampled(train.images[picked], size, len(picked))
    with tempfile.TemporaryDirectory(prefix="carvana-tiles-") as scratch:
        tiles = sample_tiles(
            segmenter,
            stage_dir("download"),
            [train.ids[index] for index in picked],
            images,
            TILES_PER_PHOTO,
            jitter=0,
            rng=np.random.default_rng(0),
            folder=Path(scratch),
        )
        return np.array(tiles.photos), np.array(tiles.probabilities)


def int8_segmenter(quantized: Path, openvino: bool) -> Segmenter:
    """The INT8 model as the export will be run: by OpenVINO for --openvino, else by onnxruntime."""
    return OpenVinoSegmenter.for_model(quantized, GATE_BATCH) if openvino else OnnxSegmenter(quantized, GATE_BATCH)


if __name__ == "__main__":
    run_main(main)
