"""A throwaway git + DVC copy of this repository with tiny params, for end-to-end tests of the real CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from carvana.preset import merged
from carvana.server.processes import stop_group

REPO = Path(__file__).resolve().parents[1]
COPIED = ["carvana", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvc/config", ".dvcignore", ".gitignore", "data"]

TINY_PARAMS = {
    "download": {"synthetic": {"cars": 4, "width": 240, "height": 160}},
    "split_val": {"val_fraction": 0.25},
    "prepare": {"image_height": 32, "image_width": 48},
    "train": {
        "epochs": 2,
        "batch_size": 8,
        "panels_per_epoch": 2,
        "model": {"features": [4, 8, 16]},
    },
    "train_refiner": {"steps": 6, "batch_size": 4, "tiles_per_photo": 2},
    "inference": {"edge_refiner": True, "one_car": True},  # every mask the tests make goes through both
    "evaluate": {"repaint": ["yellow", "black"]},  # the repaint check, in two paints of the eight
    "render_masks": {"worst_cases": 4, "overlay_width": 120},
}

# A tiny training that learns the cars whatever the seed and the CPU's arithmetic: over seeds 1-5, in fp32 and in
# bf16, its best val dice was 0.92-0.98 (AMD EPYC, AVX2; bf16 forced). The tiny params' 2 epochs call every pixel
# car, and 6 epochs at batch 8 stayed there for one seed of five.
LEARNS_CARS = {"train": {"epochs": 8, "lr": 0.005, "batch_size": 4}}

# Seconds a command may take: several times the slowest end-to-end test's whole run (115 s, a 2-core AMD EPYC). A hung
# command is stopped with its children, and its output so far goes into the failure (pytest-timeout's stack dump
# would show only the test's side).
COMMAND_TIMEOUT = 600


def output_so_far(process: subprocess.Popen) -> str:
    """What a stopped command wrote. A process it started outside its group (a daemon) may still hold its pipes."""
    try:
        return "\n".join(process.communicate(timeout=10))
    except subprocess.TimeoutExpired:
        return "(its output is held open by a process it started outside its group)"


class Checkout:
    """A git + DVC repository at root. Commands run in it with the tests' environment (nothing of the developer's
    own DVC, MLflow or AWS settings), and every one run() finishes is kept in `commands`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "AWS_"))}
        self.env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            NO_ALBUMENTATIONS_UPDATE="1",
            MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.2",  # tiny runs end within MLflow's default 10 s
            GIT_AUTHOR_NAME="carvana tests",
            GIT_AUTHOR_EMAIL="tests@carvana.invalid",
            GIT_COMMITTER_NAME="carvana tests",
            GIT_COMMITTER_EMAIL="tests@carvana.invalid",
        )
        self.commands: list[subprocess.CompletedProcess] = []

    def start(self, *args: str) -> subprocess.Popen:
        """Start a command in its own process group (so the test can signal it and all its children)."""
        return subprocess.Popen(
            args,
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        process = self.start(*args)
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop_group(process)
            output = output_so_far(process)
            raise AssertionError(f"{' '.join(args)} still ran after {COMMAND_TIMEOUT} s:\n{output}") from None
        except BaseException:  # the test is interrupted (Ctrl-C, pytest-timeout): nothing of the command outlives it
            stop_group(process)
            raise
        result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
        self.commands.append(result)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def json(self, relative: str) -> Any:
        return json.loads((self.root / relative).read_text())

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlruns' / 'mlflow.db'}"


class Workspace(Checkout):
    """A copy of this repository's pipeline with tiny params, committed in a new git repository."""

    def __init__(
        self, root: Path, overrides: dict[str, Any] = TINY_PARAMS, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(root)
        for name in COPIED:
            source, target = REPO / name, root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        params = merged(merged(yaml.safe_load((root / "params.yaml").read_text()), overrides), extra or {})
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        self.run("git", "init", "-q", "-b", "main")
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", "tiny pipeline")
