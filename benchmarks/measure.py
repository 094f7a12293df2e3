"""Timing and memory helpers: the throughput of two workloads measured in alternating rounds (median and spread of
their ratio), and the peak memory of a subprocess with its children."""

import contextlib
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

Work = Callable[[], float]  # does a fixed amount of work and returns how much (items, MiB, ...)


@dataclass(frozen=True)
class Spread:
    """A quantity measured over several rounds: the median, and the lowest and highest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Comparison:
    ours: Spread  # items per second
    baseline: Spread
    ratio: Spread  # ours / baseline, round by round

    @classmethod
    def of_rounds(cls, ours: Sequence[float], baseline: Sequence[float]) -> "Comparison":
        return cls(Spread.of(ours), Spread.of(baseline), Spread.of([a / b for a, b in zip(ours, baseline)]))


def compare(ours: Work, baseline: Work, repeats: int, min_seconds: float) -> Comparison:
    """Items per second of both works over `repeats` rounds, and their ratio round by round.

    The works take turns within a round, so a machine that gets busier mid-run slows both alike. A round calls its
    work again until it has run for min_seconds, so that run-to-run noise stays well inside a target's margin.
    """
    rates: list[list[float]] = [[], []]
    for _ in range(repeats):
        for side, work in enumerate((ours, baseline)):
            items, elapsed, start = 0, 0.0, time.perf_counter()
            while elapsed < min_seconds:
                items += work()
                elapsed = time.perf_counter() - start
            rates[side].append(items / elapsed)
    return Comparison.of_rounds(*rates)


POLL_SECONDS = 0.02  # memory sampling period; listing a process tree costs a few ms of CPU


def peak_memory(argv: list[str], cwd: Path, env: dict[str, str] | None = None, poll: float = POLL_SECONDS) -> int:
    """Peak memory in bytes of a fresh subprocess and its children: their PSS summed, sampled every `poll` s.

    PSS (proportional set size) splits pages shared between processes (forked workers, libraries) among
    them, so the sum over a process tree counts every page once, unlike RSS. A subprocess whose memory peaks
    at its very end should stay alive a couple of periods longer to be sampled there.
    """
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_pss(process.pid))
        time.sleep(poll)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return peak


def tree_pss(pid: int) -> int:
    """Summed PSS of a process and its descendants now; processes that exit meanwhile count as nothing."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    return total
