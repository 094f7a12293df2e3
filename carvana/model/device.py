"""Device and numeric precision: CUDA when asked for (or `auto` and present), and mixed precision where the
hardware computes in 16 bits natively.

On CUDA: bf16 where the GPU supports it (no loss scaling needed), else fp16 with a GradScaler. On the CPU: bf16 on
CPUs with AMX or AVX-512 BF16 instructions (Intel Sapphire Rapids and later, AMD Zen 4 and later), where oneDNN
runs a U-Net training step about 2.5 times faster than in fp32; elsewhere fp32, as bf16 there is emulated and
many times slower. A cap on oneDNN's instruction sets (`ONEDNN_MAX_CPU_ISA=AVX2`, as a user sets it to run as an
older CPU would) is honoured: below AVX512_CORE_BF16, bf16 would be emulated, so training runs in fp32.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from carvana.core.errors import CarvanaError

# oneDNN's instruction-set levels (dnnl_cpu_isa_t): each level's bits include those of the levels it extends
ONEDNN_ISA = {
    "SSE41": 0x1,
    "AVX": 0x3,
    "AVX2": 0x7,
    "AVX2_VNNI": 0xF,
    "AVX2_VNNI_2": 0x1F,
    "AVX512_CORE": 0x27,
    "AVX512_CORE_VNNI": 0x67,
    "AVX512_CORE_BF16": 0xE7,
    "AVX10_1_512": 0x1EF,
    "AVX512_CORE_FP16": 0x1EF,
    "AVX10_1_512_AMX": 0xFEF,
    "AVX512_CORE_AMX": 0xFEF,
    "AVX10_1_512_AMX_FP16": 0x1FEF,
    "AVX512_CORE_AMX_FP16": 0x1FEF,
}


def resolve_device(name: str, given_as: str = "params: `train.device`") -> torch.device:
    """`name` is auto, cpu, cuda or cuda:N (its spelling checked already); `given_as` names it in errors, as the
    user wrote it (a param, a flag)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CarvanaError(f"{given_as} is {name!r} but CUDA is not available here; use auto or cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise CarvanaError(
            f"{given_as} is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s); "
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
    def choose(cls, device: torch.device, name: str) -> "Precision":
        """`name` (train.precision): auto (bf16 where the hardware computes it natively, fp16 on older GPUs, else
        fp32), fp32, bf16 (emulated, and slow, on a CPU without native bf16) or fp16 (CUDA only)."""
        if name == "auto":
            if device.type == "cuda":
                name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                name = "bf16" if cpu_has_native_bf16() else "fp32"
        if name == "fp16" and device.type != "cuda":
            raise CarvanaError("params: `train.precision` is fp16, which needs CUDA; use auto, bf16 or fp32 on the CPU")
        return cls(device.type, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name])

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def cpu_has_native_bf16() -> bool:
    hardware = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    cap, bf16 = onednn_isa_cap(), ONEDNN_ISA["AVX512_CORE_BF16"]
    return hardware and (cap is None or ONEDNN_ISA[cap] & bf16 == bf16)


def onednn_isa_cap() -> str | None:
    """The instruction-set cap oneDNN runs under (ONEDNN_MAX_CPU_ISA, or its old name DNNL_MAX_CPU_ISA), when it
    names one; oneDNN ignores values it does not know, and so does this."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    return value if value in ONEDNN_ISA else None


def native_isa() -> str:
    """The highest of oneDNN's levels this CPU runs, as far as training's arithmetic goes."""
    if torch.cpu._is_amx_tile_supported():
        return "AVX512_CORE_AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512_CORE_BF16"
    return {"AVX512": "AVX512_CORE", "AVX2": "AVX2"}.get(torch.backends.cpu.get_cpu_capability(), "SSE41")


def caps_below(levels: list[str]) -> list[str]:
    """Those of `levels` that run this CPU as an older kind would: caps below what it has."""
    native = ONEDNN_ISA[native_isa()]
    return [level for level in levels if ONEDNN_ISA[level] & native == ONEDNN_ISA[level] != native]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def device_name(device: torch.device) -> str:
    """What computes a run's numbers, e.g. `NVIDIA H100 80GB HBM3` or `AMD EPYC 9B14 (AVX-512 BF16)`."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_kind()


def cpu_kind() -> str:
    """The CPU as far as training's numbers go: its model, what it computes natively, and any oneDNN cap, e.g.
    `AMD EPYC 9B14 (AVX-512 BF16)` or `Intel Xeon (AMX; capped at AVX2)`."""
    native = {"AVX512_CORE_AMX": "AMX", "AVX512_CORE_BF16": "AVX-512 BF16", "AVX512_CORE": "AVX-512"}.get(
        native_isa(), native_isa().replace("SSE41", "no AVX2")
    )
    cap = onednn_isa_cap()
    return f"{cpu_model()} ({native}{f'; capped at {cap}' if cap else ''})"
