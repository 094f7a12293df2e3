"""Predict car masks for any photos: `python -m carvana.predict PHOTOS... [outputs] [options]` (or `carvana-predict`).

PHOTOS are files, folders, glob patterns or zips of .jpg/.jpeg/.png/.webp photos, at any size. Outputs, any
combination (at least one):
  --masks DIR          <id>_mask.gif at each photo's size (Kaggle's format)
  --submission FILE    Kaggle's img,rle_mask CSV (.csv or .csv.gz)
  --cutouts DIR        <id>.png: the car on a transparent background
  --background SPEC --composites DIR
                       <id>.jpg: the car on a colour (white, #1e90ff) or on another photo
Examples:
  python -m carvana.predict ~/photos --cutouts cutouts --background white --composites white
  python -m carvana.predict test.zip --submission submission.csv.gz --tta
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from carvana.core.cli import Parser, device_choice, non_negative, positive, probability
from carvana.core.errors import CarvanaError, list_some, run_main
from carvana.core.params import InferenceParams
from carvana.inference.engine import predict
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.openvino_backend import OpenVinoSegmenter
from carvana.inference.photos import Photo, find_photos
from carvana.inference.references import default_reference, local_file
from carvana.inference.segmenter import Ensemble, FlipAveraged, Segmenter, TorchSegmenter
from carvana.inference.settings import described, overridden
from carvana.inference.writers import Backgrounds, Cutouts, MaskGifs, Submission, Writer
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import resolve_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Parser("carvana predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", help="photo files, folders, glob patterns or zips")
    parser.add_argument(
        "--model",
        action="append",
        help="a checkpoint (.pt), an exported .onnx, models:/carvana-unet@champion or a run id; several: their "
        "probabilities are averaged (default: the champion of the tracking store, else "
        "stages/train/checkpoints/best.pt when no tracking server is set)",
    )
    parser.add_argument("--masks", type=Path, metavar="DIR", help="write <id>_mask.gif files here")
    parser.add_argument("--submission", type=Path, metavar="FILE", help="write Kaggle's img,rle_mask CSV here")
    parser.add_argument("--cutouts", type=Path, metavar="DIR", help="write <id>.png cut-outs here")
    parser.add_argument("--cutout-format", choices=("png", "webp"), default="png")
    parser.add_argument("--background", metavar="SPEC", help="a colour or a photo to put the car on")
    parser.add_argument("--composites", type=Path, metavar="DIR", help="write <id>.jpg (car on --background) here")
    parser.add_argument("--hard", action="store_true", help="cut-outs and composites with the hard mask's edge")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="average with the mirrored photo's prediction (default: as the model was scored)",
    )
    parser.add_argument(
        "--refine",
        type=non_negative,
        metavar="RADIUS",
        help="snap edges to the photo with a guided filter of this radius; 0: off (default: as the model was scored)",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help="probability above which a pixel is car (default: as the model was scored)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "openvino"),
        default="torch",
        help="what runs a checkpoint (an exported model runs on its own: .onnx on onnxruntime, an OpenVINO folder "
        "or .xml on OpenVINO)",
    )
    parser.add_argument("--device", type=device_choice, default="auto", help="auto, cpu, cuda, cuda:N (torch backend)")
    parser.add_argument("--batch-size", type=positive, default=16)
    parser.add_argument("--threads", type=positive, default=os.cpu_count() or 1, help="decoding and writing threads")
    parser.add_argument(
        "--on-error", choices=("stop", "skip"), default="stop", help="a photo that cannot be read: stop, or skip it"
    )
    return parser.parse_args(argv)


def writers_for(args: argparse.Namespace, photos: list[Photo]) -> list[Writer]:
    """The writers of the outputs asked for, their paths checked first: a folder where a file goes (or a file
    where a folder goes), a place that cannot be written, or an output that would replace an input photo is
    refused before anything is predicted."""
    if (args.background is None) != (args.composites is None):
        raise CarvanaError("--background and --composites go together: the background, and where to write")
    folders = {"--masks": args.masks, "--cutouts": args.cutouts, "--composites": args.composites}
    for flag, folder in folders.items():
        if folder:
            check_folder(flag, folder)
            refuse_overwriting(flag, folder, photos, OUTPUT_NAMES[flag](args))
    if args.submission:
        check_file("--submission", args.submission)
        refuse_overwriting("--submission", args.submission.parent, photos, lambda _: args.submission.name)
    writers: list[Writer] = []
    if args.masks:
        writers.append(MaskGifs(args.masks))
    if args.cutouts:
        writers.append(Cutouts(args.cutouts, args.hard, args.cutout_format))
    if args.background:
        writers.append(Backgrounds(args.composites, args.background, args.hard))
    if args.submission:
        writers.append(Submission(args.submission))
    if not writers:
        raise CarvanaError("nothing to write: give --masks, --submission, --cutouts or --background/--composites")
    return writers


OUTPUT_NAMES: dict[str, Callable[[argparse.Namespace], Callable[[str], str]]] = {
    "--masks": lambda args: MaskGifs.name,
    "--cutouts": lambda args: lambda image_id: Cutouts.name(image_id, args.cutout_format),
    "--composites": lambda args: Backgrounds.name,
}


def refuse_overwriting(flag: str, folder: Path, photos: list[Photo], name: Callable[[str], str]) -> None:
    """No output may replace an input photo (or the zip holding it). An output that is a symbolic link is
    replaced as a link, never followed: only the folder's own path is resolved."""
    inputs = {photo.path.resolve(): photo.path for photo in photos}
    where = folder.resolve()
    for photo in photos:
        clash = inputs.get(where / name(photo.image_id))
        if clash is not None:
            raise CarvanaError(
                f"{flag} {folder}: would write {name(photo.image_id)} over the input photo {clash}; "
                "write the outputs to another folder"
            )


