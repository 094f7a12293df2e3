"""The MLflow UI on a real tiny pipeline's store, checked in headless Chromium driven by Selenium.

Screenshots of each page land in $CARVANA_SCREENSHOTS if set, else in pytest's tmp folder (path printed).
"""

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, missing_browser
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from carvana.server.mlflow_server import SERVER_ENV
from carvana.server.processes import HOST, free_port, local_url, stop_group, wait_for_http

MLFLOW = Path(sys.executable).parent / "mlflow"
SERVER_START_TIMEOUT = 60
EXPERIMENT_API = "ajax-api/2.0/mlflow/experiments/get-by-name"
PAGE_TIMEOUT = 30
WORST_CASES = "render_masks/worst_cases.png"
# An <img>'s decoded size, or 0 while it has not loaded.
NATURAL_SIZE = "const image = arguments[0]; return image.naturalWidth && [image.naturalWidth, image.naturalHeight]"


MISSING_BROWSER = missing_browser()
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(MISSING_BROWSER is not None, reason=MISSING_BROWSER or "")]


@pytest.fixture(scope="module")
def workspace(tiny_pipeline: Workspace) -> Workspace:
    return tiny_pipeline


@pytest.fixture(scope="module")
def run(workspace: Workspace) -> Run:
    run_id = workspace.json("stages/train/mlflow_run.json")["run_id"]
    return MlflowClient(tracking_uri=workspace.tracking_uri).get_run(run_id)


def carvana_experiment(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/{EXPERIMENT_API}?experiment_name=carvana", timeout=5) as response:
        return json.load(response)["experiment"]


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[str]:
    port = free_port()
    url = local_url(port)
    log = workspace.root / "mlflow_server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", workspace.tracking_uri]
            + ["--host", HOST, "--port", str(port), "--workers", "1"],
            cwd=workspace.root,
            env={**workspace.env, **SERVER_ENV},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"{url}/health", server, SERVER_START_TIMEOUT, log)
        # Another server that grabbed the port first would answer too; this one serves our store.
        experiment = carvana_experiment(url)
        assert experiment["artifact_location"].startswith((workspace.root / "mlruns").as_uri()), experiment
        yield url
    finally:
        stop_group(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "CARVANA_SCREENSHOTS" in os.environ:
        folder = Path(os.environ["CARVANA_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("screenshots")
    print(f"MLflow UI screenshots: {folder}")
    return folder


class MlflowUi:
    """The UI at `url` in `driver`: open a hash route, wait for an element, screenshot around it."""

    def __init__(self, driver: WebDriver, url: str, screenshots: Path) -> None:
        self.driver, self.url, self.screenshots = driver, url, screenshots

    def open(self, route: str) -> None:
        self.driver.get(f"{self.url}/#/{route}")

    def wait(self, condition: Callable[[WebDriver], Any], waiting_for: str) -> Any:
        return WebDriverWait(self.driver, PAGE_TIMEOUT).until(condition, f"no {waiting_for} in {PAGE_TIMEOUT} s")

    def visible(self, xpath: str) -> WebElement:
        return self.wait(expected_conditions.visibility_of_element_located((By.XPATH, xpath)), f"visible {xpath}")

    def screenshot(self, name: str, around: WebElement) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", around)
        self.driver.save_screenshot(str(self.screenshots / name))


@pytest.fixture(scope="module")
def ui(browser: WebDriver, server: str, screenshots: Path) -> MlflowUi:
    # The MLflow Assistant side panel opens on a first visit and hides a quarter of every screenshot;
    # its state lives in the UI origin's localStorage, so set it from a page of that origin.
    browser.get(f"{server}/health")
    browser.execute_script(
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    )
    return MlflowUi(browser, server, screenshots)


def test_experiment_lists_the_run(ui: MlflowUi, run: Run) -> None:
    ui.open(f"experiments/{run.info.experiment_id}/runs")
    link = ui.visible(f"//a[@href='#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}']")
    assert link.text == run.info.run_name
    ui.screenshot("experiment_runs.png", link)


def test_run_page_shows_val_dice(ui: MlflowUi, run: Run) -> None:
    ui.open(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    ui.visible(f"//*[@data-testid='runs-header'][normalize-space()='{run.info.run_name}']")
    row = ui.visible("//*[@role='row'][.//a[normalize-space()='val_dice']]")
    shown = row.find_elements(By.XPATH, "./*[@role='cell']")[1].text
    assert float(shown) == pytest.approx(run.data.metrics["val_dice"], rel=1e-9)
    ui.screenshot("run_overview.png", row)


def test_worst_cases_sheet_loads_in_the_artifacts_view(ui: MlflowUi, run: Run, workspace: Workspace) -> None:
    ui.open(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts/{WORST_CASES}")
    image = ui.visible(f"//img[@alt='{WORST_CASES}']")
    # The UI fetches the file from /get-artifact, then shows it from a blob: URL: wait until it has decoded.
    size = ui.wait(lambda driver: driver.execute_script(NATURAL_SIZE, image), f"decoded {WORST_CASES}")
    with Image.open(workspace.root / "stages" / WORST_CASES) as sheet:
        assert tuple(size) == sheet.size
    ui.screenshot("run_artifact_worst_cases.png", image)
