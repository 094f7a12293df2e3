"""Predict car masks for any photos: `python -m carvana.predict PHOTOS... [outputs] [options]` (or `carvana-predict`).

PHOTOS are files, folders, glob patterns or zips of .jpg/.jpeg/.png/.webp photos, at any size. Outputs, any
combination (at least one):
  --masks DIR          <id>_mask.gif at each photo's size (Kaggle's format)
  --submission FILE    Kaggle's img,rle_mask CSV (.csv or .csv.gz)
  --cutouts DIR        <id>.png: the car on a transparent background
  --background SPEC --composites DIR
                       <id>.jpg: the car on a colour (white, #1e90ff) or on another photo
With --ray the photos are spread over the actors of a Ray cluster (docs/cluster.md): the same outputs, byte for byte.
Examples:
  python -m carvana.predict ~/photos --cutouts cutouts --background white --composites white
  python -m carvana.predict test.zip --submission submission.csv.gz --tta
  python -m carvana.predict /shared/test --masks /shared/masks --ray head-node:6379 --ray-cpus 4
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from carvana.core.cli import (
    Parser,
    device_choice,
    non_negative,
    non_negative_number,
    positive,
    positive_number,
    probability,
)
from carvana.core.errors import CarvanaError, list_some, run_main
from carvana.inference.cluster import Cluster, predict_on_ray
from carvana.inference.engine import predict
from carvana.inference.loading import ModelChoice
from carvana.inference.photos import Photo, find_photos
from carvana.inference.references import default_reference
from carvana.inference.refine import refinement
from carvana.inference.settings import described
from carvana.inference.writers import Backgrounds, Cutouts, MaskGifs, Submission, Writer
from carvana.model.allocator import keep_freed_memory


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
        "--edge-refiner",
        action=argparse.BooleanOptionalAction,
        help="correct the edges at full resolution with the model's learned boundary refiner (default: as the model "
        "was scored)",
    )
    parser.add_argument(
        "--refine",
        type=non_negative,
        metavar="RADIUS",
        help="snap edges to the photo with a guided filter of this radius; 0: off (default: as the model was scored)",
    )
    parser.add_argument(
        "--one-car",
        action=argparse.BooleanOptionalAction,
        help="keep only the largest connected car region and what lies within its outline (default: as the model "
        "was scored)",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help="probability above which a pixel is car (default: as the model was scored)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime", "openvino"),
        default="auto",
        help="what runs a checkpoint; auto: on a GPU torch, on a CPU the fastest installed runtime within the parity "
        "gate, measured once per checkpoint and machine (`--backend torch` writes exactly evaluate's masks). An "
        "exported model runs on its own runtime: .onnx on onnxruntime, an OpenVINO folder or .xml on OpenVINO",
    )
    parser.add_argument("--device", type=device_choice, default="auto", help="auto, cpu, cuda, cuda:N (torch backend)")
    parser.add_argument("--batch-size", type=positive, default=16)
    parser.add_argument("--threads", type=positive, default=os.cpu_count() or 1, help="decoding and writing threads")
    parser.add_argument(
        "--on-error", choices=("stop", "skip"), default="stop", help="a photo that cannot be read: stop, or skip it"
    )
    cluster = parser.add_argument_group("Ray Data (install the ray extra)")
    cluster.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray: alone, a Ray started on this machine for the run; with ADDRESS (host:6379, auto), the "
        "cluster there",
    )
    cluster.add_argument("--ray-actors", type=positive, metavar="N", help="actors (default: as many as fit)")
    cluster.add_argument("--ray-cpus", type=positive_number, metavar="N", help="CPUs per actor (default: 2)")
    cluster.add_argument("--ray-gpus", type=non_negative_number, metavar="N", help="GPUs per actor (default: 0)")
    args = parser.parse_args(argv)
    given = [flag for flag in ("ray_actors", "ray_cpus", "ray_gpus") if getattr(args, flag) is not None]
    if given and args.ray is None:
        parser.error(f"--{given[0].replace('_', '-')} goes with --ray")
    return args


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


def model_choice(args: argparse.Namespace) -> ModelChoice:
    references = tuple(args.model or [default_reference()])
    return ModelChoice(
        references,
        args.backend,
        args.device,
        args.batch_size,
        args.threshold,
        args.tta,
        args.refine,
        args.edge_refiner,
        args.one_car,
    )


def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per checkpoint download
    args = parse_args(argv)
    photos = find_photos(args.photos)
    model = model_choice(args)
    segmenter, settings = replace(model, device="cpu").load() if args.ray is not None else model.load()
    print(f"predict: model {', '.join(model.references)} ({described(settings)})")
    writers = writers_for(args, photos)
    start, skipped = time.perf_counter(), []
    if args.ray is not None:
        cluster = Cluster(args.ray or None, args.ray_actors, args.ray_cpus or 2, args.ray_gpus or 0)
        outcomes = predict_on_ray(photos, model, writers, args.on_error, cluster)
    else:
        outcomes = predict(
            photos,
            segmenter,
            writers,
            settings.threshold,
            args.batch_size,
            args.threads,
            args.on_error,
            refinement(settings, segmenter.edge_refiner),
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
