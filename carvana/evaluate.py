"""Stage evaluate: score the best checkpoint on the val cars, at the training resolution and at the photos' original
resolution (probabilities upsampled, then thresholded: how Kaggle scored), with the `inference` settings.

Then the repaint check: the val photos' cars repainted through their true masks in `evaluate.repaint`'s paints,
scored the same way. Writes stages/evaluate/{metrics.json, per_image.tsv, masks.csv.gz (the val masks, Kaggle's
img,rle_mask), model.pt (the checkpoint with the settings it was scored with)}. Into the model's MLflow run it
logs the scores and the model (registered as a new version of carvana-unet, the champion if it scores best). A final
fit (no val cars) has nothing to score: its model is registered, never made champion by itself.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch

from carvana.core.atomic import write_json, write_text
from carvana.core.errors import run_main
from carvana.core.outputs import (
    Prepared,
    checkpoint_path,
    load_prepared,
    read_run_id,
    refiner_path,
    scored_model_path,
    stage_dir,
)
from carvana.core.params import InferenceParams, Params, flatten, load_params
from carvana.inference import rle
from carvana.inference.learned_edges import KEY as REFINER
from carvana.inference.refine import refinement
from carvana.inference.repaint_check import repainted_dice
from carvana.inference.scoring import FullResScores, spread
from carvana.inference.segmenter import Segmenter, TorchSegmenter, with_tta
from carvana.inference.settings import KEY
from carvana.inference.writers import Submission
from carvana.model.allocator import keep_freed_memory
from carvana.model.checkpoint import load_checkpoint, load_refiner, save_checkpoint
from carvana.model.device import resolve_device
from carvana.model.metrics import ScoreAccumulator
from carvana.tracking import registry
from carvana.tracking.runs import continue_run

MASKS = "masks.csv.gz"
PER_IMAGE = "id\tdice\tdice_full\tiou_full"  # per_image.tsv's header


def main() -> None:
    keep_freed_memory()
    params = load_params()
    run_id = read_run_id()
    val = load_prepared("val")
    out = stage_dir("evaluate")
    settings = params.inference
    model = scored_model(settings)  # before anything is written: an unusable best.pt or refiner.pt changes no output
    segmenter = load_segmenter(model, params)
    scored = score(segmenter, val, params) if val.ids else None
    if scored is None:
        write_unscored(out)
    save_checkpoint(scored_model_path(), model)
    with continue_run(run_id, "evaluate") as run:
        mlflow.set_tags(flatten(settings, "inference."))
        if scored is not None:
            scored.log()
        mlflow.log_artifact(str(out / "per_image.tsv"), artifact_path="evaluate")
        mlflow.log_artifact(str(scored_model_path()), artifact_path="evaluate")
        registry.log_model(scored_model_path(), (val if val.ids else load_prepared("train")).images[0])
        if scored is None:
            print(
                f"evaluate: no val photos (a final fit): the model is registered as {registry.MODEL_NAME}, not made "
                f"{registry.CHAMPION} (it has no score to compare); docs/workflow.md says how to make it champion"
            )
        elif registry.promote_if_best(run.info.run_id, scored.metrics["dice_full"]):
            print(f"evaluate: this model is now {registry.MODEL_NAME}@{registry.CHAMPION}")


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, float]
    worst_image: str
    paints: dict[str, Any]  # the repaint check's, when it ran

    def log(self) -> None:
        """Into the active MLflow run, as eval_* metrics."""
        mlflow.set_tag("eval_worst_image", self.worst_image)
        mlflow.log_metrics({f"eval_{k}": v for k, v in self.metrics.items() if k != "images"})
        if self.paints:
            mlflow.set_tag("eval_worst_paint", self.paints["worst_paint"])
            mlflow.log_metrics(
                {f"eval_repaint_{paint}_dice_full": dice for paint, dice in self.paints["repaint_dice_full"].items()}
                | {"eval_worst_paint_dice_full": self.paints["worst_paint_dice_full"]}
            )


def scored_model(settings: InferenceParams) -> dict[str, Any]:
    """The model as it is used: the best checkpoint, the learned boundary refiner and the settings they are scored
    with."""
    return load_checkpoint(checkpoint_path("best.pt")) | {
        REFINER: load_refiner(refiner_path()),
        KEY: settings.model_dump(),
    }


def load_segmenter(model: dict[str, Any], params: Params) -> Segmenter:
    """The scored model (best.pt with the refiner), run as `inference` says (mirror TTA or not)."""
    segmenter = TorchSegmenter(checkpoint_path("best.pt"), resolve_device("auto"), params.evaluate.batch_size, model)
    return with_tta(segmenter, params.inference.tta)


def score(segmenter: Segmenter, val: Prepared, params: Params) -> Scores:
    """The val photos scored at the training resolution and at full resolution, then the repaint check; their
    masks, scores and metrics written to stages/evaluate/."""
    settings, batch_size = params.inference, params.evaluate.batch_size
    out = stage_dir("evaluate")
    refined = refinement(settings, segmenter.edge_refiner)
    low_res, full_res = ScoreAccumulator(), FullResScores(stage_dir("download"), settings.threshold, refined)
    masks = Submission(out / MASKS)
    try:
        for start in range(0, len(val.ids), batch_size):  # a batch at a time: memory stays flat
            rows = slice(start, start + batch_size)
            probabilities = segmenter.probabilities(val.images[rows])
            truth = torch.from_numpy(val.masks[rows].astype(bool))
            low_res.add(torch.from_numpy(probabilities > settings.threshold), truth)
            for image_id, mask in zip(val.ids[rows], full_res.add_probabilities(val.ids[rows], probabilities)):
                masks.add_row(image_id, rle.encode(mask))
    except BaseException:
        masks.abort()
        raise
    masks.close()

    metrics = {**low_res.means(), **{f"{k}_full": v for k, v in full_res.means().items()}, "images": len(val.ids)}
    worst = int(full_res.per_image()["dice"].argmin())
    metrics["worst_dice_full"] = float(full_res.per_image()["dice"][worst])
    print(
        "evaluate: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "images")
        + f" on {len(val.ids)} val images"
    )
    paints = repaint_check(segmenter, val.ids, params)
    write_json(out / "metrics.json", metrics | paints)
    write_text(out / "per_image.tsv", per_image_table(val.ids, low_res, full_res))
    return Scores(metrics, val.ids[worst], paints)


def write_unscored(out: Path) -> None:
    """A final fit's outputs: no val photo, so no masks or scores (the files DVC expects, empty)."""
    Submission(out / MASKS).close()
    write_json(out / "metrics.json", {"images": 0})
    write_text(out / "per_image.tsv", PER_IMAGE + "\n")


