"""Extract the photos and masks of a Kaggle-layout zip, refusing archives that could harm the machine.

Refused before a byte is written: entries that would land outside the target (absolute paths, '..',
symlinks), encrypted entries and compression methods Python cannot read (Deflate64: what Windows'
"Send to > Compressed folder" uses above 2 GB), two entries for one file, and zip bombs: an entry larger than
any photo or mask could be, a compression ratio no JPEG or GIF reaches, or more in all than MAX_TOTAL_BYTES.
The declared sizes are binding: zipfile stops an entry at its declared size and fails its CRC check past it.
"""

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from carvana.core.errors import CarvanaError, list_some
from carvana.data.layout import stored_name

MAX_ENTRY_BYTES = 256 * 2**20  # a 1918x1280 JPEG is ~0.2 MB, its GIF mask ~0.02 MB
MAX_RATIO = 100  # JPEG and GIF are compressed already: deflate barely shrinks them
RATIO_FROM_BYTES = 2**20  # small entries may compress well (a tiny all-black mask) and can do no harm
MAX_TOTAL_BYTES = 64 * 2**30  # Kaggle's full training set is ~0.5 GB; its test set ~8 GB
READABLE = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
REZIP = "Re-create the archive with plain `zip -r` (no password, standard compression) or extract it yourself."


def extract_zip(archive: Path, target: Path) -> None:
    """Extract the entries [<top>/]train/*.jpg and [<top>/]train_masks/*_mask.gif of archive into
    target/train and target/train_masks."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            wanted = planned_entries(archive, bundle.infolist(), target)
            for entry, destination in wanted.items():
                destination.parent.mkdir(exist_ok=True)
                with bundle.open(entry) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CarvanaError(f"{archive}: corrupt or not a zip file ({error}); download it again.") from error


def planned_entries(archive: Path, entries: list[zipfile.ZipInfo], target: Path) -> dict[zipfile.ZipInfo, Path]:
    """Each photo or mask entry and where it goes; CarvanaError if anything about the archive is unsafe."""
    unsafe = [entry.filename for entry in entries if escapes(entry)]
    if unsafe:
        raise CarvanaError(
            f"{archive}: refusing to extract, entries would land outside the target folder: "
            f"{list_some(unsafe)}. Use an archive with plain relative paths, e.g. as downloaded from Kaggle."
        )
    plan: dict[zipfile.ZipInfo, Path] = {}
    seen: dict[Path, str] = {}
    for entry in entries:
        destination = destination_of(PurePosixPath(entry.filename), target)
        if destination is None:
            continue
        if destination in seen:
            raise CarvanaError(
                f"{archive}: entries {seen[destination]} and {entry.filename} are the same file "
                f"{destination.relative_to(target)}; keep one of them. {REZIP}"
            )
        seen[destination] = entry.filename
        check_entry(archive, entry)
        plan[entry] = destination
    total = sum(entry.file_size for entry in plan)
    if total > MAX_TOTAL_BYTES:
        raise CarvanaError(
            f"{archive}: its photos and masks would take {total / 2**30:.1f} GiB, more than the "
            f"{MAX_TOTAL_BYTES / 2**30:.0f} GiB this project extracts; split it or extract it yourself."
        )
    return plan


def check_entry(archive: Path, entry: zipfile.ZipInfo) -> None:
    name = f"{archive}: entry {entry.filename}"
    if entry.flag_bits & 0x1:
        raise CarvanaError(f"{name} is encrypted. {REZIP}")
    if entry.compress_type not in READABLE:
        raise CarvanaError(f"{name} uses compression method {entry.compress_type}, which Python cannot read. {REZIP}")
    if entry.file_size > MAX_ENTRY_BYTES:
        raise CarvanaError(
            f"{name} declares {entry.file_size / 2**20:.0f} MiB, more than any photo or mask "
            f"({MAX_ENTRY_BYTES / 2**20:.0f} MiB at most); refusing a possible zip bomb."
        )
    if entry.file_size > RATIO_FROM_BYTES and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
        raise CarvanaError(
            f"{name} expands {entry.file_size / max(entry.compress_size, 1):.0f}-fold "
            f"({entry.compress_size:,} -> {entry.file_size:,} bytes), more than the {MAX_RATIO}-fold any photo or "
            "mask reaches; refusing a possible zip bomb."
        )


def escapes(entry: zipfile.ZipInfo) -> bool:
    """Whether an entry could write outside target: absolute path, drive letter, '..' (either slash), symlink."""
    path = PureWindowsPath(entry.filename)
    return bool(path.anchor) or ".." in path.parts or stat.S_ISLNK(entry.external_attr >> 16)


def destination_of(entry: PurePosixPath, target: Path) -> Path | None:
    """target/<folder>/<name> for a photo or mask entry at most one folder deep above train/ or train_masks/."""
    if len(entry.parts) not in (2, 3):
        return None
    name = stored_name(entry.parts[-2], entry.name)
    return None if name is None else target / entry.parts[-2] / name
