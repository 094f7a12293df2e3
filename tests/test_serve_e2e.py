"""`carvana serve`: MLflow's scoring app and the try-it page, checked in headless Chromium.

A photo picked on the page comes back as a cut-out whose alpha is the one `carvana predict --cutouts` writes for
that photo with the same model; a photo over the size limit is refused on the page, a request over it by the server.
"""

import base64
import http.client
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, missing_browser
from conftest import untrained_checkpoint, write_pair
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from carvana.predict import main as predict_main
from carvana.server.processes import free_port, local_url, stop_group, wait_for_http

MISSING_BROWSER = missing_browser()
pytestmark = [pytest.mark.e2e]
START_TIMEOUT = 120  # MLflow saving, then loading, the model on a busy 2-core machine
PAGE_TIMEOUT = 60


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "best.pt", size=(32, 48))


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    write_pair(root, "0aaaaaaaaaaa_01", size=(160, 240))
    return root / "train" / "0aaaaaaaaaaa_01.jpg"


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("serve")
    url = local_url(free_port())
    log = folder / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {
        "CARVANA_MAX_PHOTOS_PER_REQUEST": "1"  # the server's request limit: one photo of 20 MiB, base64
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "carvana", "serve", "--model", str(model), "--port", url.rsplit(":", 1)[1]],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"{url}/ping", process, START_TIMEOUT, log)
        yield url
    finally:
        stop_group(process)


def text(page: WebDriver, element: str) -> str:
    return page.find_element(By.ID, element).text


@pytest.mark.skipif(MISSING_BROWSER is not None, reason=MISSING_BROWSER or "")
def test_the_page_cuts_out_the_car_predict_cuts_out(server: str, model: Path, photo: Path, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as browser:
        browser.get(server)
        browser.find_element(By.ID, "photo").send_keys(str(photo))
        wait = WebDriverWait(browser, PAGE_TIMEOUT)
        wait.until(
            lambda page: (
                "masked in" in page.find_element(By.ID, "status").text or page.find_element(By.ID, "error").text
            )
        )
        assert not browser.find_element(By.ID, "error").text
        source = browser.find_element(By.ID, "cutout").get_attribute("src")
        download = browser.find_element(By.ID, "download").get_attribute("href")
        big = tmp_path / "big.jpg"
        big.write_bytes(os.urandom(21 * 2**20))
        browser.find_element(By.ID, "photo").send_keys(str(big))
        wait.until(lambda page: text(page, "error"))
        refused = browser.find_element(By.ID, "error").text
    assert "big.jpg is 21.0 MiB, over the limit of 20 MiB" in refused
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    predict_main([str(photo), "--model", str(model), "--backend", "torch", "--cutouts", str(tmp_path / "cutouts")])
    written = np.asarray(Image.open(tmp_path / "cutouts" / f"{photo.stem}.png"))
    assert shown.shape == written.shape == (160, 240, 4)
    assert np.array_equal(shown[..., 3], written[..., 3])
    assert download.startswith("data:image/png;base64,")


def test_a_request_over_the_servers_limit_is_refused_with_413(server: str) -> None:
    """Refused on its Content-Length, before a byte of its body is read."""
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(30 * 2**20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert "over this server's limit of 28 MiB" in json.load(response)["message"]
    connection.close()
