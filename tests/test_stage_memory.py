"""Flat memory: evaluate's peak does not grow with the number of val photos.

Evaluate once kept ~18 MB per full-resolution val photo (per-image score tensors pinned the C heap between each
photo's temporaries) and was killed by the OOM killer at 1,280 val photos. Here, 32 and then 96 val photos at
Kaggle's 1918x1280 (symbolic links to 16 synthetic ones): that leak would add over 1 GB. Both counts span more than
one evaluate batch (16): the heap settles in the second (a single batch peaked 775-870 MiB on the same machine, two
or more at 890-915 MiB), so a single-batch baseline measures that settling, not a leak.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import untrained_checkpoint

from benchmarks.measure import peak_memory
from benchmarks.stages import stage_workspace
from carvana.data.layout import image_ids
from carvana.model.checkpoint import save_checkpoint
from carvana.model.refiner import EdgeRefiner
from carvana.sources.synthetic import generate


def evaluate_peak(root: Path, copies: int, work: Path) -> int:
    workspace = stage_workspace(root, image_ids(root), copies, work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    subprocess.run([sys.executable, "-m", "carvana.prepare"], cwd=workspace, env=env, check=True, capture_output=True)
    untrained_checkpoint(workspace / "stages" / "train" / "checkpoints" / "best.pt", size=(32, 48))
    save_checkpoint(
        workspace / "stages/train_refiner/refiner.pt", {"config": {"width": 4}, "model": EdgeRefiner(4).state_dict()}
    )
    run_file = workspace / "stages" / "train" / "mlflow_run.json"
    run_file.write_text('{"run_id": "0123456789abcdef", "experiment_id": "0"}')  # no such run: evaluate opens one
    return peak_memory([sys.executable, "-m", "carvana.evaluate"], workspace, env)


@pytest.mark.e2e
def test_evaluate_peak_memory_does_not_grow_with_the_val_photos(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    generate(root, cars=1, width=1918, height=1280, seed=0)
    few, many = evaluate_peak(root, 8, tmp_path), evaluate_peak(root, 24, tmp_path)
    print(f"evaluate peak memory: {few / 2**20:.0f} MiB over 32 val photos, {many / 2**20:.0f} MiB over 96")
    assert many < few + 150 * 2**20
