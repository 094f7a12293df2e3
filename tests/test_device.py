"""The number format training runs in: what the hardware computes natively, under any oneDNN instruction-set cap."""

import pytest
import torch

from carvana.core.errors import CarvanaError
from carvana.model import device
from carvana.model.device import Precision

CPU = torch.device("cpu")


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU with AVX-512 BF16 (an AMD Zen 4, say) and no AMX, whatever this machine is."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


@pytest.mark.parametrize(
    ("variable", "cap", "chosen"),
    [
        (None, None, "bf16"),
        ("ONEDNN_MAX_CPU_ISA", "AVX2", "fp32"),
        ("ONEDNN_MAX_CPU_ISA", "avx512_core", "fp32"),
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", "bf16"),
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX", "bf16"),
        ("DNNL_MAX_CPU_ISA", "AVX2", "fp32"),  # oneDNN's older name for the variable
        ("ONEDNN_MAX_CPU_ISA", "NOT_AN_ISA", "bf16"),  # ignored, as oneDNN ignores it
    ],
)
def test_auto_trains_in_bf16_only_where_onednn_may_use_the_bf16_instructions(
    bf16_cpu: None, monkeypatch: pytest.MonkeyPatch, variable: str | None, cap: str | None, chosen: str
) -> None:
    if variable:
        monkeypatch.setenv(variable, cap)
    assert Precision.choose(CPU, "auto").name == chosen
    known = cap is not None and cap.upper() in device.ONEDNN_ISA
    assert device.cpu_kind().endswith(f"(AVX-512 BF16; capped at {cap.upper()})" if known else "(AVX-512 BF16)")


def test_a_cpu_without_bf16_instructions_trains_in_fp32_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert Precision.choose(CPU, "auto").dtype is None
    assert Precision.choose(CPU, "bf16").dtype is torch.bfloat16  # emulated: slow, but the arithmetic of bf16 CPUs
    assert Precision.choose(CPU, "fp32").dtype is None


def test_fp16_is_refused_on_the_cpu() -> None:
    with pytest.raises(CarvanaError, match="`train.precision` is fp16, which needs CUDA"):
        Precision.choose(CPU, "fp16")


@pytest.mark.parametrize(
    ("amx", "bf16", "caps"),
    [(True, True, ["AVX2", "AVX512_CORE_BF16"]), (False, True, ["AVX2"])],
)
def test_the_caps_that_make_this_cpu_an_older_kind(
    monkeypatch: pytest.MonkeyPatch, amx: bool, bf16: bool, caps: list[str]
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    assert device.caps_below(["AVX2", "AVX512_CORE_BF16"]) == caps
