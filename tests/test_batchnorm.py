"""BatchNorm under autocast keeps the batch's running statistics (carvana.model.unet.BatchNorm2d normalises fp32
values on the CPU). The failure it guards against was seen only in whole trainings on a CPU with native bf16: one
epoch in bf16 scored val dice 0.32 against 0.985 in fp32 (0.950 with this BatchNorm; scripts/precision_check.py);
this single layer kept right statistics there even as plain nn.BatchNorm2d."""

import pytest
import torch
from torch import nn

from carvana.model.unet import BatchNorm2d


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_running_statistics_are_the_batchs_under_autocast(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 16, 3, bias=False), BatchNorm2d(16)
    images = torch.randn(16, 3, 48, 64) * 3 + 1
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        features = conv(images)
        out = norm(features)
    values = features.float()
    assert torch.allclose(norm.running_mean, 0.1 * values.mean((0, 2, 3)), rtol=0.02, atol=1e-3)
    assert torch.allclose(norm.running_var, 0.9 + 0.1 * values.var((0, 2, 3)), rtol=0.02, atol=1e-3)
    assert out.float().mean().abs() < 0.05 and (out.float().std() - 1).abs() < 0.05  # normalised
