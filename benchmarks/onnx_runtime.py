"""Inference at the model's resolution: onnxruntime against PyTorch, the same U-Net on the same photos.

Both backends do what `carvana.predict` has them do per batch: uint8 photos in, float32 car probabilities out, in
batches of 16 (predict's default --batch-size), on the CPU; decoding, upsampling and writing are the same for both
and left out. The ONNX model is the one `python -m carvana.export` writes, from the same checkpoint. Each uses its
default threads: torch's intra-op threads (the header), and onnxruntime one per physical core.
"""

from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.measure import compare
from benchmarks.recipes import Recipe
from benchmarks.report import Row
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.segmenter import Segmenter, TorchSegmenter

BATCH = 16


def measure(recipe: Recipe, images: np.ndarray, checkpoint: Path, repeats: int, min_seconds: float) -> Row:
    backends = [OnnxSegmenter.for_model(checkpoint, BATCH), TorchSegmenter(checkpoint, batch_size=BATCH)]
    photos = np.array(images)  # in memory, not memory-mapped

    def probabilities(segmenter: Segmenter) -> int:
        segmenter.probabilities(photos)
        return len(photos)

    for segmenter in backends:
        probabilities(segmenter)  # warm-up
    return Row.of(
        f"inference: onnxruntime vs torch ({recipe.network}, batch {BATCH})",
        compare(*(partial(probabilities, s) for s in backends), repeats, min_seconds),
        "img/s",
        "≥ 1",
    )