def check_folder(flag: str, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise CarvanaError(f"{flag} {folder}: a file is there, not a folder; name a folder for the outputs")
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir():
        raise CarvanaError(f"{flag} {folder}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CarvanaError(f"{flag} {folder}: {existing} is not writable; name a folder you can write to")


def check_file(flag: str, path: Path) -> None:
    if path.is_dir():
        raise CarvanaError(f"{flag} {path}: a folder is there; name a file, e.g. {path / 'submission.csv'}")
    check_folder(flag, path.parent)


def segmenter_for(args: argparse.Namespace) -> tuple[Segmenter, InferenceParams]:
    """The model(s) `--model` names, and the settings to run them with: as the (first) model was scored, but for
    what the flags say."""
    references = args.model or [default_reference()]
    models = [load_segmenter(reference, args) for reference in references]
    segmenter = models[0] if len(models) == 1 else Ensemble(models)
    settings = overridden(segmenter.settings, threshold=args.threshold, tta=args.tta, refine=args.refine)
    print(f"predict: model {', '.join(references)} ({described(settings)})")
    return (FlipAveraged(segmenter) if settings.tta else segmenter), settings


def load_segmenter(reference: str, args: argparse.Namespace) -> Segmenter:
    path = local_file(reference)
    if args.backend == "openvino" or path.suffix == ".xml" or path.is_dir():
        return OpenVinoSegmenter.for_model(path, args.batch_size)
    if args.backend == "onnxruntime" or path.suffix == ".onnx":
        return OnnxSegmenter.for_model(path, args.batch_size)
    return TorchSegmenter(path, resolve_device(args.device, "--device"), args.batch_size)


def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint download
    args = parse_args(argv)
    photos = find_photos(args.photos)
    segmenter, settings = segmenter_for(args)
    writers = writers_for(args, photos)
    start, skipped = time.perf_counter(), []
    outcomes = predict(
        photos, segmenter, writers, settings.threshold, args.batch_size, args.threads, args.on_error, settings.refine
    )
    for outcome in tqdm(outcomes, total=len(photos), unit="photo", disable=None):
        if outcome.error:
            skipped.append(outcome.error)
            tqdm.write(f"skipped: {outcome.error}", file=sys.stderr)
    done = len(photos) - len(skipped)
    rate = done / (time.perf_counter() - start)
    print(f"predict: {done} photos in {time.perf_counter() - start:.1f} s ({rate:.1f} photos/s)", end="")
    print(f"; {len(skipped)} skipped: {list_some(skipped, 3)}" if skipped else "")


def console_script() -> None:
    run_main(main)


if __name__ == "__main__":
    run_main(main)
