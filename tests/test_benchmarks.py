"""Smoke test of the benchmark suite: a quick run prints every benchmark's row with finite positive numbers.

Speeds are never asserted: they depend on the machine.
"""

import math
import os
import subprocess
import sys

import pytest
from conftest import REPO

from carvana.sources.synthetic import generate

ROWS = (
    "preparation: prepare_split on",
    "preparation: peak memory",
    "input pipeline:",
    "training: end to end vs model-only (default ",
    "training: end to end vs model-only (seed ",
    "training: 2 torchrun processes vs 1",
    "inference: predict --masks vs a milesial-style loop",
    "inference: the cpu edges recipe as served (TTA True, learned edges) vs the cpu recipe (TTA True, refine 8; ",
    "render_masks: the engine vs a photo-by-photo path",
    "inference: peak memory of predict",
    "inference: predict --ray vs predict",
    "inference: onnxruntime vs torch (predict --masks at 192x128, default ",
    "inference: OpenVINO fp32 vs torch (predict --masks at 192x128, default ",
    "inference: OpenVINO INT8 vs torch (predict --masks at 192x128, default ",
    "inference: onnxruntime vs torch (predict --masks at 192x128, cpu ",
    "inference: OpenVINO fp32 vs torch (predict --masks at 192x128, cpu ",
    "inference: OpenVINO INT8 vs torch (predict --masks at 192x128, cpu ",
    "inference: the cpu recipe as served (TTA True, refine 8) on OpenVINO INT8 vs torch (192x128 photos, cpu ",
    "sharing: dvc push + dvc pull",
    "prepare: peak memory",
    "train: peak memory",
    "train_refiner: peak memory",
    "evaluate: peak memory",
    "render_masks: peak memory",
)


@pytest.mark.e2e
def test_quick_run_prints_a_row_per_benchmark(tmp_path):
    data = tmp_path / "data"
    generate(data, cars=1, width=192, height=128, seed=0, workers=1)
    out = tmp_path / "benchmarks.md"
    # one torch thread: two stall each other when other jobs hold the cores, and speed is not what is tested
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--data", str(data), "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == result.stdout

    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| benchmark | ours | baseline | ratio | target |"
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]
    assert [sum(row[0].startswith(name) for row in rows) for name in ROWS] == [1] * len(ROWS)
    assert len(rows) == len(ROWS)
    for row in rows:
        for cell in row[1:4]:  # ours and baseline with their units, the ratio bare
            value = float(cell.split()[0])
            assert math.isfinite(value) and value > 0, row
