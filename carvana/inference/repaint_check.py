"""The repaint check: the val photos' cars repainted through their true masks (carvana.data.repaint), each paint
scored as evaluate scores the photos themselves: at full resolution, with the model's inference settings."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from carvana.core.params import InferenceParams
from carvana.data.imageio import read_image
from carvana.data.layout import image_path
from carvana.data.repaint import paint_colour, repaint
from carvana.data.resize import resize_photo
from carvana.inference.refine import refinement
from carvana.inference.scoring import FullResScores
from carvana.inference.segmenter import Segmenter


def repainted_dice(
    segmenter: Segmenter,
    root: Path,
    ids: Sequence[str],
    paints: Sequence[str],
    settings: InferenceParams,
    batch_size: int,
) -> dict[str, float]:
    """Mean full-resolution dice of root's photos `ids` in each of `paints`."""
    refined = refinement(settings, segmenter.edge_refiner)
    scores = {paint: FullResScores(root, settings.threshold, refined) for paint in paints}
    for start in range(0, len(ids), batch_size):  # a batch at a time: memory stays flat
        batch = ids[start : start + batch_size]
        photos = [read_image(image_path(root, image_id)) for image_id in batch]
        truths = [scores[paints[0]].truth(image_id) for image_id in batch]
        for paint, score in scores.items():
            painted = [repaint(photo, truth, paint_colour(paint)) for photo, truth in zip(photos, truths)]
            small = np.stack([resize_photo(photo, segmenter.size) for photo in painted])
            for probability, photo, truth in zip(segmenter.probabilities(small), painted, truths):
                score.score(probability, truth, lambda photo=photo: photo)
    return {paint: score.means()["dice"] for paint, score in scores.items()}
