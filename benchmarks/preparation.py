"""The prepare stage: its parallel decode against one process, and its peak memory against keeping the photos
decoded at full size in memory.

Speed: `prepare_split` on all cores (one worker process per core, each filling its rows of the memory-mapped
arrays) vs the same `load_pair` decode+resize run image after image in one process. Memory: a fresh subprocess
runs `prepare_split` vs one that decodes the same pairs at full size and keeps them in a list (what a loader
caching decoded photos in RAM holds). Both subprocesses import this module, so they start from the same imports.

Run as `python -m benchmarks.preparation prepare ROOT OUT HEIGHT WIDTH ID...` or `... naive ROOT ID...`: the
subprocesses whose memory is measured.
"""

import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.dataset import REPO
from benchmarks.measure import POLL_SECONDS, compare, peak_memory
from benchmarks.report import Row
from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.data.resize import load_pair
from carvana.prepare import prepare_split


def measure_speed(
    root: Path, ids: list[str], size: tuple[int, int], work: Path, repeats: int, min_seconds: float
) -> Row:
    workers = os.cpu_count() or 1
    runs = itertools.count()

    def parallel() -> int:
        prepare_split(root, ids, work / f"prepare-{next(runs)}", size, workers)
        return len(ids)

    def serial() -> int:
        for image_id in ids:
            load_pair(image_path(root, image_id), mask_path(root, image_id), size)
        return len(ids)

    load_pair(image_path(root, ids[0]), mask_path(root, ids[0]), size)  # warm-up
    return Row.of(
        f"preparation: prepare_split on {workers} processes vs 1 ({len(ids)} images to {size[0]}x{size[1]})",
        compare(parallel, serial, repeats, min_seconds),
        "img/s",
        f"≈ {workers} (cores)",
    )


def measure_memory(root: Path, ids: list[str], size: tuple[int, int], work: Path) -> Row:
    python = [sys.executable, "-m", "benchmarks.preparation"]
    out = work / "prepare-memory"
    ours = peak_memory([*python, "prepare", str(root), str(out), str(size[0]), str(size[1]), *ids], REPO)
    baseline = peak_memory([*python, "naive", str(root), *ids], REPO)
    return Row.of_memory(
        f"preparation: peak memory of prepare_split vs full-size photos kept in memory ({len(ids)} images)",
        ours,
        baseline,
        "< 1",
    )


def decode_all(root: Path, ids: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(read_image(image_path(root, i)), read_mask(mask_path(root, i))) for i in ids]


def main(args: list[str]) -> None:
    match args:
        case ["prepare", root, out, height, width, *ids]:
            prepare_split(Path(root), ids, Path(out), (int(height), int(width)), os.cpu_count() or 1)
        case ["naive", root, *ids]:
            decoded = decode_all(Path(root), ids)
            time.sleep(2 * POLL_SECONDS)  # memory peaks now, with the list complete: let the sampler see it
            del decoded
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
