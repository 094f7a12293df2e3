"""The machine a run measured and its results as a markdown table."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("benchmark", "ours", "baseline", "ratio", "target")
LEGEND = (
    "ratio = ours / baseline. Input pipeline and preparation speed: speed-up (higher is better); training: "
    "end-to-end over model-only rate (1.0 = input pipeline fully hidden); inference: render over bare-decode rate "
    "(the share of the render path spent decoding the JPEG, 1.0 = nothing else costs); sharing: S3 over directory "
    "round-trip rate (what going through the S3 protocol costs, here without a network); peak memory: lower is "
    "better."
)


@dataclass(frozen=True)
class Row:
    benchmark: str
    ours: str  # a quantity with its unit
    baseline: str
    ratio: float
    target: str


def significant(value: float) -> str:
    """Three significant digits, never in exponent notation: 1234, 12.3, 0.812."""
    digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:.{digits}f}"


def quantity(value: float, unit: str) -> str:
    return f"{significant(value)} {unit}"


def megabytes(size: int) -> str:
    return quantity(size / 2**20, "MiB")


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def machine(torch_version: str, torch_threads: int) -> str:
    load = os.getloadavg()[0]
    busy = " (busy: other processes compete for the cores, the rates are unreliable)" if load >= 1 else ""
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, load average {load:.2f} at start{busy}; "
        f"torch {torch_version} on the CPU, intra-op threads: {torch_threads}."
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
        *(f"| {r.benchmark} | {r.ours} | {r.baseline} | {significant(r.ratio)} | {r.target} |" for r in rows),
    ]
    return "\n".join(lines)
