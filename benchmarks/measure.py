"""Timing and memory helpers: best-of-N throughput of workloads measured in turns, and the peak memory of a
subprocess with its children."""

import contextlib
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

Work = Callable[[], int]  # does a fixed amount of work and returns how many items it handled


def best_rates(works: Sequence[Work], repeats: int, min_seconds: float) -> list[float]:
    """Items per second of each work, the best of `repeats` rounds.

    The works take turns within a round, so a machine that gets busier mid-run slows every side alike.
    A round calls its work again until it has run for min_seconds, so fast works are not timed on a blip.
    """
    best = [0.0] * len(works)
    for _ in range(repeats):
        for index, work in enumerate(works):
            items, elapsed, start = 0, 0.0, time.perf_counter()
            while elapsed < min_seconds:
                items += work()
                elapsed = time.perf_counter() - start
            best[index] = max(best[index], items / elapsed)
    return best


POLL_SECONDS = 0.02  # memory sampling period; listing a process tree costs a few ms of CPU


def peak_memory(argv: list[str], cwd: Path) -> int:
    """Peak memory in bytes of a fresh subprocess and its children: their PSS summed, sampled every POLL_SECONDS.

    PSS (proportional set size) splits pages shared between processes (forked workers, libraries) among
    them, so the sum over a process tree counts every page once, unlike RSS. A subprocess whose memory peaks
    at its very end should stay alive a couple of periods longer to be sampled there.
    """
    process = subprocess.Popen(argv, cwd=cwd)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_pss(process.pid))
        time.sleep(POLL_SECONDS)
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
