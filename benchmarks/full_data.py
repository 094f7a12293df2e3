"""The whole pipeline on a full-size dataset, stage by stage: wall time, peak memory and files written, then the
time of a no-op `dvc repro`.

    python -m benchmarks.full_data DATA WORK [--rev REV] [--generate CARS] [--out FILE] [-S KEY=VALUE ...]

DATA is a folder in Kaggle layout (Kaggle's train set: 5,088 photos of 318 cars); with `--generate CARS` that many
synthetic cars at 1918x1280 are made there first. The repository at REV (default HEAD) is cloned into WORK, its
params set to train on DATA (`download.source`, plus each -S), and each stage run with `dvc repro -s STAGE`.
Peak memory is the PSS of the process tree (DVC and the stage's processes), sampled every 0.25 s.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from benchmarks.dataset import REPO
from benchmarks.measure import peak_memory
from benchmarks.report import machine
from carvana.preset import merged
from carvana.sources.synthetic import generate

STAGES = ("check_params", "download", "split_val", "prepare", "train", "train_refiner", "evaluate", "render_masks")
POLL = 0.25  # seconds between memory samples: stages run for minutes, and sampling costs CPU
BIN = Path(sys.executable).parent
# the stages' `python` is this environment's; the clone's own MLflow store and DVC settings
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))} | {
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("python -m benchmarks.full_data", description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--rev", default="HEAD", help="the commit to measure (default HEAD)")
    parser.add_argument("--generate", type=int, metavar="CARS", help="first make this many synthetic cars in DATA")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def clone(rev: str, work: Path, data: Path, overrides: list[str]) -> Path:
    checkout = work / "carvana"
    shutil.rmtree(checkout, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=checkout, check=True)
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    for override in [f"download.source={data.resolve()}", *overrides]:
        key, value = override.split("=", 1)
        tree: dict = yaml.safe_load(value)
        for part in reversed(key.split(".")):
            tree = {part: tree}
        params = merged(params, tree)
    (checkout / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return checkout


def dvc(checkout: Path, *args: str) -> None:
    subprocess.run([str(BIN / "dvc"), *args], cwd=checkout, env=ENV, check=True)


def run_stages(checkout: Path) -> list[str]:
    rows = []
    for stage in STAGES:
        started = time.perf_counter()
        try:
            peak = f"{peak_memory([str(BIN / 'dvc'), 'repro', '-s', stage], checkout, ENV, poll=POLL) / 2**30:.2f} GiB"
        except subprocess.CalledProcessError as error:  # killed for memory, say: the table says so, later stages run
            peak = f"failed (exit {error.returncode})"
        seconds = time.perf_counter() - started
        files = sum(1 for path in (checkout / "stages" / stage).rglob("*") if path.is_file())
        rows.append(f"| {stage} | {seconds:.0f} s | {peak} | {files:,} |")
        print(rows[-1], flush=True)
    return rows


def no_op_seconds(checkout: Path, repeats: int = 5) -> str:
    """The median time of `dvc repro` with nothing to run (when every stage ran)."""
    if subprocess.run([str(BIN / "dvc"), "status", "-q"], cwd=checkout, env=ENV).returncode != 0:
        return "not measured: a stage did not finish"
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        dvc(checkout, "repro", "-q")
        times.append(time.perf_counter() - started)
    return f"{statistics.median(times):.2f} s"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.generate:
        generate(args.data, cars=args.generate, width=1918, height=1280, seed=0)
    photos = sum(1 for _ in (args.data / "train").glob("*.jpg"))
    checkout = clone(args.rev, args.work, args.data, args.overrides)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    header = machine(torch.__version__, torch.get_num_threads())
    rows = run_stages(checkout)
    report = "\n".join(
        [
            header,
            f"\nCommit {rev.stdout.strip()}, {photos:,} photos in {args.data}"
            + "".join(f", -S {override}" for override in args.overrides)
            + "\n",
            "| stage | wall time | peak memory | files written |",
            "| --- | --- | --- | --- |",
            *rows,
            f"\nno-op `dvc repro` (median of 5): {no_op_seconds(checkout)}\n",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
