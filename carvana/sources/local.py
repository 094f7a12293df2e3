"""A dataset already on disk in Kaggle layout: a folder with train/ and train_masks/ (or their zips), or one zip."""

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from carvana.errors import CarvanaError, list_some
from carvana.kaggle_layout import IMAGE_DIR, MASK_DIR

LAYOUT = (
    f"a folder holding {IMAGE_DIR}/*.jpg and {MASK_DIR}/*_mask.gif (or {IMAGE_DIR}.zip and {MASK_DIR}.zip), "
    "or one .zip holding those two folders"
)
FIX = (
    "Set download.source in params.yaml to `synthetic`, `kaggle`, "
    "or a path to a folder or .zip in Kaggle layout (relative paths start at the repository root)."
)


def fetch_local(source: Path, target: Path) -> None:
    """Copy a dataset in Kaggle layout from a folder or zip(s) into target/train and target/train_masks."""
    source = source.expanduser().absolute()
    if not source.exists():
        raise CarvanaError(f"{source}: no such file or folder; expected {LAYOUT}. {FIX}")
    if source.is_dir():
        for folder in (IMAGE_DIR, MASK_DIR):
            _fetch_folder(source, folder, target)
    elif source.suffix.lower() == ".zip":
        extract_zip(source, target)
    missing = [f"{folder}/" for folder in (IMAGE_DIR, MASK_DIR) if not (target / folder).is_dir()]
    if missing:
        raise CarvanaError(f"{source}: not in Kaggle layout, found no {' or '.join(missing)}; expected {LAYOUT}. {FIX}")


def extract_zip(archive: Path, target: Path) -> None:
    """Extract the photos and masks of a zip (entries [<top>/]train/*.jpg, [<top>/]train_masks/*_mask.gif)
    into target/train and target/train_masks; refuse the whole archive if any entry could escape target."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            entries = bundle.infolist()
            unsafe = [entry.filename for entry in entries if _escapes(entry)]
            if unsafe:
                raise CarvanaError(
                    f"{archive}: refusing to extract, entries would land outside the target folder: "
                    f"{list_some(unsafe)}. Use an archive with plain relative paths, e.g. as downloaded from Kaggle."
                )
            for entry in entries:
                destination = _destination(PurePosixPath(entry.filename), target)
                if destination is not None:
                    _extract(bundle, entry, destination)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CarvanaError(f"{archive}: corrupt or not a zip file ({error}); download it again.") from error


def _fetch_folder(source: Path, folder: str, target: Path) -> None:
    """Copy source/<folder>/ if it exists, else extract source/<folder>.zip if that exists."""
    if (source / folder).is_dir():
        (target / folder).mkdir()
        for path in (source / folder).iterdir():
            if path.is_file() and _is_dataset_file(folder, path.name):
                shutil.copyfile(path, target / folder / path.name)
    elif (source / f"{folder}.zip").is_file():
        extract_zip(source / f"{folder}.zip", target)


def _is_dataset_file(folder: str, name: str) -> bool:
    # Hidden names are skipped: macOS adds '._<name>.jpg' resource forks when it copies or zips folders.
    if name.startswith("."):
        return False
    return (folder == IMAGE_DIR and name.endswith(".jpg")) or (folder == MASK_DIR and name.endswith("_mask.gif"))


def _escapes(entry: zipfile.ZipInfo) -> bool:
    """Whether an entry could write outside target: absolute path, drive letter, '..' (either slash), symlink."""
    path = PureWindowsPath(entry.filename)
    return bool(path.anchor) or ".." in path.parts or stat.S_ISLNK(entry.external_attr >> 16)


def _destination(entry: PurePosixPath, target: Path) -> Path | None:
    """target/<folder>/<name> for a photo or mask entry at most one folder deep above train/ or train_masks/."""
    if len(entry.parts) not in (2, 3) or not _is_dataset_file(entry.parts[-2], entry.name):
        return None
    return target / entry.parts[-2] / entry.name


def _extract(bundle: zipfile.ZipFile, entry: zipfile.ZipInfo, destination: Path) -> None:
    destination.parent.mkdir(exist_ok=True)
    with bundle.open(entry) as source, open(destination, "wb") as out:
        shutil.copyfileobj(source, out)
