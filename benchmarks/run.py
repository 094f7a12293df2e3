"""Run every benchmark and print a markdown table: `python -m benchmarks.run [--quick] [--data PATH] [--out FILE]`.

Each row compares our way with a baseline measured in the same run, so the ratio carries across machines.
Run it from the repository root on an otherwise idle machine: other jobs on the cores distort the rates (the
header shows the load average at start).
"""

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import backends, inference, input_pipeline, preparation, processes, sharing, stages, training
from benchmarks.dataset import default_data, photo_size, pick_ids, prepared_arrays, prepared_folder
from benchmarks.recipes import recipes
from benchmarks.report import LEGEND, machine, table
from carvana.model.allocator import keep_freed_memory


@dataclass(frozen=True)
class Settings:
    images: int
    repeats: int  # timed rounds per side of a comparison, taken in turns; the median ratio is reported
    min_seconds: float  # a round repeats its work until it has run this long
    training_epochs: int  # of the model whose predictions the inference rows write


FULL = Settings(images=64, repeats=5, min_seconds=5.0, training_epochs=8)
QUICK = Settings(images=8, repeats=1, min_seconds=0.05, training_epochs=1)
QUICK_SIZE, QUICK_BATCH, QUICK_STEPS = (32, 48), 2, 2  # smoke runs: the real networks on small inputs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, help="folder in Kaggle layout (default: ../shared/carvana-sample, else synthetic)"
    )
    parser.add_argument(
        "--images", type=int, help=f"photo/mask pairs to use (default {FULL.images}; {QUICK.images} with --quick)"
    )
    parser.add_argument("--repeats", type=int, help=f"timed rounds per side, median kept (default {FULL.repeats})")
    parser.add_argument("--quick", action="store_true", help="smoke run: few images, small inputs, 1 round")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    keep_freed_memory()  # as the train, evaluate and render_masks stages do
    base = QUICK if args.quick else FULL
    settings = Settings(
        args.images or base.images, args.repeats or base.repeats, base.min_seconds, base.training_epochs
    )
    default, seed, cpu, edges = recipes()
    if args.quick:
        default, seed, cpu, edges = (
            r.shrunk(QUICK_SIZE, QUICK_BATCH, QUICK_STEPS) for r in (default, seed, cpu, edges)
        )
    header = machine(torch.__version__, torch.get_num_threads())
    torch.manual_seed(default.params.seed)

    with tempfile.TemporaryDirectory(prefix="carvana-benchmarks-") as tmp:
        work = Path(tmp)
        root = args.data or default_data(work, settings.images, default.params.seed)
        ids = pick_ids(root, settings.images)
        batch = max(default.params.train.batch_size, seed.params.train.batch_size)
        if len(ids) < batch:
            raise SystemExit(f"error: {len(ids)} pairs to use; training needs at least one batch of {batch}")
        height, width = photo_size(root, ids[0])
        header += f"\nData: {root}, {len(ids)} photo/mask pairs at {width}x{height}."
        timing = (settings.repeats, settings.min_seconds)
        default_arrays = prepared_arrays(root, ids, default.size, work)
        checkpoint = inference.trained_checkpoint(default, default_arrays, work, settings.training_epochs)
        cpu_arrays = prepared_arrays(root, ids, cpu.size, work)
        cpu_checkpoint = inference.trained_checkpoint(cpu, cpu_arrays, work, settings.training_epochs)
        rows = [
            preparation.measure_speed(root, ids, default.size, work, *timing),
            preparation.measure_memory(root, ids, default.size, work),
            input_pipeline.measure(default, root, ids, default_arrays, *timing),
            training.measure(default, default_arrays, *timing),
            training.measure(seed, prepared_arrays(root, ids, seed.size, work), *timing),
            processes.measure(default, default_arrays, work, *timing),
            inference.measure_masks(default, root, ids, checkpoint, work, *timing),
            inference.measure_served(edges, cpu, root, ids, cpu_checkpoint, work, *timing),
            inference.measure_render(default, root, ids, checkpoint, work, *timing),
            inference.measure_memory(root, ids, checkpoint, work),
            inference.measure_ray(root, ids, checkpoint, work, settings.repeats),
            *backends.measure(default, root, ids, default_arrays[0], checkpoint, work, *timing),
            *backends.measure(cpu, root, ids, cpu_arrays[0], cpu_checkpoint, work, *timing),
            sharing.measure(root, ids, prepared_folder(root, ids, default.size, work), work, *timing),
            *stages.measure(root, ids, work),
        ]

    report = f"{header}\n\n{table(rows)}\n\n{LEGEND}\n"
    print(report, end="")
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
