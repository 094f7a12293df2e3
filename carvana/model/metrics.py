"""Per-image segmentation scores: dice (Kaggle's metric), IoU and pixel accuracy.

An image whose truth and prediction are both empty scores 1 (Kaggle's convention): nothing to find, and
nothing was found.
"""

import torch


def per_image_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """pred, truth: (N, ...) boolean masks. Returns dice, iou and accuracy, each of shape (N,)."""
    pred = pred.flatten(1).bool()
    truth = truth.flatten(1).bool()
    intersection = (pred & truth).sum(1).double()
    pred_area = pred.sum(1).double()
    truth_area = truth.sum(1).double()
    union = pred_area + truth_area - intersection
    both_empty = (pred_area + truth_area) == 0
    dice = torch.where(both_empty, 1.0, 2 * intersection / (pred_area + truth_area).clamp(min=1))
    iou = torch.where(both_empty, 1.0, intersection / union.clamp(min=1))
    accuracy = (pred == truth).sum(1).double() / pred.shape[1]
    return {"dice": dice, "iou": iou, "accuracy": accuracy}


class ScoreAccumulator:
    """Collects per-image scores over batches; `means()` gives the mean of each.

    Scores are kept as Python floats, never as tensors: a small tensor kept per image, allocated between the
    image's full-resolution temporaries, pins the C heap so that those are never given back; scoring thousands
    of photos grew by ~18 MB a photo that way.
    """

    def __init__(self) -> None:
        self.scores: dict[str, list[float]] = {}

    def add(self, pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = per_image_scores(pred, truth)
        for name, values in scores.items():
            self.scores.setdefault(name, []).extend(values.tolist())
        return scores

    def per_image(self) -> dict[str, torch.Tensor]:
        return {name: torch.tensor(values, dtype=torch.float64) for name, values in self.scores.items()}

    def means(self) -> dict[str, float]:
        return {name: float(values.mean()) for name, values in self.per_image().items()}
