"""A dataset already on disk in Kaggle layout: a folder with train/ and train_masks/ (or their zips), or one zip."""

import shutil
from pathlib import Path

from carvana.core.errors import CarvanaError
from carvana.data.archive import extract_zip
from carvana.data.layout import IMAGE_DIR, MASK_DIR, stored_name

LAYOUT = (
    f"a folder holding {IMAGE_DIR}/*.jpg and {MASK_DIR}/*_mask.gif (or {IMAGE_DIR}.zip and {MASK_DIR}.zip), "
    "or one .zip holding those two folders"
)
FIX = (
    "Set download.source in params.yaml to `synthetic`, `kaggle`, "
    "or a path to a folder or .zip in Kaggle layout (relative paths start at the repository root). "
    "For a team's dataset in data/<name>: put it there and run `dvc add data/<name>`, or fetch it with `dvc pull`."
)


def fetch_local(source: Path, target: Path) -> None:
    """Copy a dataset in Kaggle layout from a folder or zip(s) into target/train and target/train_masks."""
    if not source.exists():
        raise CarvanaError(f"{source}: no such file or folder; expected {LAYOUT}. {FIX}")
    if source.is_dir():
        for folder in (IMAGE_DIR, MASK_DIR):
            fetch_folder(source, folder, target)
    elif source.suffix.lower() == ".zip":
        extract_zip(source, target)
    missing = [f"{folder}/" for folder in (IMAGE_DIR, MASK_DIR) if not (target / folder).is_dir()]
    if missing:
        raise CarvanaError(f"{source}: not in Kaggle layout, found no {' or '.join(missing)}; expected {LAYOUT}. {FIX}")


def fetch_folder(source: Path, folder: str, target: Path) -> None:
    """Copy source/<folder>/ if it exists, else extract source/<folder>.zip if that exists."""
    if not (source / folder).is_dir():
        if (source / f"{folder}.zip").is_file():
            extract_zip(source / f"{folder}.zip", target)
        return
    (target / folder).mkdir()
    copied: dict[str, Path] = {}
    for path in sorted((source / folder).iterdir()):
        name = stored_name(folder, path.name) if path.is_file() else None
        if name is None:
            continue
        if name in copied:
            raise CarvanaError(f"{copied[name]} and {path} are the same {folder} file {name}; keep one of them")
        copied[name] = path
        shutil.copyfile(path, target / folder / name)
