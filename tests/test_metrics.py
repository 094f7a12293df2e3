import pytest
import torch

from carvana.model.losses import bce_dice_loss, bce_loss, edge_band, loss_function, soft_dice_loss
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


def square_mask() -> torch.Tensor:
    target = torch.zeros(1, 1, 12, 12)
    target[..., 3:9, 3:9] = 1
    return target


def test_edge_band_is_the_pixels_within_two_of_the_edge():
    band = edge_band(square_mask())[0, 0]
    assert band[5, 1] == 1 and band[5, 0] == 0  # outside: 2 and 3 pixels from the square
    assert band[5, 4] == 1 and band[5, 5] == 0  # inside: the 2nd and 3rd pixel
    assert band.sum() == 12 * 12 - 2 * 2 - (12 * 12 - 10 * 10)  # all but the 2x2 core and the 1-pixel rim


def test_boundary_weight_counts_errors_on_the_edge_more():
    target = square_mask()
    right = (target * 2 - 1) * 5
    wrong_edge, wrong_far = right.clone(), right.clone()
    wrong_edge[..., 3, 3:9] *= -1  # the square's top row: on the edge
    wrong_far[..., 0, 0:6] *= -1  # as many pixels in the far corner
    assert bce_loss(wrong_edge, target) == pytest.approx(bce_loss(wrong_far, target).item())
    assert bce_loss(wrong_edge, target, 3.0) > 2 * bce_loss(wrong_far, target, 3.0)
    assert loss_function("bce_dice", 1.0)(right, target) == bce_dice_loss(right, target)
    assert loss_function("bce", 3.0)(right, target) == bce_loss(right, target, 3.0)
