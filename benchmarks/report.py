"""The machine a run measured and its results as a markdown table."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Comparison, Spread
from carvana.model.device import cpu_kind

COLUMNS = ("benchmark", "ours", "baseline", "ratio", "target")
LEGEND = (
    "ratio = ours / baseline: the median over alternating rounds, the lowest and highest round in brackets. "
    "Speed rows: higher is better (training end to end over model-only: 1.0 = the input pipeline fully hidden); "
    "a backend vs torch: above 1, that backend is faster; sharing: S3 over directory round-trip rate (what "
    "going through the S3 protocol costs, here without a network); peak memory: lower is better, and ≈ 1 for a "
    "longer run means flat memory."
)


@dataclass(frozen=True)
class Row:
    benchmark: str
    ours: str  # a quantity with its unit
    baseline: str
    ratio: Spread
    target: str

    @classmethod
    def of(cls, benchmark: str, comparison: Comparison, unit: str, target: str) -> "Row":
        """A row from timed rounds: the median rates, and the median ratio with its lowest and highest round."""
        ours, baseline = (quantity(side.median, unit) for side in (comparison.ours, comparison.baseline))
        return cls(benchmark, ours, baseline, comparison.ratio, target)

    @classmethod
    def of_memory(cls, benchmark: str, ours: int, baseline: int, target: str) -> "Row":
        """A row from two peak memories in bytes, each measured once."""
        return cls(benchmark, megabytes(ours), megabytes(baseline), Spread.of([ours / baseline]), target)


def spread(value: Spread) -> str:
    """`0.967 (0.951–0.982)`: the median and its range over the rounds; one figure when measured once."""
    if value.low == value.high:
        return significant(value.median)
    return f"{significant(value.median)} ({significant(value.low)}–{significant(value.high)})"


def significant(value: float) -> str:
    """Three significant digits, never in exponent notation: 1234, 12.3, 0.812."""
    digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:.{digits}f}"


def quantity(value: float, unit: str) -> str:
    return f"{significant(value)} {unit}"


def megabytes(size: int) -> str:
    return quantity(size / 2**20, "MiB")


def cpu_flags() -> str:
    """The instruction sets that decide the CPU's speed here, as /proc/cpuinfo names them."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return " ".join(flag for flag in flags if flag.startswith(("avx", "amx", "fma"))) or "none of avx/amx"


def machine(torch_version: str, torch_threads: int) -> str:
    load = os.getloadavg()[0]
    busy = " (busy: other processes compete for the cores, the rates are unreliable)" if load >= 1 else ""
    return (
        f"Machine: {cpu_kind()}, {os.cpu_count()} cores (flags: {cpu_flags()}), "
        f"load average {load:.2f} at start{busy}; "
        f"torch {torch_version} on the CPU, intra-op threads: {torch_threads}."
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
        *(f"| {r.benchmark} | {r.ours} | {r.baseline} | {spread(r.ratio)} | {r.target} |" for r in rows),
    ]
    return "\n".join(lines)
