"""Training across processes: `torchrun` + DistributedDataParallel (gloo on the CPU, NCCL on CUDA).

`python -m carvana.train --processes N` with N > 1 replaces itself with
`torchrun --standalone --nproc-per-node N -m carvana.train` (or one node's share of N, across machines: see
`relaunch`); torchrun then starts the copies, each told its rank through the environment. Rank 0 alone tracks,
prints and writes; the others train their share of every batch.
BatchNorm normalises with the statistics of the whole global batch (SyncBatchNorm on CUDA, GlobalBatchNorm2d on
the CPU, where PyTorch has none), so N processes compute the gradient one process computes on the same batch.
"""

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from carvana.core.errors import CarvanaError
from carvana.model.unet import BatchNorm2d

PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ


def relaunch(processes: int, module: str) -> None:
    """Become `torchrun --nproc-per-node <processes per node> -m <module> <this command's arguments>` (the same
    process: signals sent to it reach torchrun, which passes them on): on this machine alone (`--standalone`), or as
    one node of several when torchrun's own multi-node settings are in the environment (PET_NNODES, PET_NODE_RANK,
    PET_MASTER_ADDR, PET_MASTER_PORT: torchrun reads each flag from PET_<FLAG>). Node 0 holds rank 0."""
    nodes = nodes_from_environment()
    if processes % nodes:
        raise CarvanaError(
            f"`train.processes` is {processes}, which {nodes} nodes (PET_NNODES) cannot share evenly; "
            "give every node the same number of processes"
        )
    per_node = processes // nodes
    env = dict(os.environ)
    # torchrun would set 1 thread per process and warn about it; on the CPU the cores are shared out instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // per_node)))
    where = [] if nodes > 1 else ["--standalone"]
    command = ["torch.distributed.run", *where, f"--nproc-per-node={per_node}", "-m", module, *sys.argv[1:]]
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", *command], env)


def nodes_from_environment() -> int:
    value = os.environ.get("PET_NNODES", "1")
    if not value.isdigit() or int(value) < 1:
        raise CarvanaError(f"PET_NNODES is {value!r}; give the number of nodes (an elastic range is not supported)")
    return int(value)


def start(device_type: str) -> Ranks:
    """Join the process group torchrun set up (a no-op for a single process)."""
    if not under_torchrun():
        return Ranks()
    stop_with_launcher()
    ranks = Ranks(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    if device_type == "cuda":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return ranks


def stop_with_launcher() -> None:
    """torchrun starts each process in a session of its own: a launcher killed outright (SIGKILL, a dying DVC)
    cannot stop them, and they would train on, writing outputs nobody waits for. On Linux the kernel sends
    them SIGTERM when the launcher dies instead, which ends them like Ctrl-C (run KILLED, state kept)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the launcher died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over all processes (every process gets it)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)  # a sum: gloo has no average
        value /= dist.get_world_size()
    return value


def from_main(value: Any) -> Any:
    """Rank 0's `value`, on every process."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def global_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """`model` with BatchNorm over the global batch (its weights are the same objects)."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d  # same parameters and buffers: checkpoints stay plain BatchNorm
    return model


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """`model` for a training step on this process's share of a batch: the gradients it leaves on the weights
    (shared with `model`) are the mean over all processes, those of the whole batch."""
    return DistributedDataParallel(model, device_ids=[device.index] if device.index is not None else None)


class SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes, differentiable: the gradient of each process's input is the sum of
    every process's gradient of the output."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(BatchNorm2d):
    """BatchNorm2d whose training statistics span every process's share of the batch (the shares are equal: see
    EpochSampler): per-channel sums all-reduced in the forward pass, their gradients in the backward pass. In
    eval mode, or in a single process, it is BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        values = x.float()
        channels = values.shape[1]
        sums = SumOverProcesses.apply(torch.cat([values.sum((0, 2, 3)), values.square().sum((0, 2, 3))]))
        count = values.numel() // channels * dist.get_world_size()
        mean = sums[:channels] / count
        variance = (sums[channels:] / count - mean.square()).clamp(min=0)
        if self.track_running_stats:
            self.update_running_stats(mean.detach(), variance.detach() * count / max(count - 1, 1))
        scale = self.weight * torch.rsqrt(variance + self.eps)
        shift = self.bias - mean * scale
        return (values * scale[:, None, None] + shift[:, None, None]).to(x.dtype)

    @torch.no_grad()
    def update_running_stats(self, mean: torch.Tensor, unbiased_variance: torch.Tensor) -> None:
        self.num_batches_tracked += 1
        momentum = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(unbiased_variance, momentum)
