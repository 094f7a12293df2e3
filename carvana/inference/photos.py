"""The photos to predict: files, folders, glob patterns or zips, as a list of uniquely named photos.

A photo's id is its file name without the suffix: it names its outputs (`<id>_mask.gif`, `<id>.png`, the
submission's `<id>.jpg`), so two photos with one id are refused before anything runs.
"""

import functools
import glob
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from carvana.core.errors import CarvanaError, list_some
from carvana.data.archive import check_entry, escapes

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class Photo:
    image_id: str
    name: str  # where it comes from, for messages: a path, or archive.zip:member
    path: Path  # the file, or the zip holding it
    member: str | None = None  # its entry in the zip

    def open(self) -> BinaryIO | Path:
        """What PIL opens: the path, or the zip entry's bytes."""
        if self.member is None:
            return self.path
        return io.BytesIO(opened_zip(self.path).read(self.member))


@dataclass(frozen=True)
class EncodedPhoto:
    """A photo that arrived as bytes (a row of a request to the served model), not as a file."""

    image_id: str
    name: str  # for messages: where in the request it is
    data: bytes = field(repr=False)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


AnyPhoto = Photo | EncodedPhoto


@functools.lru_cache(maxsize=8)
def opened_zip(archive: Path) -> zipfile.ZipFile:
    """One open ZipFile per archive, shared (its reads are safe from several threads): reading the central
    directory again for every photo of a 100,000-photo zip would take longer than predicting them."""
    return zipfile.ZipFile(archive)


def find_photos(arguments: list[str]) -> list[Photo]:
    """Every photo the arguments name, in order (folders and globs sorted); CarvanaError if none or ids clash."""
    photos = [photo for argument in arguments for photo in expand(argument)]
    if not photos:
        raise CarvanaError(f"no photos ({', '.join(SUFFIXES)}) in {' '.join(arguments) or 'the arguments'}")
    first: dict[str, Photo] = {}
    clashes = []
    for photo in photos:
        if photo.image_id in first:
            clashes.append(f"{first[photo.image_id].name} and {photo.name}")
        first.setdefault(photo.image_id, photo)
    if clashes:
        raise CarvanaError(
            f"{len(clashes)} photo id(s) given twice, which would write the same outputs: {list_some(clashes)}; "
            "rename or leave out one of each"
        )
    return photos


def expand(argument: str) -> Iterator[Photo]:
    path = Path(argument).expanduser()
    if path.is_dir():
        yield from (file_photo(p) for p in sorted(path.iterdir()) if is_photo(p.name) and p.is_file())
    elif path.is_file() and path.suffix.lower() == ".zip":
        yield from zip_photos(path)
    elif path.is_file():
        yield file_photo(path)
    elif glob.has_magic(argument):
        yield from (file_photo(Path(p)) for p in sorted(glob.glob(str(path))) if is_photo(p))
    else:
        raise CarvanaError(f"{argument}: no such file or folder (give photos, folders of photos, globs or zips)")


def is_photo(name: str) -> bool:
    return not Path(name).name.startswith(".") and Path(name).suffix.lower() in SUFFIXES


def file_photo(path: Path) -> Photo:
    return Photo(path.stem, str(path), path)


def zip_photos(archive: Path) -> Iterator[Photo]:
    try:
        with zipfile.ZipFile(archive) as bundle:
            entries = [entry for entry in bundle.infolist() if not entry.is_dir() and is_photo(entry.filename)]
    except zipfile.BadZipFile as error:
        raise CarvanaError(f"{archive}: corrupt or not a zip file ({error})") from error
    for entry in entries:
        if escapes(entry):
            raise CarvanaError(f"{archive}: refusing entry {entry.filename}, a path outside the archive")
        check_entry(archive, entry)
        yield Photo(PurePosixPath(entry.filename).stem, f"{archive}:{entry.filename}", archive, entry.filename)
