"""`--backend auto` on a CPU: of the runtimes installed (torch; onnxruntime and OpenVINO with their extras), the
one that runs this checkpoint fastest on this machine, among those whose probabilities stay within the parity gate
of torch's (max |Δp| ≤ 1e-4, as the ONNX and OpenVINO exports are tested).

Measured once per checkpoint, machine and runtime versions: the checkpoint is exported (ONNX, and OpenVINO IR
converted from it) into a cache folder, each runtime times a batch at the model's size, and the choice is kept in
the folder's choice.json beside the exports. Later runs load the chosen runtime's file from there at once. The
cache lives in $CARVANA_CACHE_DIR, else $XDG_CACHE_HOME/carvana, else ~/.cache/carvana; deleting it is safe.
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

from carvana.core.atomic import atomic_dir, write_json
from carvana.core.lock import file_lock
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.onnx_export import export_onnx
from carvana.inference.openvino_backend import OpenVinoSegmenter, convert
from carvana.inference.segmenter import Segmenter, TorchSegmenter
from carvana.model.device import cpu_model

GATE = 1e-4  # the most a runtime's probability may differ from torch's
TIMED_SECONDS = 1.0  # per runtime, after a warm-up batch
CHOICE = "choice.json"
RUNTIMES = {"onnxruntime": ("onnxruntime", "onnxscript"), "openvino": ("openvino", "onnxruntime", "onnxscript")}


def fastest(checkpoint: Path, batch_size: int) -> Segmenter:
    """The checkpoint on the fastest runtime here, measured now or read from the cache."""
    folder = cache_root() / cache_key(checkpoint, batch_size)
    # predict's actors on one node start together: one measures, the others wait for its choice
    with file_lock(folder.with_name(f"{folder.name}.lock")):
        if not (folder / CHOICE).is_file():
            measure(checkpoint, batch_size, folder)
    choice = json.loads((folder / CHOICE).read_text())
    rates = ", ".join(f"{name} {rate:.0f}" for name, rate in sorted(choice["rates"].items(), key=lambda kv: -kv[1]))
    print(f"predict: --backend auto runs {choice['backend']}, the fastest here (images/s: {rates}; {folder})")
    return segmenter(choice["backend"], checkpoint, folder, batch_size)


def measure(checkpoint: Path, batch_size: int, folder: Path) -> None:
    """Export the checkpoint for each installed runtime into `folder` and write the choice, whole or not at all."""
    with atomic_dir(folder) as scratch:
        torch_side = TorchSegmenter(checkpoint, "cpu", batch_size)
        images = np.random.default_rng(0).integers(0, 256, (batch_size, *torch_side.size, 3), dtype=np.uint8)
        reference = torch_side.probabilities(images)
        candidates = {"torch": torch_side}
        installed = [name for name, modules in RUNTIMES.items() if all(map(importlib.util.find_spec, modules))]
        if installed:
            export_onnx(checkpoint, scratch / "model.onnx")
        if "openvino" in installed:
            convert(scratch / "model.onnx", scratch / "openvino")
        for name in installed:
            candidates[name] = segmenter(name, checkpoint, scratch, batch_size)
        rates, outside = {}, {}
        for name, candidate in candidates.items():
            gap = float(np.abs(candidate.probabilities(images) - reference).max())  # also the warm-up
            if gap > GATE:
                outside[name] = gap
                continue
            rates[name] = throughput(candidate, images)
        choice = {"backend": max(rates, key=rates.__getitem__), "rates": rates, "outside_gate": outside}
        write_json(scratch / CHOICE, choice | {"cpu": cpu_model(), "checkpoint": str(checkpoint)})


def segmenter(backend: str, checkpoint: Path, folder: Path, batch_size: int) -> Segmenter:
    if backend == "onnxruntime":
        return OnnxSegmenter(folder / "model.onnx", batch_size)
    if backend == "openvino":
        return OpenVinoSegmenter(folder / "openvino", batch_size)
    return TorchSegmenter(checkpoint, "cpu", batch_size)


def throughput(candidate: Segmenter, images: np.ndarray) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < TIMED_SECONDS:
        candidate.probabilities(images)
        count += len(images)
    return count / (time.perf_counter() - start)


def cache_key(checkpoint: Path, batch_size: int) -> str:
    """Everything that decides the exports and the timings: the checkpoint's bytes, the batch, the CPU and its
    cores, and the runtimes' versions."""
    digest = hashlib.sha256(checkpoint.read_bytes())
    versions = [version_of(package) for package in ("torch", "onnxruntime", "onnxscript", "openvino")]
    digest.update(json.dumps([batch_size, cpu_model(), os.cpu_count(), versions]).encode())
    return digest.hexdigest()[:16]


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_root() -> Path:
    given = os.environ.get("CARVANA_CACHE_DIR")
    if given:
        return Path(given).expanduser() / "backends"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "carvana" / "backends"
