"""carvana predict --ray: Ray Data gives the same bytes as single-process predict, names a bad photo in one line, and
finishes every output whole when an actor is killed mid-run."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, untrained_checkpoint

from carvana.predict import main
from carvana.sources.synthetic import generate

pytest.importorskip("ray.data")

OUTPUTS = ["--masks", "masks", "--cutouts", "cutouts", "--submission", "submission.csv"]
SETTINGS = ["--tta", "--refine", "4", "--batch-size", "2"]  # small batches: many chunks, each cut like predict's


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic cars (48 photos at 960x640) and a broken photo, a model, and single-process predict's outputs
    in `single/`."""
    root = tmp_path_factory.mktemp("cluster")
    generate(root / "cars", cars=3, width=960, height=640, seed=4, workers=1)
    (root / "cars" / "train" / "broken.jpg").write_bytes(b"not a jpeg")
    untrained_checkpoint(root / "model.pt", size=(32, 48))  # its probabilities hover at 0.5: every pixel a close call
    (root / "single").mkdir()
    os.chdir(root / "single")
    try:
        main(
            [str(root / "cars" / "train"), "--model", str(root / "model.pt"), *OUTPUTS, *SETTINGS, "--on-error", "skip"]
        )
    finally:
        os.chdir(REPO)
    return root


def predict_on_ray(workspace: Path, folder: str, log: Path, *extra: str) -> subprocess.Popen:
    """predict --ray with relative paths, as a user types it (the actors start where predict was started), its
    output in `log` (a pipe nobody reads while the test waits could fill and stall it)."""
    (workspace / folder).mkdir()
    photos = os.path.relpath(workspace / "cars" / "train", workspace / folder)
    model = os.path.relpath(workspace / "model.pt", workspace / folder)
    command = [sys.executable, "-m", "carvana.predict", photos, "--model", model, *OUTPUTS, *SETTINGS, "--ray", *extra]
    with log.open("w") as output:
        return subprocess.Popen(command, cwd=workspace / folder, stdout=output, stderr=subprocess.STDOUT)


def same_files(left: Path, right: Path) -> None:
    names = sorted(path.relative_to(left) for path in left.rglob("*") if path.is_file())
    assert names == sorted(path.relative_to(right) for path in right.rglob("*") if path.is_file())  # no leftovers
    assert len(names) == 48 * 2 + 1
    for name in names:
        assert (left / name).read_bytes() == (right / name).read_bytes(), name


@pytest.mark.e2e
def test_ray_writes_single_process_predicts_bytes_even_when_an_actor_is_killed(workspace: Path):
    """One run does it all, as each Ray start costs seconds: the outputs, the skipped photo, the killed actor."""
    log, masks = workspace / "ray.log", workspace / "ray" / "masks"
    run = predict_on_ray(workspace, "ray", log, "--on-error", "skip")
    try:
        actor = wait_for(lambda: next((p for p in descendants(run) if "SegmentChunk" in command_of(p)), None))
        wait_for(lambda: masks.is_dir() and any(masks.glob("*_mask.gif")))
        ray = descendants(run)
        actor.send_signal(signal.SIGKILL)
        written_before = len(list(masks.glob("*_mask.gif")))
        run.wait(timeout=300)
    finally:
        stop(run)
    output = log.read_text()
    assert run.returncode == 0, output
    assert 0 < written_before < 48  # the rest came from the actor Ray started again
    assert "skipped: ../cars/train/broken.jpg: " in output and "predict: 48 photos in" in output
    same_files(workspace / "single", workspace / "ray")
    wait_for(lambda: not any(map(alive, ray)), timeout=60)  # the Ray it started for the run goes with it


@pytest.mark.e2e
def test_ray_stops_at_a_bad_photo_in_one_line_leaving_no_submission(workspace: Path, tmp_path: Path):
    submission = tmp_path / "submission.csv"
    command = [sys.executable, "-m", "carvana.predict", str(workspace / "cars" / "train")]
    command += ["--model", str(workspace / "model.pt"), "--submission", str(submission), "--ray"]
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 2
    assert stopped.stderr.strip().splitlines()[-1].startswith(f"error: {workspace / 'cars' / 'train' / 'broken.jpg'}: ")
    assert list(tmp_path.iterdir()) == []  # no submission, no temporary file


def descendants(run: subprocess.Popen) -> list[psutil.Process]:
    """The run's processes: a Ray started by predict is its children, whatever else runs on the machine."""
    try:
        return psutil.Process(run.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def command_of(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(run: subprocess.Popen) -> None:
    """Kill what is left of a run that failed midway, Ray and all."""
    for process in [*descendants(run), psutil.Process(run.pid)] if run.poll() is None else descendants(run):
        with contextlib.suppress(psutil.Error):
            process.kill()


def wait_for(found, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")
