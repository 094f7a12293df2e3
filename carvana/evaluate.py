"""Stage evaluate: score the best checkpoint on the val cars, at the training resolution and at the
photos' original resolution (probabilities upsampled, then thresholded: how Kaggle scored).

Writes stages/evaluate/{metrics.json, per_image.tsv} and logs the scores into the model's MLflow run.
"""

import mlflow
import torch

from carvana.core.atomic import write_json, write_text
from carvana.core.errors import run_main
from carvana.core.outputs import checkpoint_path, load_prepared, read_run_id, stage_dir
from carvana.core.params import flatten, load_params
from carvana.inference.scoring import FullResScores
from carvana.inference.segmenter import FlipAveraged, TorchSegmenter
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import resolve_device
from carvana.model.metrics import ScoreAccumulator
from carvana.tracking import registry
from carvana.tracking.runs import continue_run


def main() -> None:
    keep_freed_memory()
    params = load_params()
    cfg = params.evaluate
    run_id = read_run_id()
    segmenter = TorchSegmenter(checkpoint_path("best.pt"), resolve_device("auto"), cfg.batch_size)
    segmenter = FlipAveraged(segmenter) if cfg.tta else segmenter
    val = load_prepared("val")
    low_res, full_res = ScoreAccumulator(), FullResScores(stage_dir("download"), cfg.threshold, cfg.refine)
    for start in range(0, len(val.ids), cfg.batch_size):  # a batch at a time: memory stays flat
        rows = slice(start, start + cfg.batch_size)
        probabilities = segmenter.probabilities(val.images[rows])
        low_res.add(torch.from_numpy(probabilities > cfg.threshold), torch.from_numpy(val.masks[rows].astype(bool)))
        full_res.add_probabilities(val.ids[rows], probabilities)

    metrics = {**low_res.means(), **{f"{k}_full": v for k, v in full_res.means().items()}, "images": len(val.ids)}
    worst = int(full_res.per_image()["dice"].argmin())
    metrics["worst_dice_full"] = float(full_res.per_image()["dice"][worst])
    out = stage_dir("evaluate")
    write_json(out / "metrics.json", metrics)
    write_text(out / "per_image.tsv", per_image_table(val.ids, low_res, full_res))
    print(
        "evaluate: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "images")
        + f" on {len(val.ids)} val images"
    )

    with continue_run(run_id, "evaluate") as run:
        mlflow.set_tags(flatten(cfg, "evaluate.") | {"eval_worst_image": val.ids[worst]})
        mlflow.log_metrics({f"eval_{k}": v for k, v in metrics.items() if k != "images"})
        mlflow.log_artifact(str(out / "per_image.tsv"), artifact_path="evaluate")
        if registry.promote_if_best(run.info.run_id, metrics["dice_full"]):
            print(f"evaluate: this model is now {registry.MODEL_NAME}@{registry.CHAMPION}")


def per_image_table(ids: list[str], low_res: ScoreAccumulator, full_res: ScoreAccumulator) -> str:
    low, full = low_res.per_image(), full_res.per_image()
    lines = ["id\tdice\tdice_full\tiou_full"]
    lines += [f"{i}\t{d:.6f}\t{df:.6f}\t{jf:.6f}" for i, d, df, jf in zip(ids, low["dice"], full["dice"], full["iou"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
