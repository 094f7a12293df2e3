"""A refused param stops the pipeline before DVC removes any output: check_params runs first and checks every key.

Before it, `dvc exp run -S train.epochs=-1` printed the right error from the train stage, after DVC had already
removed stages/train/ (its metrics and plots, not in DVC's cache, could not be checked out again).
"""

from pathlib import Path

import pytest
from pipeline_workspace import Workspace

pytestmark = pytest.mark.e2e


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "stages").rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.epochs=-1", "error: params: `train.epochs` is -1; it must be greater than or equal to 1"),
        ("train.lr=.nan", "error: params: `train.lr` is '.nan'; it must be a valid number"),
    ],
)
def test_a_refused_param_leaves_every_output_as_it_was(tiny_pipeline: Workspace, setting: str, message: str) -> None:
    before, lock = snapshot(tiny_pipeline.root), (tiny_pipeline.root / "dvc.lock").read_bytes()
    try:
        result = tiny_pipeline.run("dvc", "exp", "run", "-S", setting, check=False)
    finally:
        tiny_pipeline.run("git", "checkout", "params.yaml")  # DVC leaves the refused value in params.yaml
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(tiny_pipeline.root) == before
    assert (tiny_pipeline.root / "dvc.lock").read_bytes() == lock
