"""Export a trained model to ONNX: `python -m carvana.export --onnx model.onnx [--model REF]`.

REF is what `carvana.predict --model` takes: a checkpoint (.pt), models:/carvana-unet@champion (or another
models:/ URI) or a run id; by default the champion if a tracking store is reachable, else
stages/train/checkpoints/best.pt. The file holds the U-Net at the checkpoint's image size, ONNX opset 20, with a
dynamic batch axis: input `images` (N, H, W, 3) uint8 RGB, output `probabilities` (N, H, W) float32, the size
in its metadata (image_height, image_width). When the model's MLflow run is in the store (a models:/ URI, a run
id, or this workspace's best.pt with its run in stages/train/mlflow_run.json), the file is also logged to that
run as onnx/model.onnx. Run it with `python -m carvana.predict PHOTOS --model model.onnx ...`.
"""

import argparse
import os
from pathlib import Path

from carvana.core.cli import Parser
from carvana.core.errors import CarvanaError, run_main
from carvana.inference.onnx_export import OPSET, export_onnx, log_onnx
from carvana.inference.references import default_reference, local_file, trained_by


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Parser("carvana export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, metavar="FILE", help="where to write the ONNX model")
    parser.add_argument("--model", help="the model to export (default: the champion, else best.pt)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint download
    args = parse_args(argv)
    reference = args.model or default_reference()
    checkpoint = local_file(reference)
    if checkpoint.suffix == ".onnx":
        raise CarvanaError(f"--model {reference} is an ONNX model already; give a checkpoint (.pt), URI or run id")
    try:
        height, width = export_onnx(checkpoint, args.onnx)
    except OSError as error:
        raise CarvanaError(f"--onnx {args.onnx}: cannot write it ({error}); give a path in a writable folder") from None
    print(f"export: {reference} -> {args.onnx} (ONNX opset {OPSET}, {height}x{width}, dynamic batch)")
    run_id = trained_by(reference)
    if run_id is None:
        print(f"export: not logged to MLflow: no run of {reference} in the tracking store")
        return
    print(f"export: logged to MLflow run {run_id} as {log_onnx(args.onnx, run_id)}")


if __name__ == "__main__":
    run_main(main)
