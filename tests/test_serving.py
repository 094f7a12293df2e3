"""The served model's checks and answers, in process on an untrained checkpoint (the HTTP side is
tests/test_serving_e2e.py)."""

import base64
import io

import numpy as np
import pandas as pd
import pytest
from conftest import untrained_checkpoint
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModelContext
from PIL import Image

from carvana.inference import rle
from carvana.inference.serving import CHECKPOINT, MAX_PHOTO_BYTES, PhotoSegmenter

CONFIG = {"in_channels": 3, "out_channels": 1, "features": [4, 8]}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> PhotoSegmenter:
    checkpoint = untrained_checkpoint(tmp_path_factory.mktemp("model") / "best.pt")
    model = PhotoSegmenter()
    model.load_context(PythonModelContext({CHECKPOINT: str(checkpoint)}, None))
    return model


def jpeg(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, "orange").save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def frame(*values: object) -> pd.DataFrame:
    return pd.DataFrame({"image": list(values)})


def test_every_photo_gets_a_mask_at_its_own_size(model: PhotoSegmenter) -> None:
    answer = model.predict(None, frame(jpeg((100, 60)), jpeg((37, 41))))
    assert answer[["width", "height"]].values.tolist() == [[100, 60], [37, 41]]
    for row in answer.itertuples():
        assert rle.decode(row.rle, (row.height, row.width)).shape == (row.height, row.width)
    assert "cutout" not in answer


def test_the_threshold_decides_the_mask(model: PhotoSegmenter) -> None:
    photo = frame(jpeg((30, 20)))
    everything = model.predict(None, photo, {"threshold": 1e-9})["rle"][0]
    nothing = model.predict(None, photo, {"threshold": 1 - 1e-9})["rle"][0]
    assert (everything, nothing) == ("1 600", "")
    assert model.predict(None, photo, {"threshold": 1e-9, "one_car": True})["rle"][0] == "1 600"  # one region


def test_the_cutout_is_an_rgba_png_of_the_photo(model: PhotoSegmenter) -> None:
    answer = model.predict(None, frame(jpeg((30, 20))), {"cutout": True, "hard": True})
    with Image.open(io.BytesIO(base64.b64decode(answer["cutout"][0]))) as cutout:
        assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", (30, 20))
        alpha = np.asarray(cutout)[..., 3]
    assert np.array_equal(alpha, rle.decode(answer["rle"][0], (20, 30)) * 255)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not base64!", "row 1: not base64"),
        ("é", "row 1: not base64"),
        (None, "row 1: nan is not a base64 string"),  # pandas turns None in a column of strings into nan
        (base64.b64encode(b"GIF89a and nothing else").decode(), "row 1: cannot decode image"),
        ("A" * (MAX_PHOTO_BYTES * 4 // 3 + 4), "row 1: the photo is 20.0 MiB, over the limit of 20 MiB"),
    ],
)
def test_a_bad_row_is_an_invalid_parameter_naming_the_row(model: PhotoSegmenter, bad: object, message: str) -> None:
    with pytest.raises(MlflowException, match=message) as raised:
        model.predict(None, frame(jpeg((30, 20)), bad))
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5])
def test_a_threshold_outside_zero_to_one_is_refused(model: PhotoSegmenter, threshold: float) -> None:
    with pytest.raises(MlflowException, match=f"params: `threshold` is {threshold}; it must be (greater|less) than"):
        model.predict(None, frame(jpeg((30, 20))), {"threshold": threshold})


def test_a_request_over_the_photo_limit_is_refused(model: PhotoSegmenter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARVANA_MAX_PHOTOS_PER_REQUEST", "3")
    with pytest.raises(MlflowException, match="4 photos in one request, over the limit of 3"):
        model.predict(None, frame(*[jpeg((24, 16))] * 4))
    assert len(model.predict(None, frame(*[jpeg((24, 16))] * 3))) == 3
