"""A trained model as a segmenter: photos at the model's resolution in, car probabilities out; and probabilities
upsampled to any size (Kaggle scored masks at the photo's original resolution: upsample first, threshold after)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch import nn

from carvana.core.params import InferenceParams
from carvana.data.resize import resize_photo
from carvana.inference.learned_edges import KEY, LearnedRefiner, torch_refiner
from carvana.inference.settings import recorded
from carvana.model.checkpoint import build_model, build_refiner, load_checkpoint


class Segmenter(Protocol):
    size: tuple[int, int]  # (height, width) the model takes
    settings: InferenceParams  # how the model was scored (carvana.inference.settings)
    edge_refiner: LearnedRefiner | None  # the learned boundary refiner evaluate put with the model, if any

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 photos at self.size -> (N, H, W) float32 car probabilities."""
        ...


class PhotoProbabilities(nn.Module):
    """A U-Net on photos as decoded: (N, H, W, 3) uint8 RGB -> (N, H, W) float32 car probabilities.
    What TorchSegmenter runs and what the ONNX export holds, so both backends do the very same arithmetic."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.unet(images.permute(0, 3, 1, 2).float() / 255))[:, 0]


class TorchSegmenter:
    """A checkpoint run with PyTorch (`checkpoint`: its contents, when the caller has already read them)."""

    def __init__(
        self,
        checkpoint_path: Path,
        device: torch.device | str = "cpu",
        batch_size: int = 16,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint(checkpoint_path, device)
        self.device = torch.device(device)
        self.model = PhotoProbabilities(build_model(checkpoint, checkpoint_path, self.device))
        self.size: tuple[int, int] = tuple(checkpoint["image_size"])
        self.settings = recorded(checkpoint)
        self.edge_refiner = (
            torch_refiner(build_refiner(checkpoint[KEY], checkpoint_path), self.device) if KEY in checkpoint else None
        )
        self.batch_size = batch_size

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return in_batches(self.run, images, self.batch_size)

    @torch.no_grad()
    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(batch).to(self.device)).cpu().numpy()


def in_batches(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int) -> np.ndarray:
    """run() on `batch_size` images at a time (contiguous and writable, as torch.from_numpy wants them: prepared
    arrays are read-only memory maps), its results concatenated."""
    starts = range(0, len(images), batch_size)
    return np.concatenate([run(np.require(images[start : start + batch_size], requirements="CW")) for start in starts])


class FlipAveraged:
    """Test-time augmentation: the mean of the probabilities of each photo and of its mirror image."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter
        self.size, self.settings, self.edge_refiner = segmenter.size, segmenter.settings, segmenter.edge_refiner

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        mirrored = self.segmenter.probabilities(images[:, :, ::-1])[:, :, ::-1]
        return (self.segmenter.probabilities(images) + mirrored) / 2


def with_tta(segmenter: Segmenter, tta: bool) -> Segmenter:
    """`segmenter` averaged with its mirror image when `tta` (inference.tta) says so."""
    return FlipAveraged(segmenter) if tta else segmenter


def upsample(probabilities: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 probabilities -> (height, width), bilinear with half-pixel centres (as torch's
    interpolate with align_corners=False; OpenCV does it several times faster)."""
    height, width = size
    return cv2.resize(probabilities, (width, height), interpolation=cv2.INTER_LINEAR)


class Ensemble:
    """The mean probability of several models. Photos arrive at the largest model's size; each other model gets
    them resized to its own, and its probabilities are upsampled back before averaging."""

    def __init__(self, segmenters: list[Segmenter]) -> None:
        self.segmenters = segmenters
        self.size = max((segmenter.size for segmenter in segmenters), key=lambda size: size[0] * size[1])
        self.settings, self.edge_refiner = segmenters[0].settings, segmenters[0].edge_refiner

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        total = np.zeros((len(images), *self.size), dtype=np.float32)
        for segmenter in self.segmenters:
            if segmenter.size == self.size:
                total += segmenter.probabilities(images)
                continue
            smaller = np.stack([resize_photo(image, segmenter.size) for image in images])
            total += np.stack([upsample(p, self.size) for p in segmenter.probabilities(smaller)])
        return total / len(self.segmenters)
