"""Stage prepare: decode every photo and mask exactly once, resize them to the model's resolution and store
them as uint8 arrays per split, which train, evaluate and render_masks memory-map.

Writes stages/prepare/<split>/{images.npy (N,H,W,3), masks.npy (N,H,W), ids.txt} for the train and val splits.
Decoding runs in parallel across cores, each worker filling its own rows of the memory-mapped output.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from carvana.core.atomic import atomic_dir
from carvana.core.errors import CarvanaError, list_some, run_main
from carvana.core.outputs import SPLITS, create_prepared, prepared_rows, read_split, stage_dir
from carvana.core.params import load_params
from carvana.data.layout import image_path, mask_path
from carvana.data.resize import load_pair

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
    create_prepared(out, ids, size)
    chunks = [(root, out, start, start + CHUNK) for start in range(0, len(ids), CHUNK)]
    problems: list[str] = []
    with ProcessPoolExecutor(workers) as pool, tqdm(total=len(ids), desc=out.name, disable=None) as progress:
        for done, chunk_problems in pool.map(fill_rows, *zip(*chunks)):
            problems += chunk_problems
            progress.update(done)
    if problems:
        raise CarvanaError(f"prepare: {len(problems)} file(s) could not be prepared: {list_some(problems)}")


def fill_rows(root: Path, out: Path, start: int, stop: int) -> tuple[int, list[str]]:
    """Decode rows start..stop-1 of a split's arrays (runs in a worker process)."""
    split = prepared_rows(out)
    size = split.images.shape[1:3]
    problems = []
    for row, image_id in enumerate(split.ids[start:stop], start):
        try:
            split.images[row], split.masks[row] = load_pair(image_path(root, image_id), mask_path(root, image_id), size)
        except CarvanaError as error:
            problems.append(str(error))
    split.images.flush()
    split.masks.flush()
    return len(split.ids[start:stop]), problems


if __name__ == "__main__":
    run_main(main)
