"""Kaggle's run-length encoding of a mask: `start length start length ...`, 1-indexed starts over the mask
flattened row by row (the convention of the Carvana competition's kernels and of its 1st-place `generate_sub`)."""

import numpy as np


def encode(mask: np.ndarray) -> str:
    """(H, W) {0, 1} mask -> 'start length ...' ('' for an empty mask)."""
    flat = np.concatenate([[0], mask.ravel().astype(bool).view(np.uint8), [0]])
    runs = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs.tolist()))


def decode(rle: str, size: tuple[int, int]) -> np.ndarray:
    """'start length ...' -> (H, W) uint8 {0, 1} mask of size (H, W)."""
    height, width = size
    numbers = np.array(rle.split(), dtype=np.int64)
    flat = np.zeros(height * width, dtype=np.uint8)
    for start, length in zip(numbers[0::2] - 1, numbers[1::2]):
        flat[start : start + length] = 1
    return flat.reshape(height, width)
