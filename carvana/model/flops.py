"""Training cost in floating-point operations: a yardstick for recipes that does not depend on the machine (the same
training takes 14 minutes on one 2-core CPU kind and 25 on another)."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from carvana.model.refiner import EdgeRefiner
from carvana.model.unet import UNet


def training_flops_per_image(config: dict, size: tuple[int, int]) -> float:
    """The floating-point operations of one training step on one image of `size` (forward and backward), as PyTorch's
    FlopCounterMode counts them: convolutions and matrix products, 2 per multiply-add (element-wise work, a few
    percent, is not counted). Counted on the meta device: nothing is computed or allocated."""
    return step_flops(UNet(**config), torch.empty(1, 3, *size, device="meta"))


def refiner_flops_per_tile(config: dict, size: int) -> float:
    """The same for the boundary refiner on one tile of `size` x `size` photo pixels."""
    return step_flops(
        EdgeRefiner(**config), torch.empty(1, size, size, 3, device="meta"), torch.empty(1, size, size, device="meta")
    )


def step_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> float:
    model = model.to("meta")
    with FlopCounterMode(display=False) as counter:
        model(*inputs).sum().backward()
    return float(counter.get_total_flops())
