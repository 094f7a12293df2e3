"""Every bad-input case is caught before a stage succeeds, named, and leaves no partial output."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, write_pair
from PIL import Image

from carvana.core.errors import CarvanaError
from carvana.data.imageio import mask_image
from carvana.sources.check import check_dataset


def run_stage(module: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DVC_ROOT"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", module], cwd=cwd, env=env, capture_output=True, text=True)


def test_valid_dataset_returns_sorted_ids(dataset):
    ids = check_dataset(dataset, "test")
    assert ids == sorted(ids) and len(ids) == 6


def break_image_without_mask(root: Path) -> str:
    write_pair(root, "0ddddddddddd_01")
    (root / "train_masks/0ddddddddddd_01_mask.gif").unlink()
    return "train/0ddddddddddd_01.jpg has no mask"


def break_mask_without_image(root: Path) -> str:
    (root / "train/0aaaaaaaaaaa_01.jpg").unlink()
    return "train_masks/0aaaaaaaaaaa_01_mask.gif has no image"


def break_size_mismatch(root: Path) -> str:
    mask_image(np.zeros((10, 10), dtype=np.uint8)).save(root / "train_masks/0aaaaaaaaaaa_02_mask.gif")
    return "train_masks/0aaaaaaaaaaa_02_mask.gif is 10x10 but its image is 64x48"


def break_non_binary_mask(root: Path) -> str:
    Image.fromarray(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)).save(
        root / "train_masks/0bbbbbbbbbbb_01_mask.gif"
    )
    return "0bbbbbbbbbbb_01_mask.gif: mask is not binary"


def break_corrupt_jpeg(root: Path) -> str:
    path = root / "train/0ccccccccccc_02.jpg"
    path.write_bytes(path.read_bytes()[:200])
    return "0ccccccccccc_02.jpg: cannot decode image"


def break_bad_name(root: Path) -> str:
    write_pair(root, "no-view-number")
    return "train/no-view-number.jpg is not named <car>_<NN>"


@pytest.mark.parametrize(
    "breaker",
    [
        break_image_without_mask,
        break_mask_without_image,
        break_size_mismatch,
        break_non_binary_mask,
        break_corrupt_jpeg,
        break_bad_name,
    ],
)
def test_each_bad_input_is_named(dataset, breaker):
    expected = breaker(dataset)
    with pytest.raises(CarvanaError, match="problem") as error:
        check_dataset(dataset, "download.source=test")
    assert expected in str(error.value)
    assert str(dataset) not in str(error.value)  # paths relative to the dataset root


def test_many_problems_are_counted_not_all_listed(dataset):
    for path in (dataset / "train_masks").glob("*.gif"):
        path.unlink()
    with pytest.raises(CarvanaError, match=r"6 problem\(s\).*\(and 1 more\)"):
        check_dataset(dataset, "test")


def test_empty_source_is_refused(tmp_path):
    with pytest.raises(CarvanaError, match="no train/\\*.jpg"):
        check_dataset(tmp_path, "test")


def test_download_stage_fails_cleanly_and_leaves_nothing(dataset, tmp_path):
    """The real stage entry point: exit code 2, one error line, no stages/download written."""
    break_size_mismatch(dataset)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["source"] = str(dataset)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    (workspace / "dvc.yaml").write_text("stages: {}\n")
    result = run_stage("carvana.download", workspace)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "is 10x10 but its image is 64x48" in result.stderr
    assert not (workspace / "stages" / "download").exists()
    assert list((workspace / "stages").iterdir()) == []  # no temp folder left behind either


def test_bad_param_stops_a_stage_with_one_line(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    result = run_stage("carvana.train", tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: params: `train.lr` is -1; it must be greater than 0 (Adam's learning rate)\n"
