"""carvana.predict: photos in any form, every output, Kaggle's RLE, errors that stop or skip, nothing half-written."""

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_params
from PIL import Image

from carvana.core.errors import CarvanaError
from carvana.data.imageio import read_mask
from carvana.inference import rle
from carvana.inference.photos import find_photos
from carvana.model.checkpoint import save_checkpoint
from carvana.model.unet import UNet
from carvana.predict import main
from carvana.prepare import prepare_split
from carvana.sources.synthetic import generate
from carvana.training.augment import eval_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, train_epoch

SIZE = (32, 48)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic car (16 views) at 192x128, in Kaggle layout."""
    root = tmp_path_factory.mktemp("photos")
    generate(root, cars=1, width=192, height=128, seed=3, workers=1)
    return root


@pytest.fixture(scope="module")
def model(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small U-Net trained for a few seconds on the photos: masks with real edges."""
    work = tmp_path_factory.mktemp("model")
    ids = sorted(p.stem for p in (photos / "train").glob("*.jpg"))
    prepare_split(photos, ids, work / "prepared", SIZE, workers=1)
    images, masks = np.load(work / "prepared" / "images.npy"), np.load(work / "prepared" / "masks.npy")
    torch.manual_seed(0)
    loader = make_loader(SegmentationArrays(images, masks, eval_transform(), 0), 8, True, 0, False)
    network = UNet(features=[4, 8])
    fit = Fit.of(network, train_params(lr=0.02, lr_schedule="constant", epochs=15, loss="bce_dice"), len(loader))
    for epoch in range(1, 16):
        start_epoch(loader, epoch)
        train_epoch(fit, loader, epoch)
    config = {"in_channels": 3, "out_channels": 1, "features": [4, 8]}
    save_checkpoint(work / "best.pt", {"model": network.state_dict(), "model_config": config, "image_size": list(SIZE)})
    return work / "best.pt"


def test_rle_follows_kaggles_convention():
    mask = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=np.uint8)
    assert rle.encode(mask) == "2 2 8 2"  # 1-indexed starts over the mask read row by row
    assert rle.encode(np.zeros((2, 3), np.uint8)) == "" and rle.encode(np.ones((2, 3), np.uint8)) == "1 6"


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trips(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((37, 53)) < rng.random()).astype(np.uint8)
    assert np.array_equal(rle.decode(rle.encode(mask), mask.shape), mask)


def test_rle_matches_a_train_masks_csv_in_kaggles_format():
    """tests/fixtures/kaggle: mask GIFs and their train_masks.csv rows, encoded apart from carvana (its README)."""
    fixture = Path(__file__).parent / "fixtures" / "kaggle"
    rows = dict(line.split(",") for line in (fixture / "train_masks.csv").read_text().splitlines()[1:])
    gifs = sorted((fixture / "train_masks").glob("*_mask.gif"))
    assert len(gifs) == len(rows) == 3
    for gif in gifs:
        mask, row = read_mask(gif), rows[gif.name.replace("_mask.gif", ".jpg")]
        assert mask.shape == (1280, 1918) and rle.encode(mask) == row, gif.name
        assert np.array_equal(rle.decode(row, mask.shape), mask)


def test_photos_from_folders_files_globs_and_zips(photos, tmp_path):
    folder = photos / "train"
    first, second = sorted(folder.glob("*.jpg"))[:2]
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(second, f"inside/{second.stem}-zipped.jpg")
        bundle.writestr("inside/notes.txt", "not a photo")
    found = find_photos([str(first), str(folder / "*_1[0-2].jpg"), str(archive)])
    assert [p.image_id for p in found] == [
        first.stem,
        *sorted(p.stem for p in folder.glob("*_1[0-2].jpg")),
        f"{second.stem}-zipped",
    ]
    assert np.asarray(Image.open(found[-1].open())).shape == (128, 192, 3)
    with pytest.raises(CarvanaError, match="given twice"):
        find_photos([str(folder), str(first)])
    with pytest.raises(CarvanaError, match="nowhere: no such file or folder"):
        find_photos([str(tmp_path / "nowhere")])


