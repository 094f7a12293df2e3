"""The champion served over HTTP by the real `mlflow models serve`: photos in, masks out, the same masks
`carvana.predict` writes; bad photos answered 400 with a message naming the row, and the server serving on."""

import base64
import io
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import png_declaring
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import LEARNS_CARS, Workspace

from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.inference import rle
from carvana.inference.serving import MAX_PHOTO_BYTES
from carvana.server.processes import HOST, free_port, local_url, stop_group, wait_for_http

pytestmark = pytest.mark.e2e

MLFLOW = Path(sys.executable).parent / "mlflow"
CHAMPION = "models:/carvana-unet@champion"
START_TIMEOUT = 120  # loading MLflow, then the model, on a busy 2-core machine
# The server and carvana.predict run the same code on the same checkpoint: the masks should match exactly. A pixel
# whose probability sits on the threshold could flip with float rounding, so a handful (of 38,400) may differ.
MAX_DIFFERING_PIXELS = 8


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A tiny pipeline through evaluate, which makes its model the champion."""
    workspace = Workspace(tmp_path_factory.mktemp("pipeline"), extra=LEARNS_CARS)
    workspace.run("dvc", "repro", "evaluate")
    return workspace


@pytest.fixture(scope="module")
def server(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The champion, served from a folder outside the workspace: the model brings its own code."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    log = folder / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [MLFLOW, "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
            + ["--host", HOST, "--port", str(port)],
            cwd=folder,
            env={**workspace.env, "MLFLOW_TRACKING_URI": workspace.tracking_uri},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"{local_url(port)}/ping", server, START_TIMEOUT, log)
        yield local_url(port)
    finally:
        stop_group(server)


@pytest.fixture(scope="module")
def photo(workspace: Workspace) -> Path:
    """A val car's photo: one the model never trained on."""
    first_val = (workspace.root / "stages/split_val/val.txt").read_text().split()[0]
    return image_path(workspace.root / "stages/download", first_val)


@pytest.fixture(scope="module")
def predicted_mask(workspace: Workspace, photo: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The mask `python -m carvana.predict` writes for `photo` with the champion's checkpoint."""
    champion = MlflowClient(workspace.tracking_uri).get_model_version_by_alias("carvana-unet", "champion")
    assert champion.run_id == workspace.json("stages/train/mlflow_run.json")["run_id"]
    folder = tmp_path_factory.mktemp("predict")
    checkpoint = workspace.root / "stages/evaluate/model.pt"  # the champion's: the network and its learned edges
    predict = ["python", "-m", "carvana.predict", str(photo), "--model", str(checkpoint), "--backend", "torch"]
    workspace.run(*predict, "--masks", str(folder))
    return read_mask(folder / f"{photo.stem}_mask.gif")


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def invoke(url: str, photos: list[bytes], params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """POST the photos as MLflow's `dataframe_split` JSON; the HTTP status and the decoded answer."""
    payload = {"dataframe_split": {"columns": ["image"], "data": [[encoded(photo)] for photo in photos]}}
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(payload | ({"params": params} if params else {})).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.numerics
def test_a_photo_gets_the_mask_predict_writes(server: str, photo: Path, predicted_mask: np.ndarray) -> None:
    status, answer = invoke(server, [photo.read_bytes()])
    assert status == 200, answer
    (row,) = answer["predictions"]
    assert (row["width"], row["height"]) == (240, 160)
    served = rle.decode(row["rle"], (row["height"], row["width"]))
    assert np.count_nonzero(served != predicted_mask) <= MAX_DIFFERING_PIXELS
    assert dice(served, predicted_mask) > 0.999
    truth = read_mask(mask_path(photo.parents[1], photo.stem))
    # the car, not a trivial mask that any two code paths would agree on (one photo of a tiny model)
    assert 0.05 < served.mean() < 0.95 and dice(served, truth) > 0.6


def dice(mask: np.ndarray, other: np.ndarray) -> float:
    return 2 * np.sum(mask & other) / (mask.sum() + other.sum())


def test_the_cutout_is_the_photo_with_the_mask_as_alpha(server: str, photo: Path) -> None:
    status, answer = invoke(server, [photo.read_bytes()], {"cutout": True, "hard": True})
    assert status == 200, answer
    (row,) = answer["predictions"]
    with Image.open(io.BytesIO(base64.b64decode(row["cutout"]))) as cutout:
        assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", (240, 160))
        pixels = np.asarray(cutout)
    assert np.array_equal(pixels[..., :3], read_image(photo))
    assert np.array_equal(pixels[..., 3], rle.decode(row["rle"], (160, 240)) * 255)


def test_the_cutout_edge_is_soft_by_default(server: str, photo: Path) -> None:
    status, answer = invoke(server, [photo.read_bytes()], {"cutout": True})
    assert status == 200, answer
    (row,) = answer["predictions"]
    with Image.open(io.BytesIO(base64.b64decode(row["cutout"]))) as cutout:
        alpha = np.asarray(cutout)[..., 3]
    assert len(np.unique(alpha)) > 2  # a ramp with the probability, not the mask's two levels
    assert np.array_equal(alpha > 127, rle.decode(row["rle"], (160, 240)).astype(bool))  # half opaque on the edge


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"this is not a photo", "row 1: cannot decode image (not in a format Pillow reads"),
        (png_declaring(50000, 50000), "row 1: the image declares more than 89,478,485 pixels"),
        (bytes(MAX_PHOTO_BYTES + 3), "row 1: the photo is 20.0 MiB, over the limit of 20 MiB per photo"),
    ],
    ids=["not a photo", "decompression bomb", "over the size limit"],
)
def test_a_bad_row_is_refused_by_name_and_the_server_serves_on(
    server: str, photo: Path, bad: bytes, message: str
) -> None:
    status, answer = invoke(server, [photo.read_bytes(), bad])
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in answer["message"]
    status, answer = invoke(server, [photo.read_bytes()])
    assert status == 200 and len(answer["predictions"]) == 1
