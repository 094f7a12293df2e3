import pytest
import torch

from carvana.model.losses import bce_dice_loss, soft_dice_loss
from carvana.model.metrics import ScoreAccumulator, per_image_scores


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_scores_match_hand_computed_values():
    pred = masks([[1, 1, 0, 0]])
    truth = masks([[1, 0, 1, 0]])
    scores = per_image_scores(pred, truth)
    assert scores["dice"].item() == pytest.approx(2 * 1 / (2 + 2))
    assert scores["iou"].item() == pytest.approx(1 / 3)
    assert scores["accuracy"].item() == pytest.approx(2 / 4)


def test_empty_masks():
    empty = masks([[0, 0, 0, 0]])
    full = masks([[1, 1, 1, 1]])
    assert per_image_scores(empty, empty)["dice"].item() == 1.0
    assert per_image_scores(empty, empty)["iou"].item() == 1.0
    assert per_image_scores(empty, full)["dice"].item() == 0.0
    assert per_image_scores(full, empty)["iou"].item() == 0.0


def test_mean_is_per_image_not_per_pixel():
    # one perfect small image and one fully wrong image: per-image mean 0.5, pooled pixels would differ
    acc = ScoreAccumulator()
    acc.add(masks([[1, 0, 0, 0]]), masks([[1, 0, 0, 0]]))
    acc.add(masks([[0, 0, 0, 0]]), masks([[1, 1, 1, 1]]))
    assert acc.means()["dice"] == pytest.approx(0.5)
    assert acc.per_image()["dice"].tolist() == [1.0, 0.0]


def test_soft_dice_loss_is_low_for_confident_right_logits():
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    right = (target * 2 - 1) * 20
    assert soft_dice_loss(right, target).item() < 0.01
    assert bce_dice_loss(right, target).item() < 0.01
    assert bce_dice_loss(-right, target).item() > 1.0
