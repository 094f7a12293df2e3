"""A trained model as a segmenter: photos at the model's resolution in, probabilities out, upsampled to
any size (Kaggle scored masks at the photo's original resolution)."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from carvana.model.checkpoint import build_model, load_checkpoint


class Segmenter:
    def __init__(self, checkpoint_path: Path, device: torch.device | str = "cpu") -> None:
        checkpoint = load_checkpoint(checkpoint_path, device)
        self.device = torch.device(device)
        self.model = build_model(checkpoint, checkpoint_path, self.device)
        self.size: tuple[int, int] = tuple(checkpoint["image_size"])

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch_size: int = 16) -> torch.Tensor:
        """(N, H, W, 3) uint8 photos at self.size -> (N, H, W) float32 car probabilities, on the CPU."""
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(self.device)
            batch = batch.permute(0, 3, 1, 2).float().div_(255)
            chunks.append(torch.sigmoid(self.model(batch))[:, 0].float().cpu())
        return torch.cat(chunks)


def upsample(probabilities: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) probabilities -> (height, width), bilinear: upsample first, threshold after."""
    return F.interpolate(probabilities[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
