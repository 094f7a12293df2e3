"""Peak memory of the model stages over 4x as many photos as over a base set: flat memory keeps the ratio near 1.

Each stage runs as DVC runs it (`python -m carvana.<stage>` in a workspace), in a workspace made without DVC:
stages/download holds the photos (symbolic links to the base set's files, named apart as other cars), split_val's
lists put a quarter of the cars in val, and the stages run in turn with a tiny model (one epoch, scored at full
resolution). Photos at Kaggle's 1918x1280 make a stage that keeps something per photo grow by megabytes a photo.
"""

import os
import shutil
import sys
from pathlib import Path

import yaml

from benchmarks.dataset import REPO
from benchmarks.measure import peak_memory
from benchmarks.report import Row
from carvana.data.layout import IMAGE_DIR, MASK_DIR, car_of, image_path, mask_path
from carvana.preset import merged

STAGES = ("prepare", "train", "train_refiner", "evaluate", "render_masks")
TINY = {
    "prepare": {"image_height": 32, "image_width": 48, "workers": 2},
    "train": {"epochs": 1, "batch_size": 8, "full_res_every": 1, "panels_per_epoch": 2, "model": {"features": [4, 8]}},
    "train_refiner": {"steps": 4, "batch_size": 4, "tiles_per_photo": 2},
    "evaluate": {"repaint": ["yellow"]},  # the repaint check in one paint: eight would make evaluate 9x as long
    "render_masks": {"worst_cases": 4, "overlay_width": 240},
}


def stage_workspace(root: Path, ids: list[str], copies: int, work: Path) -> Path:
    """A workspace whose download stage holds `copies` x the photos `ids` of root (copy c of car X is car X-c)."""
    workspace = work / f"workspace-{copies}x{len(ids)}"
    shutil.rmtree(workspace, ignore_errors=True)
    download = workspace / "stages" / "download"
    (download / IMAGE_DIR).mkdir(parents=True)
    (download / MASK_DIR).mkdir()
    named = []
    for copy in range(copies):
        for image_id in ids:
            name = f"{car_of(image_id)[:-3]}{copy:03d}_{image_id.rsplit('_', 1)[1]}"
            image_path(download, name).symlink_to(image_path(root, image_id).resolve())
            mask_path(download, name).symlink_to(mask_path(root, image_id).resolve())
            named.append(name)
    cars = sorted({car_of(name) for name in named})
    val_cars = set(cars[: max(1, len(cars) // 4)])
    split = workspace / "stages" / "split_val"
    split.mkdir(parents=True)
    for split_name, held_out in (("train", False), ("val", True)):
        chosen = [n for n in named if (car_of(n) in val_cars) == held_out]
        (split / f"{split_name}.txt").write_text("".join(f"{n}\n" for n in chosen))
    params = merged(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", workspace / "dvc.yaml")
    return workspace


def run_stages(workspace: Path, stages: tuple[str, ...] = STAGES) -> dict[str, int]:
    """Each stage's peak memory in bytes (PSS of its process tree), running them in turn."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}  # the workspace's own store
    return {stage: peak_memory([sys.executable, "-m", f"carvana.{stage}"], workspace, env) for stage in stages}


def measure(root: Path, ids: list[str], work: Path, copies: int = 4, times: int = 4) -> list[Row]:
    """Rows for the stages over `copies` copies of the first car's photos, then `times` x as many copies (a
    quarter of the copies are the val cars)."""
    car = [image_id for image_id in ids if car_of(image_id) == car_of(ids[0])]
    few = run_stages(stage_workspace(root, car, copies, work))
    many = run_stages(stage_workspace(root, car, times * copies, work))
    return [
        Row.of_memory(
            f"{stage}: peak memory over {times * copies * len(car)} photos vs {copies * len(car)}",
            many[stage],
            few[stage],
            "≈ 1 (flat)",
        )
        for stage in STAGES
    ]
