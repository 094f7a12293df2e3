"""fetch_local / extract_zip: Kaggle-layout folders and zips in, only photos and masks out, unsafe zips refused."""
import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvana.errors import CarvanaError
from carvana.imageio import mask_image
from carvana.sources.local import extract_zip, fetch_local

IDS = ("0cdf5b5d0ce1_01", "0cdf5b5d0ce1_02")
DATASET = [f"train/{i}.jpg" for i in IDS] + [f"train_masks/{i}_mask.gif" for i in IDS]
# Files a real folder may also hold; none of them may be copied.
CLUTTER = ["train/notes.txt", "train/._0cdf5b5d0ce1_01.jpg", "train_masks/preview.png", "README.md"]


def photo_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def mask_bytes() -> bytes:
    buffer = io.BytesIO()
    mask_image(np.eye(6, 8, dtype=np.uint8)).save(buffer, format="GIF")
    return buffer.getvalue()


def contents() -> dict[str, bytes]:
    """Relative path -> bytes of a tiny dataset in Kaggle layout plus clutter."""
    photo, mask = photo_bytes(), mask_bytes()
    files = {name: photo if name.endswith(".jpg") else mask for name in DATASET}
    return files | {name: b"clutter" for name in CLUTTER}


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(archive: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(prefix + name, data)
    return archive


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    folder = tmp_path / "target"
    folder.mkdir()
    return folder


def test_folder_copies_only_photos_and_masks(tmp_path: Path, target: Path) -> None:
    source = write_folder(tmp_path / "kaggle", contents())
    fetch_local(source, target)
    assert listing(target) == sorted(DATASET)
    assert all((target / name).read_bytes() == (source / name).read_bytes() for name in DATASET)


def test_folder_with_the_two_kaggle_zips(tmp_path: Path, target: Path) -> None:
    files = contents()
    for folder in ("train", "train_masks"):
        inside = {name: data for name, data in files.items() if name.startswith(f"{folder}/")}
        write_zip(tmp_path / "kaggle" / f"{folder}.zip", inside)
    fetch_local(tmp_path / "kaggle", target)
    assert listing(target) == sorted(DATASET)


@pytest.mark.parametrize("prefix", ["", "carvana/"])
def test_single_zip_at_top_or_under_one_folder(tmp_path: Path, target: Path, prefix: str) -> None:
    fetch_local(write_zip(tmp_path / "carvana.zip", contents(), prefix), target)
    assert listing(target) == sorted(DATASET)
    assert (target / DATASET[0]).read_bytes() == photo_bytes()


@pytest.mark.parametrize("spelling", ["data/kaggle", "~/kaggle"])
def test_relative_paths_start_at_cwd_and_tilde_is_home(
    tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    write_folder(tmp_path / "repo" / "data" / "kaggle", contents())
    write_folder(tmp_path / "home" / "kaggle", contents())
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fetch_local(Path(spelling), target)
    assert listing(target) == sorted(DATASET)


def symlink_entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name)
    entry.external_attr = (stat.S_IFLNK | 0o777) << 16
    return entry


ESCAPING = ["../evil.jpg", "/abs.jpg", "train/..\\..\\evil.jpg", symlink_entry("train/link.jpg")]


@pytest.mark.parametrize("entry", ESCAPING)
def test_escaping_entries_refuse_the_whole_zip(tmp_path: Path, target: Path, entry: str | zipfile.ZipInfo) -> None:
    archive = write_zip(tmp_path / "carvana.zip", contents())
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(entry, b"/etc/passwd")
    name = entry if isinstance(entry, str) else entry.filename
    with pytest.raises(CarvanaError, match="refusing to extract") as error:
        extract_zip(archive, target)
    assert str(archive) in str(error.value) and name in str(error.value)
    assert listing(tmp_path) == ["carvana.zip"]


def flip_photo_byte(archive: Path) -> None:
    """Corrupt the first stored photo, so the zip opens but fails its CRC check on reading."""
    data = archive.read_bytes()
    at = data.index(photo_bytes()) + 100
    archive.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])


@pytest.mark.parametrize("damage", ["not a zip", "bad crc"])
def test_corrupt_zip_is_named(tmp_path: Path, target: Path, damage: str) -> None:
    archive = tmp_path / "carvana.zip"
    if damage == "not a zip":
        archive.write_bytes(b"this is not a zip file")
    else:
        flip_photo_byte(write_zip(archive, contents()))
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
        ("folder", ["train/0cdf5b5d0ce1_01.jpg"], "train_masks/"),
        ("folder", ["images/0cdf5b5d0ce1_01.jpg"], "train/ or train_masks/"),
        ("zip", ["train/0cdf5b5d0ce1_01.jpg"], "train_masks/"),
        # Deeper than one top-level folder is not looked into.
        ("zip", ["a/b/train/x.jpg", "a/b/train_masks/x_mask.gif"], "train/ or train_masks/"),
    ],
)
def test_wrong_layout_names_what_is_missing(
    tmp_path: Path, target: Path, packing: str, names: list[str], missing: str
) -> None:
    layout = dict.fromkeys(names, b"x")
    source = write_folder(tmp_path / "source", layout) if packing == "folder" else write_zip(tmp_path / "s.zip", layout)
    with pytest.raises(CarvanaError) as error:
        fetch_local(source, target)
    message = str(error.value)
    assert f"{source}: not in Kaggle layout, found no {missing};" in message and "download.source" in message


def test_other_file_is_not_in_kaggle_layout(tmp_path: Path, target: Path) -> None:
    source = tmp_path / "carvana.tar"
    source.write_bytes(b"tar")
    with pytest.raises(CarvanaError, match="not in Kaggle layout"):
        fetch_local(source, target)