def run(args: list[str]) -> None:
    main([str(a) for a in args])


def test_every_output_at_the_photos_size(photos, model, tmp_path, capsys):
    out = tmp_path / "out"
    run(
        [
            photos / "train",
            "--model",
            model,
            "--masks",
            out / "masks",
            "--submission",
            out / "sub.csv.gz",
            "--cutouts",
            out / "cutouts",
            "--background",
            "#1e90ff",
            "--composites",
            out / "blue",
            "--tta",
            "--one-car",
        ]
    )
    said = capsys.readouterr().out
    assert "predict: 16 photos" in said and "mirror TTA" in said and "one car" in said
    ids = sorted(p.stem for p in (photos / "train").glob("*.jpg"))
    lines = gzip.decompress((out / "sub.csv.gz").read_bytes()).decode().splitlines()
    assert lines[0] == "img,rle_mask" and [line.split(",")[0] for line in lines[1:]] == [f"{i}.jpg" for i in ids]
    for line in lines[1:]:
        image_id = line.split(",")[0].removesuffix(".jpg")
        mask = read_mask(out / "masks" / f"{image_id}_mask.gif")
        assert mask.shape == (128, 192) and 0.05 < mask.mean() < 0.95  # a car, with edges
        assert np.array_equal(rle.decode(line.split(",")[1], mask.shape), mask)  # the submission is the GIFs
        cutout = Image.open(out / "cutouts" / f"{image_id}.png")
        assert cutout.mode == "RGBA" and cutout.size == (192, 128)
        alpha = np.asarray(cutout)[..., 3]
        assert (alpha[mask == 1] >= 128).all() and (alpha[mask == 0] <= 128).all()
        assert Image.open(out / "blue" / f"{image_id}.jpg").size == (192, 128)
    assert not list(out.rglob(".*tmp-*"))


def test_a_bad_photo_stops_the_run_or_is_skipped(photos, model, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((photos / "train").glob("*.jpg"))[:5]:
        (folder / path.name).write_bytes(path.read_bytes())
    broken = sorted(folder.glob("*.jpg"))[2]
    broken.write_bytes(b"not a jpeg")

    with pytest.raises(CarvanaError, match=f"{broken.name}: cannot decode image"):
        run([folder, "--model", model, "--masks", tmp_path / "stop", "--submission", tmp_path / "stop.csv"])
    assert not (tmp_path / "stop.csv").exists() and not list(tmp_path.glob(".stop.csv.tmp-*"))
    for gif in (tmp_path / "stop").glob("*"):  # whatever was written is whole
        assert read_mask(gif).shape == (128, 192)

    run(
        [
            folder,
            "--model",
            model,
            "--masks",
            tmp_path / "skip",
            "--submission",
            tmp_path / "skip.csv",
            "--on-error",
            "skip",
        ]
    )
    printed = capsys.readouterr().out
    assert "predict: 4 photos" in printed and "1 skipped" in printed
    rows = (tmp_path / "skip.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and f"{broken.stem}.jpg" not in {row.split(",")[0] for row in rows}
    assert len(list((tmp_path / "skip").glob("*_mask.gif"))) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to write: give --masks"),
        (["--background", "white"], "--background and --composites go together"),
        (["--background", "no-such-colour", "--composites", "x"], "is neither a colour"),
        (["--submission", "sub.txt"], "name it .csv or .csv.gz"),
        (["--threshold", "1.5", "--masks", "m"], "argument --threshold: 1.5 is not a probability"),
        (["--model", "missing.pt", "--masks", "m"], "--model missing.pt: no such file"),
    ],
)
def test_bad_options_are_one_clear_error(photos, model, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    model = [] if "--model" in args else ["--model", model]
    with pytest.raises(CarvanaError, match=message):
        run([photos / "train", *model, *args])
