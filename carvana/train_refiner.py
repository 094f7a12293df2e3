"""Stage train_refiner: fit the learned boundary refiner (carvana/model/refiner.py) on the train cars at their full
resolution, around the edges of the trained network's coarse masks.

Writes stages/train_refiner/{refiner.pt, metrics.json}; into the model's MLflow run it logs the loss curve, the
refiner's error in the band it refines before and after (train cars: evaluate scores it on the val cars) and its
training cost in TFLOPs. evaluate puts the refiner into the model it scores; `inference.edge_refiner` says whether
masks are made with it.
"""

import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import torch
from torch import nn

from carvana.core.atomic import write_json
from carvana.core.errors import run_main
from carvana.core.outputs import checkpoint_path, load_prepared, read_run_id, refiner_path, stage_dir
from carvana.core.params import TrainRefinerParams, flatten, load_params
from carvana.inference.learned_edges import KEY, TileProbabilities
from carvana.inference.segmenter import TorchSegmenter, with_tta
from carvana.model.allocator import keep_freed_memory
from carvana.model.checkpoint import save_checkpoint
from carvana.model.device import resolve_device
from carvana.model.flops import refiner_flops_per_tile
from carvana.model.refiner import EdgeRefiner, refiner_config
from carvana.tracking.runs import continue_run
from carvana.training.refiner_tiles import SIZE, Tiles, sample_tiles

LOG_EVERY = 20  # steps between the logged losses


def main() -> None:
    keep_freed_memory()
    params = load_params()
    cfg = params.train_refiner
    run_id = read_run_id()
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    device = resolve_device(params.train.device)
    coarse = TorchSegmenter(checkpoint_path("best.pt"), device, params.evaluate.batch_size)
    segmenter = with_tta(coarse, params.inference.tta)  # the probabilities it will refine
    train = load_prepared("train")
    started = time.perf_counter()
    config = refiner_config(cfg.width)
    refiner = EdgeRefiner(**config).to(device)
    with tempfile.TemporaryDirectory(prefix="carvana-tiles-") as scratch:
        tiles = sample_tiles(
            segmenter,
            stage_dir("download"),
            train.ids,
            train.images,
            cfg.tiles_per_photo,
            cfg.jitter,
            rng,
            Path(scratch),
        )
        losses = fit(refiner, tiles, cfg, rng, device)
        coarse_error, refined_error = band_errors(refiner, tiles, device)
    metrics = {
        "refiner_band_error_coarse": coarse_error,
        "refiner_band_error": refined_error,
        "refiner_tiles": len(tiles.photos),
        "refiner_tflops": float(f"{refiner_flops_per_tile(config, SIZE) * cfg.steps * cfg.batch_size / 1e12:.4g}"),
        "refiner_minutes": (time.perf_counter() - started) / 60,
    }
    print(
        f"train_refiner: {len(tiles.photos)} tiles of {len(train.ids)} train photos, {cfg.steps} steps; error in "
        f"the band {metrics['refiner_band_error_coarse']:.4f} upsampled -> {metrics['refiner_band_error']:.4f} refined"
    )
    save_checkpoint(refiner_path(), {"config": config, "model": {k: v.cpu() for k, v in refiner.state_dict().items()}})
    write_json(stage_dir("train_refiner") / "metrics.json", metrics)
    with continue_run(run_id, "train_refiner"):
        mlflow.set_tags(flatten(cfg, "train_refiner."))  # tags: a refit of the same network may change them
        for step, loss in losses:
            mlflow.log_metric("refiner_loss", loss, step=step)
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(refiner_path()), artifact_path=KEY)


def fit(
    refiner: EdgeRefiner, tiles: Tiles, cfg: TrainRefinerParams, rng: np.random.Generator, device: torch.device
) -> list[tuple[int, float]]:
    """Adam on random batches of tiles (mirrored half the time), BCE on the band pixels; returns (step, mean loss)
    every LOG_EVERY steps."""
    optimizer = torch.optim.Adam(refiner.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps)
    criterion = nn.BCEWithLogitsLoss(reduction="none")
    refiner.train()
    logged, running = [], torch.zeros((), device=device)
    for step in range(1, cfg.steps + 1):
        picks = np.sort(rng.choice(len(tiles.photos), size=min(cfg.batch_size, len(tiles.photos)), replace=False))
        photos, probabilities, truths, weights = (
            torch.from_numpy(column[picks]).to(device) for column in vars(tiles).values()
        )
        truths, weights = truths.float(), weights.float()  # stored as bytes
        if rng.random() < 0.5:
            photos, probabilities, truths, weights = (t.flip(2) for t in (photos, probabilities, truths, weights))
        loss = (criterion(refiner(photos, probabilities), truths) * weights).sum() / weights.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.detach()
        if step % LOG_EVERY == 0 or step == cfg.steps:
            logged.append((step, float(running) / (step - (logged[-1][0] if logged else 0))))
            running.zero_()
    return logged


@torch.no_grad()
def band_errors(refiner: EdgeRefiner, tiles: Tiles, device: torch.device, batch_size: int = 64) -> tuple[float, float]:
    """The share of the tiles' band pixels on the wrong side of 0.5: upsampled, and refined."""
    model = TileProbabilities(refiner)
    wrong, band = np.zeros(2), 0
    for start in range(0, len(tiles.photos), batch_size):
        rows = slice(start, start + batch_size)
        photos, probabilities = (
            torch.from_numpy(np.asarray(a[rows])).to(device) for a in (tiles.photos, tiles.probabilities)
        )
        inside = tiles.weights[rows] == 1
        truths = tiles.truths[rows][inside] == 1
        for which, guess in enumerate((tiles.probabilities[rows], model(photos, probabilities).cpu().numpy())):
            wrong[which] += np.count_nonzero((guess[inside] > 0.5) != truths)
        band += np.count_nonzero(inside)
    coarse, refined = wrong / max(band, 1)
    return float(coarse), float(refined)


if __name__ == "__main__":
    run_main(main)
