"""carvana-predict refuses what would lose or mangle data, before anything is predicted: one line naming the
flag, exit code 2, inputs and earlier outputs untouched. And what it writes holds any photo: format limits are
checked per photo (skipped with --on-error skip), ids with commas are quoted in the submission."""

import csv
import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import untrained_checkpoint
from PIL import Image

from carvana.predict import console_script


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("car_a.jpg", "car_b.jpg", "car_c.png"):
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "best.pt")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["carvana-predict", *args])
    code = 0
    try:
        console_script()
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


REFUSED = {
    "--ray-cpus without --ray": (["--masks", "{out}", "--ray-cpus", "4"], "--ray-cpus goes with --ray"),
    "negative --ray-gpus": (["--masks", "{out}", "--ray", "--ray-gpus", "-1"], "--ray-gpus: -1 is out of range"),
    "no Ray there": (["--masks", "{out}", "--ray", "127.0.0.1:1"], "--ray 127.0.0.1:1: no Ray cluster answers there"),
    "batch size 0": (["--masks", "{out}", "--batch-size", "0"], "argument --batch-size: 0 is out of range"),
    "negative batch size": (["--masks", "{out}", "--batch-size", "-4"], "argument --batch-size: -4 is out of range"),
    "no threads": (["--masks", "{out}", "--threads", "0"], "argument --threads: 0 is out of range"),
    "negative refine": (["--masks", "{out}", "--refine", "-1"], "argument --refine: -1 is out of range"),
    "unknown device": (["--masks", "{out}", "--device", "tpu"], "argument --device: 'tpu' is not a device"),
    "mistyped flag": (["--maks", "{out}"], "unrecognized arguments: --maks (did you mean --masks?)"),
    "masks onto a file": (["--masks", "{photos}/car_a.jpg"], "--masks {photos}/car_a.jpg: a file is there"),
    "submission onto a folder": (["--submission", "{photos}"], "--submission {photos}: a folder is there"),
    "composites over the photos": (
        ["--background", "white", "--composites", "{photos}"],
        "--composites {photos}: would write car_a.jpg over the input photo {photos}/car_a.jpg",
    ),
    "cut-outs over a png": (
        ["--cutouts", "{photos}"],
        "--cutouts {photos}: would write car_c.png over the input photo {photos}/car_c.png",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_one_line_before_anything_is_written(
    photos: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, case: str
) -> None:
    args, message = REFUSED[case]
    out = tmp_path / "out"
    fill = {"out": str(out), "photos": str(photos)}
    before = tree(tmp_path)
    code, _, err = run(monkeypatch, capsys, str(photos), "--model", str(model), *(a.format(**fill) for a in args))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(**fill) in err, err
    assert tree(tmp_path) == before and not out.exists()


def test_a_photo_beyond_a_formats_limit_is_refused_or_skipped_by_name(
    photos: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    Image.new("RGB", (16400, 8), "orange").save(photos / "panorama.png")  # WebP holds 16383 pixels a side
    out = tmp_path / "cutouts"
    common = [str(photos), "--model", str(model), "--cutouts", str(out), "--cutout-format", "webp"]
    code, _, err = run(monkeypatch, capsys, *common)
    assert code == 2 and "panorama.png: 16400x8 is more than the 16383 pixels a side WebP holds" in err
    code, out_text, err = run(monkeypatch, capsys, *common, "--on-error", "skip")
    assert code == 0 and "1 skipped" in out_text and "panorama.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["car_a.webp", "car_b.webp", "car_c.webp"]


def test_submission_rows_are_quoted_where_an_id_needs_it(
    photos: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (photos / "car_a.jpg").rename(photos / 'odd, "named".jpg')
    submission = tmp_path / "submission.csv.gz"
    code, _, _ = run(monkeypatch, capsys, str(photos), "--model", str(model), "--submission", str(submission))
    assert code == 0
    with gzip.open(submission, "rt", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["img", "rle_mask"] and [row[0] for row in rows[1:]] == [
        "car_b.jpg",
        "car_c.jpg",
        'odd, "named".jpg',
    ]
