"""The files stages hand to each other under stages/<stage>/: the one module that knows their layout.

Stage modules never import each other; a stage reads an earlier stage's outputs through here.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from carvana.core.atomic import write_json
from carvana.core.errors import CarvanaError
from carvana.core.paths import workspace_root

STAGES_DIR = "stages"
SPLITS = ("train", "val")
RUN_FILE = "mlflow_run.json"
MANIFEST = "manifest.tsv"  # in stages/download: what later stages depend on in dvc.yaml


def stage_dir(stage: str) -> Path:
    """stages/<stage>/ in the current workspace: the only place the stage writes."""
    return workspace_root() / STAGES_DIR / stage


def write_manifest(root: Path, ids: list[str], files: Callable[[Path, str], tuple[Path, ...]]) -> None:
    """root/manifest.tsv: every pair's id and the MD5 of each of its `files`. Later stages depend on this one
    file instead of the thousands it lists: DVC checks a folder dependency file by file, once for every stage that
    names it, and a no-op `dvc repro` over Kaggle's 10,176 files took seconds that way. Any change to the dataset
    reruns download (its output changed), which writes a new manifest."""
    lines = [
        "\t".join(
            [
                image_id,
                *(hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() for path in files(root, image_id)),
            ]
        )
        for image_id in ids
    ]
    (root / MANIFEST).write_text("".join(f"{line}\n" for line in lines))


def write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("".join(f"{image_id}\n" for image_id in ids))


def read_ids(path: Path) -> list[str]:
    return path.read_text().splitlines()


def read_split(split: str) -> list[str]:
    """The image ids split_val put in `split` (train or val)."""
    path = stage_dir("split_val") / f"{split}.txt"
    if not path.exists():
        raise CarvanaError(f"{path} not found: run `dvc repro split_val` first")
    return read_ids(path)


@dataclass(frozen=True)
class Prepared:
    """A split as prepare stored it: ids, photos (N,H,W,3) and masks (N,H,W), uint8, memory-mapped."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray


def create_prepared(folder: Path, ids: list[str], size: tuple[int, int]) -> None:
    """Allocate a split's arrays (filled row by row afterwards, see `prepared_rows`) and write its ids."""
    folder.mkdir(parents=True)
    open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=(len(ids), *size, 3)).flush()
    open_memmap(folder / "masks.npy", mode="w+", dtype=np.uint8, shape=(len(ids), *size)).flush()
    write_ids(folder / "ids.txt", ids)


def prepared_rows(folder: Path) -> Prepared:
    """A split being prepared, writable."""
    return Prepared(
        read_ids(folder / "ids.txt"),
        np.load(folder / "images.npy", mmap_mode="r+"),
        np.load(folder / "masks.npy", mmap_mode="r+"),
    )


def load_prepared(split: str) -> Prepared:
    """A prepared split, read-only."""
    folder = stage_dir("prepare") / split
    if not (folder / "ids.txt").exists():
        raise CarvanaError(f"{folder} is not prepared: run `dvc repro prepare` first")
    return Prepared(
        read_ids(folder / "ids.txt"),
        np.load(folder / "images.npy", mmap_mode="r"),
        np.load(folder / "masks.npy", mmap_mode="r"),
    )


def prepared_digest() -> str:
    """A hash of the prepared arrays and ids of every split: what training sees."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for name in ("ids.txt", "images.npy", "masks.npy"):
            with open(stage_dir("prepare") / split / name, "rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def checkpoint_path(name: str = "best.pt") -> Path:
    return stage_dir("train") / "checkpoints" / name


def refiner_path() -> Path:
    """The learned boundary refiner train_refiner fits (evaluate puts it into the model it scores)."""
    return stage_dir("train_refiner") / "refiner.pt"


def scored_model_path() -> Path:
    """The best checkpoint with the inference settings evaluate scored it with: the model as it is used."""
    return stage_dir("evaluate") / "model.pt"


def write_run_file(run_id: str, experiment_id: str) -> None:
    write_json(stage_dir("train") / RUN_FILE, {"run_id": run_id, "experiment_id": experiment_id})


def read_run_id() -> str:
    """The MLflow run that trained the model in stages/train/."""
    path = stage_dir("train") / RUN_FILE
    fix = "run `dvc repro -f train` to train the model again, or restore the file with `dvc checkout train`"
    try:
        run_id = json.loads(path.read_text())["run_id"]
    except FileNotFoundError:
        raise CarvanaError(f"{path} not found; {fix}") from None
    except (ValueError, TypeError, KeyError) as error:
        raise CarvanaError(f"{path} is not a run file ({type(error).__name__}: {error}); {fix}") from None
    if not isinstance(run_id, str) or not run_id.isalnum():
        raise CarvanaError(f"{path}: run_id {run_id!r} is not an MLflow run id; {fix}")
    return run_id