def repaint_check(segmenter: Segmenter, ids: list[str], params: Params) -> dict[str, Any]:
    """The val cars repainted in `evaluate.repaint`'s paints, scored like the photos themselves: per paint, and the
    worst paint (a model that learned the training cars' paints, not cars, fails here)."""
    paints = params.evaluate.repaint
    if not paints:
        return {}
    root, settings = stage_dir("download"), params.inference
    picked = [ids[i] for i in spread(params.evaluate.repaint_photos, len(ids))]
    dice = repainted_dice(segmenter, root, picked, paints, settings, params.evaluate.batch_size)
    worst = min(dice, key=dice.__getitem__)
    scores = ", ".join(f"{paint} {value:.4f}" for paint, value in dice.items())
    print(f"evaluate: {len(picked)} val photos repainted, dice_full {scores}")
    return {"repaint_dice_full": dice, "worst_paint": worst, "worst_paint_dice_full": dice[worst]}


def per_image_table(ids: list[str], low_res: ScoreAccumulator, full_res: ScoreAccumulator) -> str:
    low, full = low_res.per_image(), full_res.per_image()
    lines = [PER_IMAGE]
    lines += [f"{i}\t{d:.6f}\t{df:.6f}\t{jf:.6f}" for i, d, df, jf in zip(ids, low["dice"], full["dice"], full["iou"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
