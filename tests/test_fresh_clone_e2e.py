"""A fresh clone just works: `git clone` then `dvc repro` and `dvc exp run -S`, with no make, on the repository as
committed (its params at the tests' tiny sizes); and a team's dataset in data/<name> (data/<name>.dvc) reruns the
pipeline when a photo changes."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, write_pair
from PIL import Image
from pipeline_workspace import TINY_PARAMS, Checkout, Workspace

from carvana.preset import merged

pytestmark = pytest.mark.e2e


def test_git_clone_then_dvc_repro_and_exp_run(tmp_path: Path) -> None:
    clone = Checkout(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone.root)], check=True)
    tiny(clone.root / "params.yaml")  # the clone as committed, with the tests' tiny sizes: minutes, not seconds
    repro = clone.run("dvc", "repro").stdout
    assert "evaluate: dice" in repro and "render_masks: 16 overlays" in repro
    assert clone.run("dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    clone.run("dvc", "exp", "run", "-n", "faster", "-S", "train.lr=3e-3")
    shown = clone.run("dvc", "exp", "show", "--csv").stdout
    assert "faster" in shown and "0.003" in shown


def tiny(params_file: Path) -> None:
    params = merged(yaml.safe_load(params_file.read_text()), TINY_PARAMS)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def test_changing_a_photo_of_the_teams_dataset_reruns_the_pipeline(tmp_path: Path) -> None:
    ws = Workspace(
        tmp_path / "ws",
        extra={"download": {"source": "data/team"}, "train": {"batch_size": 2, "model": {"features": [4, 8]}}},
    )
    cars = ("0aaaaaaaaaaa", "0bbbbbbbbbbb", "0ccccccccccc", "0ddddddddddd")
    for car in cars:
        for view in (1, 2):
            write_pair(ws.root / "data" / "team", f"{car}_{view:02d}")
    ws.run("dvc", "add", "-q", "data/team")
    first = ws.run("dvc", "repro")
    assert "download: 8 images of 4 cars from data/team" in first.stdout
    assert ws.run("dvc", "repro").stdout.count("Running stage") == 0

    photo = ws.root / "data" / "team" / "train" / f"{cars[0]}_01.jpg"
    brighter = np.asarray(Image.open(photo)).astype(np.int16) + 40
    Image.fromarray(brighter.clip(0, 255).astype(np.uint8)).save(photo, quality=95)
    ws.run("dvc", "add", "-q", "data/team")
    rerun = ws.run("dvc", "repro").stdout
    for stage in ("download", "prepare", "train", "evaluate", "render_masks"):
        assert f"Running stage '{stage}'" in rerun
