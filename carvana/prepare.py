"""Stage prepare: decode every photo and mask exactly once, resize them to the model's resolution and store
them as uint8 arrays per split, which train, evaluate and render_masks memory-map.

Writes stages/prepare/<split>/{images.npy (N,H,W,3), masks.npy (N,H,W), ids.txt} for the train and val splits.
Decoding runs in parallel across cores, each worker filling its own rows of the memory-mapped output.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from tqdm import tqdm

from carvana.atomic import atomic_dir
from carvana.errors import CarvanaError, list_some, run_main
from carvana.kaggle_layout import image_path, mask_path
from carvana.params import load_params
from carvana.paths import stage_dir
from carvana.preprocess import load_pair
from carvana.split_val import SPLITS, read_split

CHUNK = 16  # images per task: large enough to amortise the task, small enough to balance the cores


def main() -> None:
    params = load_params()
    cfg = params.prepare
    size = (cfg.image_height, cfg.image_width)
    workers = cfg.workers or os.cpu_count() or 1
    with atomic_dir(stage_dir("prepare")) as out:
        for split in SPLITS:
            ids = read_split(split)
            prepare_split(stage_dir("download"), ids, out / split, size, workers)
            print(f"prepare: {split}: {len(ids)} images at {size[0]}x{size[1]}")


def prepare_split(root: Path, ids: list[str], out: Path, size: tuple[int, int], workers: int) -> None:
    """Fill out/images.npy and out/masks.npy row by row; raise one error naming every file that failed."""
    out.mkdir(parents=True)
    height, width = size
    open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(ids), height, width, 3)).flush()
    open_memmap(out / "masks.npy", mode="w+", dtype=np.uint8, shape=(len(ids), height, width)).flush()
    chunks = [(root, ids[start : start + CHUNK], out, size, start) for start in range(0, len(ids), CHUNK)]
    problems: list[str] = []
    with ProcessPoolExecutor(workers) as pool, tqdm(total=len(ids), desc=out.name, disable=None) as progress:
        for done, chunk_problems in pool.map(fill_rows, *zip(*chunks)):
            problems += chunk_problems
            progress.update(done)
    if problems:
        raise CarvanaError(f"prepare: {len(problems)} file(s) could not be prepared: {list_some(problems)}")
    (out / "ids.txt").write_text("".join(f"{i}\n" for i in ids))


def fill_rows(root: Path, ids: list[str], out: Path, size: tuple[int, int], start: int) -> tuple[int, list[str]]:
    """Decode `ids` into rows start, start+1, ... of the split's arrays (runs in a worker process)."""
    images = np.load(out / "images.npy", mmap_mode="r+")
    masks = np.load(out / "masks.npy", mmap_mode="r+")
    problems = []
    for row, image_id in enumerate(ids, start):
        try:
            images[row], masks[row] = load_pair(image_path(root, image_id), mask_path(root, image_id), size)
        except CarvanaError as error:
            problems.append(str(error))
    images.flush()
    masks.flush()
    return len(ids), problems


def load_prepared(split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids, photos (N,H,W,3) and masks (N,H,W) of a split, memory-mapped read-only."""
    folder = stage_dir("prepare") / split
    if not (folder / "ids.txt").exists():
        raise CarvanaError(f"{folder} is not prepared: run `dvc repro prepare` first")
    ids = (folder / "ids.txt").read_text().split()
    return ids, np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy", mmap_mode="r")


if __name__ == "__main__":
    run_main(main)
