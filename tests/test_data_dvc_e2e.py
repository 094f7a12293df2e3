"""data/: the team's own dataset, tracked by data.dvc. `make data` re-creates the committed template on a fresh
clone; `download.source: data` reads it, and `dvc add data` after a change reruns the pipeline on a plain repro."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_pair
from PIL import Image
from pipeline_workspace import Workspace

pytestmark = pytest.mark.e2e

BIN = str(Path(sys.executable).parent)


def make_data(clone: Path) -> subprocess.CompletedProcess:
    """`make data` with this test run's virtualenv instead of the clone's own (-o: take it as installed)."""
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "data", f"BIN={BIN}"], cwd=clone, capture_output=True, text=True
    )


def test_a_fresh_clone_gets_the_template_and_a_teams_clone_is_told_to_pull(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert not (clone / "data").exists()
    committed = (clone / "data.dvc").read_text()
    assert make_data(clone).returncode == 0
    assert (clone / "data" / ".keep").exists() and (clone / "data.dvc").read_text() == committed

    subprocess.run(["rm", "-rf", str(clone / "data")], check=True)
    (clone / "data.dvc").write_text(committed.replace("ba4f0654f84e902d6dbe66a199c2781b", "0" * 32))
    result = make_data(clone)
    assert result.returncode == 2
    assert result.stderr.startswith("error: data/ is tracked by data.dvc but not checked out here: run 'dvc pull")


def test_changing_a_photo_in_data_reruns_the_pipeline(tmp_path: Path) -> None:
    ws = Workspace(
        tmp_path / "ws",
        extra={"download": {"source": "data"}, "train": {"batch_size": 2, "model": {"features": [4, 8]}}},
    )
    cars = ("0aaaaaaaaaaa", "0bbbbbbbbbbb", "0ccccccccccc", "0ddddddddddd")
    for car in cars:
        for view in (1, 2):
            write_pair(ws.root / "data", f"{car}_{view:02d}")
    ws.run("dvc", "add", "-q", "data")
    first = ws.run("dvc", "repro")
    assert "download: 8 images of 4 cars from data" in first.stdout
    assert ws.run("dvc", "repro").stdout.count("Running stage") == 0

    photo = ws.root / "data" / "train" / f"{cars[0]}_01.jpg"
    brighter = np.asarray(Image.open(photo)).astype(np.int16) + 40
    Image.fromarray(brighter.clip(0, 255).astype(np.uint8)).save(photo, quality=95)
    ws.run("dvc", "add", "-q", "data")
    rerun = ws.run("dvc", "repro").stdout
    for stage in ("download", "prepare", "train", "evaluate", "render_masks"):
        assert f"Running stage '{stage}'" in rerun
