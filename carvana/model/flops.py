"""Training cost in floating-point operations: a yardstick for recipes that does not depend on the machine (the same
training takes 14 minutes on one 2-core CPU kind and 25 on another)."""

from typing import Any

import torch
from torch.utils import flop_counter

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
    grouped = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with flop_counter.FlopCounterMode(display=False, custom_mapping=grouped) as counter:
        model(*inputs).sum().backward()
    return float(counter.get_total_flops())


def conv_backward_flops(*args: Any, out_shape: Any, **kwargs: Any) -> int:
    """PyTorch's count of a convolution's backward pass, with a grouped convolution's weight gradient counted per
    group: FlopCounterMode counts it as if the convolution were dense (PyTorch 2.13: a depthwise 3x3 convolution of 64
    channels: its weight gradient 64x, its backward pass 65x its forward instead of 2x)."""
    count = flop_counter.conv_backward_flop.__wrapped__  # the formula on shapes, without its shape wrapper
    groups, (input_grad, weight_grad, bias_grad) = args[9], args[10]
    to_input = count(*args[:10], [input_grad, False, bias_grad], out_shape=out_shape, **kwargs)
    to_weight = count(*args[:10], [False, weight_grad, False], out_shape=out_shape, **kwargs)
    return to_input + to_weight // groups
