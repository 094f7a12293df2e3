"""fetch_local / extract_zip: Kaggle-layout folders and zips in, only photos and masks out, unsafe zips refused."""

import stat
import zipfile
from pathlib import Path

import pytest

from carvana.core.errors import CarvanaError
from carvana.data.archive import extract_zip
from carvana.sources.local import fetch_local

# Files a real folder may also hold; none of them may be copied.
CLUTTER = {
    "train/notes.txt": b"notes",
    "train/._0aaaaaaaaaaa_01.jpg": b"macOS resource fork",
    "train_masks/preview.png": b"png",
    "README.md": b"readme",
}


def files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root."""
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def write_zip(archive: Path, entries: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(prefix + name, data)
    return archive


@pytest.fixture
def photos_and_masks(dataset: Path) -> dict[str, bytes]:
    """What a fetch must produce: the dataset's files without the clutter."""
    return {name: data for name, data in files(dataset).items() if name not in CLUTTER}


@pytest.fixture
def source(dataset: Path) -> Path:
    """The shared tiny dataset in Kaggle layout, cluttered like a real download folder."""
    for name, data in CLUTTER.items():
        (dataset / name).write_bytes(data)
    return dataset


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    return folder


def test_folder_copies_only_photos_and_masks(photos_and_masks: dict[str, bytes], source: Path, target: Path) -> None:
    fetch_local(source, target)
    assert files(target) == photos_and_masks


def test_folder_with_the_two_kaggle_zips(
    photos_and_masks: dict[str, bytes], source: Path, tmp_path: Path, target: Path
) -> None:
    zips = tmp_path / "zips"
    zips.mkdir()
    for folder in ("train", "train_masks"):
        inside = {name: data for name, data in files(source).items() if name.startswith(f"{folder}/")}
        write_zip(zips / f"{folder}.zip", inside)
    fetch_local(zips, target)
    assert files(target) == photos_and_masks


@pytest.mark.parametrize("prefix", ["", "carvana/"])
def test_single_zip_at_top_or_under_one_folder(
    photos_and_masks: dict[str, bytes], source: Path, tmp_path: Path, target: Path, prefix: str
) -> None:
    fetch_local(write_zip(tmp_path / "carvana.zip", files(source), prefix), target)
    assert files(target) == photos_and_masks


def symlink_entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name)
    entry.external_attr = (stat.S_IFLNK | 0o777) << 16
    return entry


ESCAPING = ["../evil.jpg", "/abs.jpg", "train/..\\..\\evil.jpg", symlink_entry("train/link.jpg")]


@pytest.mark.parametrize("entry", ESCAPING)
def test_escaping_entries_refuse_the_whole_zip(
    source: Path, tmp_path: Path, target: Path, entry: str | zipfile.ZipInfo
) -> None:
    archive = write_zip(tmp_path / "carvana.zip", files(source))
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(entry, b"/etc/passwd")
    name = entry if isinstance(entry, str) else entry.filename
    with pytest.raises(CarvanaError, match="refusing to extract") as error:
        extract_zip(archive, target)
    assert str(archive) in str(error.value) and name in str(error.value)
    assert files(target) == {} and not (tmp_path / "evil.jpg").exists()


def flip_byte_of(archive: Path, data: bytes) -> None:
    """Corrupt the stored copy of data, so the zip opens but fails its CRC check on reading."""
    raw = archive.read_bytes()
    at = raw.index(data) + len(data) // 2
    archive.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])


@pytest.mark.parametrize("damage", ["not a zip", "bad crc"])
def test_corrupt_zip_is_named(photos_and_masks: dict[str, bytes], tmp_path: Path, target: Path, damage: str) -> None:
    archive = tmp_path / "carvana.zip"
    if damage == "not a zip":
        archive.write_bytes(b"this is not a zip file")
    else:
        flip_byte_of(write_zip(archive, photos_and_masks), next(iter(photos_and_masks.values())))
    with pytest.raises(CarvanaError, match="corrupt or not a zip") as error:
        fetch_local(archive, target)
    assert str(archive) in str(error.value)


def test_missing_source_says_what_to_set(tmp_path: Path, target: Path) -> None:
    with pytest.raises(CarvanaError) as error:
        fetch_local(tmp_path / "nowhere", target)
    message = str(error.value)
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in message
    assert "train/*.jpg" in message and "download.source" in message and "synthetic" in message


@pytest.mark.parametrize(
    ("packing", "names", "missing"),
    [
        ("folder", ["train/x.jpg"], "train_masks/"),
        ("folder", ["images/x.jpg"], "train/ or train_masks/"),
        ("zip", ["train/x.jpg"], "train_masks/"),
        # Deeper than one top-level folder is not looked into.
        ("zip", ["a/b/train/x.jpg", "a/b/train_masks/x_mask.gif"], "train/ or train_masks/"),
    ],
)
def test_wrong_layout_names_what_is_missing(
    tmp_path: Path, target: Path, packing: str, names: list[str], missing: str
) -> None:
    if packing == "zip":
        source = write_zip(tmp_path / "source.zip", dict.fromkeys(names, b"x"))
    else:
        source = tmp_path / "source"
        for name in names:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(b"x")
    with pytest.raises(CarvanaError) as error:
        fetch_local(source, target)
    message = str(error.value)
    assert f"{source}: not in Kaggle layout, found no {missing};" in message and "download.source" in message


def test_other_file_is_not_in_kaggle_layout(tmp_path: Path, target: Path) -> None:
    source = tmp_path / "carvana.tar"
    source.write_bytes(b"tar")
    with pytest.raises(CarvanaError, match="not in Kaggle layout"):
        fetch_local(source, target)
