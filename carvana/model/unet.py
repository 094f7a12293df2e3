"""The U-Net of the original tutorial, with its width configurable.

With features (64, 128, 256, 512), 3 input and 1 output channel it is the tutorial's network exactly
(31,037,633 parameters), and its module names match, so the tutorial's state dicts load.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # the served model ships this module: it needs no params machinery at run time
    from carvana.core.params import ModelParams


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d that normalises fp32 values on the CPU. Trained under bf16 autocast on a CPU with native bf16
    (oneDNN's AMX and AVX-512 BF16 kernels) with PyTorch's batch norm on bf16 input, a model at the train loss of
    fp32 training scored val dice 0.32 after one epoch, in either number format, against 0.985 trained in fp32;
    with this class, 0.950 (scripts/precision_check.py on an Intel Xeon with AMX). Same parameters and buffers as
    nn.BatchNorm2d: checkpoints do not change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float() if x.device.type == "cpu" else x)


def conv3x3(in_channels: int, out_channels: int, separable: bool) -> list[nn.Module]:
    """A bias-free 3x3 convolution, or its depthwise-separable form: a 3x3 convolution per channel, then a 1x1 across
    channels (Xception's, no activation between): 1/9 of the multiply-adds and fewer as the widths grow."""
    if not separable:
        return [nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)]
    depthwise = nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False)
    return [depthwise, nn.Conv2d(in_channels, out_channels, 1, bias=False)]


class DoubleConv(nn.Module):
    """Two 3x3 convolutions (bias-free, padding 1), each followed by BatchNorm and ReLU; either may be separable."""

    def __init__(self, in_channels: int, out_channels: int, separable: tuple[bool, bool] = (False, False)) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *conv3x3(in_channels, out_channels, separable[0]),
            BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            *conv3x3(out_channels, out_channels, separable[1]),
            BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """With `space_to_depth` N > 1, a cheap stem and head: each NxN block of pixels is folded into N*N channels before
    the first level, and the last layer's N*N channels per pixel unfolded into the block after it. The network runs
    at 1/N of the image's resolution (about the FLOPs of a plain U-Net there) and still sees and predicts every pixel:
    more resolution per FLOP. Height and width must be multiples of N.

    With `block` "separable", every 3x3 convolution but the first (on the photo's few channels) is depthwise-separable:
    about a sixth of the FLOPs at the same widths, to spend on wider levels or larger inputs."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (64, 128, 256, 512),
        space_to_depth: int = 1,
        block: str = "conv",
    ) -> None:
        super().__init__()
        self.fold = nn.PixelUnshuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        self.unfold = nn.PixelShuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        in_channels, out_channels = in_channels * space_to_depth**2, out_channels * space_to_depth**2
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        separable = block == "separable"
        for level, feature in enumerate(features):  # the very first convolution, on the photo, stays dense
            self.downs.append(DoubleConv(in_channels, feature, (separable and level > 0, separable)))
            in_channels = feature
        below = features[-1] * 2  # the width coming up: the bottleneck's, then each level's (any widths, not only x2)
        for feature in reversed(features):
            self.ups.append(nn.ConvTranspose2d(below, feature, kernel_size=2, stride=2))
            self.ups.append(DoubleConv(feature * 2, feature, (separable, separable)))
            below = feature
        self.bottleneck = DoubleConv(features[-1], features[-1] * 2, (separable, separable))
        self.final_conv = nn.Conv2d(features[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fold(x)
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, double_conv, skip in zip(self.ups[::2], self.ups[1::2], reversed(skips)):
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: pooling floored, so match the skip
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = double_conv(torch.cat((skip, x), dim=1))
        return self.unfold(self.final_conv(x))


def unet_config(model: "ModelParams") -> dict[str, Any]:
    """UNet's arguments for photos in, one mask channel out, as `train.model` says; what checkpoints record."""
    features, space_to_depth = list(model.features), model.space_to_depth
    return {
        "in_channels": 3,
        "out_channels": 1,
        "features": features,
        "space_to_depth": space_to_depth,
        "block": model.block,
    }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
