"""Device and numeric precision: CUDA when asked for (or `auto` and present), and mixed precision where the
hardware computes in 16 bits natively.

On CUDA: bf16 where the GPU supports it (no loss scaling needed), else fp16 with a GradScaler. On the CPU: bf16 on
CPUs with AMX or AVX-512 BF16 instructions (Intel Sapphire Rapids and later, AMD Zen 4 and later), where oneDNN
runs a U-Net training step about 2.5 times faster than in fp32; elsewhere fp32, as bf16 there is emulated and
many times slower.
"""

from dataclasses import dataclass

import torch

from carvana.core.errors import CarvanaError


def resolve_device(name: str) -> torch.device:
    """`name` is auto, cpu, cuda or cuda:N (params.yaml's schema checks the spelling)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CarvanaError(f"params: `train.device` is {name!r} but CUDA is not available here; use auto or cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise CarvanaError(
            f"params: `train.device` is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use cuda:0 .. cuda:N-1 or auto"
        )
    return device


def memory_format(device: torch.device) -> torch.memory_format:
    # channels_last makes cuDNN's tensor-core convolutions faster; on the CPU it brings nothing here.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: full fp32

    @classmethod
    def choose(cls, device: torch.device, amp: bool) -> "Precision":
        if not amp:
            return cls(device.type, None)
        if device.type == "cuda":
            return cls(device.type, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        return cls(device.type, torch.bfloat16 if cpu_has_native_bf16() else None)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def cpu_has_native_bf16() -> bool:
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
