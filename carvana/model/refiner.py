"""The learned boundary refiner: a small CNN that sees the photo at its full resolution, in tiles along the coarse
mask's edge, beside the coarse probability upsampled to it, and corrects that probability.

It predicts a correction to the coarse logit (its last layer starts at zero, so an untrained refiner is the plain
upsampled mask), from a few dilated 3x3 convolutions: each output pixel sees MARGIN photo pixels around it, enough to
move an edge that the coarse network, working at 1/5 of the photo's size, placed a few photo pixels off.
"""

import torch
from torch import nn

DILATIONS = (1, 2, 4, 1)
MARGIN = sum(DILATIONS)  # photo pixels each output sees on every side (the receptive field's radius)
CLAMP = 1e-4  # probabilities kept this far from 0 and 1, so their logits stay finite


class EdgeRefiner(nn.Module):
    """(N, h, w, 3) uint8 photo tiles and (N, h, w) float32 coarse probabilities -> (N, h, w) refined logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 4  # RGB and the coarse probability
        for dilation in DILATIONS:
            layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, photos: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        coarse = probabilities.clamp(CLAMP, 1 - CLAMP)
        photos = photos.permute(0, 3, 1, 2).float() / 127.5 - 1  # centred: no normalisation layer does it
        features = torch.cat([photos, coarse[:, None] * 2 - 1], dim=1)
        return torch.logit(coarse) + self.head(self.body(features))[:, 0]


def refiner_config(width: int) -> dict[str, int]:
    return {"width": width}
