"""scripts/gpu_check.py, the GPU code paths' check, run on the CPU as `--device cpu --quick`: the same training steps
(both number formats, torch.compile on and off: once) and the inference engine, plain and as the recommended recipe
runs it, small."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.mark.e2e
def test_gpu_check_passes_on_the_cpu() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("train ") and line.endswith(": ok") for line in lines) == 3, result.stdout
    assert any(line.startswith("train fp32 compile=True ") for line in lines), result.stdout
    assert any(line.startswith("predict plain: 4 masks") and line.endswith(": ok") for line in lines), result.stdout
    assert any(line.startswith("predict recipe: 4 masks") and line.endswith(": ok") for line in lines), result.stdout
    assert lines[-1] == "gpu_check: all passed"


def test_gpu_check_refuses_cuda_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: --device cuda but CUDA is not available here; give --device cpu for a smoke run"
    ]
