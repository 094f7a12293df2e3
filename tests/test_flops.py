"""Training cost in FLOPs (carvana/model/flops.py), against a count made by hand from the network's layers."""

import torch
from torch import nn

from carvana.model.flops import training_flops_per_image
from carvana.model.unet import UNet

CONFIG = {"in_channels": 3, "out_channels": 1, "features": [4, 8, 16]}


def forward_flops_by_hand(config: dict, size: tuple[int, int]) -> float:
    """2 x the multiply-adds of every convolution and transposed convolution (bias adds, element-wise, are not
    counted), from their shapes as a real forward pass on the CPU sees them."""
    total = 0.0

    def count(layer: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, nn.ConvTranspose2d):  # every input pixel spreads over a kernel of outputs
            total += 2 * inputs[0].shape[2] * inputs[0].shape[3] * layer.in_channels * layer.out_channels * kernel
        else:
            channels = layer.in_channels * layer.out_channels // layer.groups  # depthwise: one input channel each
            total += 2 * output.shape[2] * output.shape[3] * channels * kernel

    model = UNet(**config)
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            layer.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 3, *size))
    return total


def test_a_training_step_costs_three_forward_passes_less_the_input_gradient() -> None:
    forward = forward_flops_by_hand(CONFIG, (32, 48))
    first_layer = 2 * 32 * 48 * 3 * 4 * 9  # the photo needs no gradient: its share of the backward pass is skipped
    assert training_flops_per_image(CONFIG, (32, 48)) == 3 * forward - first_layer


def test_a_separable_network_costs_three_forward_passes_less_the_input_gradient_too() -> None:
    # FlopCounterMode alone counts a grouped convolution's weight gradient as dense: `groups` times too much
    separable = CONFIG | {"block": "separable"}
    forward = forward_flops_by_hand(separable, (32, 48))
    first_layer = 2 * 32 * 48 * 3 * 4 * 9  # the first convolution stays dense
    assert training_flops_per_image(separable, (32, 48)) == 3 * forward - first_layer
    cpu = {"features": [16, 32, 64, 128]}
    assert (
        training_flops_per_image(separable | cpu, (256, 384)) < training_flops_per_image(CONFIG | cpu, (256, 384)) / 5
    )


def test_the_cost_grows_with_the_pixels() -> None:
    assert training_flops_per_image(CONFIG, (64, 96)) == 4 * training_flops_per_image(CONFIG, (32, 48))


def test_a_space_to_depth_stem_costs_about_the_network_at_its_folded_size() -> None:
    cpu = CONFIG | {"features": [16, 32, 64, 128]}  # the cpu preset's widths: 27.2 GFLOP a step at 256x384
    folded = training_flops_per_image(cpu | {"space_to_depth": 2}, (512, 768))
    plain = training_flops_per_image(cpu, (256, 384))
    assert plain < folded < 1.03 * plain  # only the first and last convolutions see more channels
