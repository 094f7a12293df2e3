"""Two processes compute the gradient one process computes on the same batch: what DDP training must guarantee.

On one fixed batch, in fp32, the gradients and BatchNorm running statistics every process holds after the train
stage's step (`loop.compute_gradients`, through `distributed.global_batchnorm` and `distributed.wrap`, each process
taking its share from the train loader) match the one-process ones to float rounding. Measured: 5e-6 of a tensor's
largest value (summation order); a step without the gradient average, or with BatchNorm per process, is off by
more than 100 % (the second test shows the check sees both).
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.numerics, pytest.mark.e2e]  # torchrun launches: seconds each

HELPER = Path(__file__).with_name("ddp_gradients.py")
REPO = HELPER.parents[1]


def gradients(out: Path, processes: int, broken: str | None = None) -> list[dict[str, torch.Tensor]]:
    # --standalone: a free port for the rendezvous, not torchrun's fixed 29500, which another test may hold
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else []
    command = [sys.executable, *launcher, str(HELPER), str(out), *(["--break", broken] if broken else [])]
    env = {"OMP_NUM_THREADS": "1", "PATH": ""}
    subprocess.run(command, check=True, cwd=REPO, capture_output=True, env=env, timeout=300)
    return [torch.load(out / f"rank{rank}.pt") for rank in range(processes)]


def largest_difference(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """The largest |difference| of any tensor's values, relative to that tensor's largest reference value."""
    return max(float((grads[name] - ref).abs().max() / ref.abs().max()) for name, ref in reference.items())


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    return gradients(tmp_path_factory.mktemp("one"), 1)[0]


def test_two_processes_compute_the_one_process_gradient(tmp_path: Path, one_process: dict) -> None:
    for rank, grads in enumerate(gradients(tmp_path, 2)):
        assert largest_difference(grads, one_process) < 1e-4, f"rank {rank}"


@pytest.mark.parametrize("broken", ["averaging", "batchnorm"])
def test_the_check_sees_a_broken_step(tmp_path: Path, one_process: dict, broken: str) -> None:
    assert largest_difference(gradients(tmp_path, 2, broken)[0], one_process) > 0.5
