"""Phone photos: every reader applies the EXIF orientation first, so masks, cut-outs and sizes are the photo as
shown. Each of the 8 orientations is written with Pillow: the stored pixels turned so that a viewer shows the
upright photo."""

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import untrained_checkpoint, write_pair
from mlflow.pyfunc import PythonModelContext
from PIL import Image

from carvana.data.imageio import read_image
from carvana.data.resize import load_photo_sized
from carvana.inference.serving import CHECKPOINT, PhotoSegmenter
from carvana.predict import main as predict_main
from carvana.sources.check import check_dataset

# what a viewer does for each orientation (Pillow's ImageOps.exif_transpose), and its inverse: how it was stored
SHOWN = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STORED = SHOWN | {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def upright_photo(height: int = 48, width: int = 72) -> np.ndarray:
    """A photo no turn or mirror leaves alike: a red block top left, a blue bar along the bottom."""
    photo = np.full((height, width, 3), 90, dtype=np.uint8)
    photo[: height // 3, : width // 4] = (230, 20, 20)
    photo[-height // 6 :, width // 3 :] = (20, 20, 230)
    return photo


def stored_with(orientation: int, photo: np.ndarray, path: Path | io.BytesIO, image_format: str = "JPEG") -> None:
    image = Image.fromarray(photo)
    if orientation in STORED:
        image = image.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format=image_format, exif=exif, **({"quality": 95} if image_format == "JPEG" else {}))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_read_upright(tmp_path: Path, orientation: int) -> None:
    photo = upright_photo()
    path = tmp_path / "phone.jpg"
    stored_with(orientation, photo, path)
    assert np.abs(read_image(path).astype(int) - photo).mean() < 4
    size, small = load_photo_sized(path, (24, 36))
    assert size == (48, 72) and small.shape == (24, 36, 3)
    assert np.abs(small.astype(int) - np.asarray(Image.fromarray(photo).resize((36, 24)))).mean() < 6


def test_the_dataset_check_compares_the_mask_with_the_photo_as_shown(tmp_path: Path) -> None:
    write_pair(tmp_path, "0aaaaaaaaaaa_01", size=(48, 72))
    photo = tmp_path / "train" / "0aaaaaaaaaaa_01.jpg"
    stored_with(6, read_image(photo), photo)  # stored 72 high and 48 wide, shown as the 48x72 of its mask
    assert check_dataset(tmp_path, "test") == ["0aaaaaaaaaaa_01"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "best.pt")


@pytest.mark.parametrize("orientation", [6, 8])
def test_predict_writes_outputs_the_size_of_the_photo_as_shown(
    tmp_path: Path, checkpoint: Path, orientation: int
) -> None:
    stored_with(orientation, upright_photo(), tmp_path / "phone.jpg")
    predict_main(
        [str(tmp_path / "phone.jpg"), "--model", str(checkpoint)]
        + ["--masks", str(tmp_path / "masks"), "--cutouts", str(tmp_path / "cutouts")]
    )
    for output in (tmp_path / "masks" / "phone_mask.gif", tmp_path / "cutouts" / "phone.png"):
        with Image.open(output) as image:
            assert image.size == (72, 48)
    with Image.open(tmp_path / "cutouts" / "phone.png") as cutout:
        assert np.abs(np.asarray(cutout)[..., :3].astype(int) - upright_photo()).mean() < 4


def test_the_served_model_answers_the_size_as_shown(tmp_path: Path, checkpoint: Path) -> None:
    model = PhotoSegmenter()
    model.load_context(PythonModelContext({CHECKPOINT: str(checkpoint)}, None))
    buffer = io.BytesIO()
    stored_with(6, upright_photo(), buffer)
    answer = model.predict(None, pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode("ascii")]}))
    assert (answer["width"][0], answer["height"][0]) == (72, 48)
