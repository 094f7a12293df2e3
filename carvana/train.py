"""Stage train: fit the U-Net on the train cars, score it on the val cars after every epoch (a final fit, with no
val cars, keeps its last epoch and says in its MLflow run that it has no val score).

Writes stages/train/{checkpoints/{best,last}.pt, metrics.json, plots/*.tsv, mlflow_run.json} and records
params, per-epoch metrics, prediction panels and checkpoints in one MLflow run (evaluate adds the model). With
`train.processes` > 1 it runs under torchrun: every process trains its share of each batch, and process 0 alone
scores, tracks, prints and writes while the others wait.
"""

import argparse
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import torch
from torch.utils.data import DataLoader

from carvana.core.atomic import atomic_dir, write_json
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import checkpoint_path, load_prepared, stage_dir, write_run_file
from carvana.core.params import Params, TrainParams, flatten, load_params
from carvana.data.pictures import panels
from carvana.inference.scoring import FullResScores
from carvana.model.allocator import keep_freed_memory
from carvana.model.device import device_name, memory_format, resolve_device
from carvana.model.flops import training_flops_per_image
from carvana.model.unet import UNet, count_parameters, unet_config
from carvana.tracking.runs import end_abandoned, training_run
from carvana.training import distributed
from carvana.training.augment import eval_transform, train_transform
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch
from carvana.training.loop import Fit, score_val, train_epoch
from carvana.training.resume import Progress, fingerprint, slot

FINAL_FIT = "final_fit"
FINAL_FIT_NOTE = (
    "A final fit: trained on every car (`split_val.val_cars: 0`), so it has no val score; its recipe is judged by "
    "its cross-validation runs (`carvana cv`). The model is its last epoch."
)
THRESHOLD = 0.5  # the model's own decision boundary (logit 0), for the curves; evaluate applies evaluate.threshold
PLOTS = {
    "loss": ("train_loss", "val_loss"),
    "dice": ("val_dice",),
    "dice_full": ("val_dice_full",),
    "iou": ("val_iou",),
    "accuracy": ("val_accuracy",),
}


def main() -> None:
    keep_freed_memory()
    params = load_params()
    processes = launch_processes(params)
    if processes > 1 and not distributed.under_torchrun():
        distributed.relaunch(processes, "carvana.train")
    device = resolve_device(params.train.device)
    ranks = distributed.start(device.type)
    if ranks.world != processes:
        raise CarvanaError(
            f"torchrun started {ranks.world} processes but `train.processes` is {processes}; make them agree"
        )
    try:
        train(
            params,
            torch.device("cuda", ranks.local_rank) if ranks.world > 1 and device.type == "cuda" else device,
            ranks,
        )
    finally:
        distributed.stop()


def launch_processes(params: Params) -> int:
    """`--processes N`, as dvc.yaml passes `train.processes` to the command."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=params.train.processes)
    processes = parser.parse_args().processes
    if processes != params.train.processes:
        raise CarvanaError(
            f"--processes is {processes} but params.yaml has `train.processes: {params.train.processes}`; "
            f"set the param instead (`dvc exp run -S train.processes={processes}`)"
        )
    return processes


def train(params: Params, device: torch.device, ranks: distributed.Ranks) -> None:
    cfg = params.train
    say = print if ranks.main else lambda *args: None
    torch.manual_seed(params.seed)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    data = Data.load(params, device, ranks)
    config = unet_config(cfg.model)
    model = UNet(**config).to(device, memory_format=memory_format(device))
    fit = Fit.of(model, cfg, len(data.train_loader), device, ranks.world)
    trained_on = {"device": device_name(device), "precision": fit.precision.name}
    tflops_per_epoch = training_flops_per_image(config, data.size) * len(data.train_loader) * cfg.batch_size / 1e12
    say(headline(data, model, trained_on, ranks.world, tflops_per_epoch))
    logged = logged_params(params)
    components = checkpointed(fit)
    meta = {"model_config": config, "image_size": list(data.size), "params": logged}
    progress = resume(logged, meta, components, ranks)

    with training_run(logged, progress.run_id) if ranks.main else nullcontext() as run:
        if ranks.main:
            mlflow.set_tags({f"trained_on.{key}": value for key, value in trained_on.items()})
            if not data.val_ids:
                mlflow.set_tags({FINAL_FIT: "true", "mlflow.note.content": FINAL_FIT_NOTE})
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            started = time.perf_counter()
            start_epoch(data.train_loader, epoch)
            train_loss = train_epoch(fit, data.train_loader, epoch)
            if ranks.main:
                scores, measuring = validate(fit, data, cfg, epoch) if data.val_ids else ({}, 0.0)
                progress.minutes += (time.perf_counter() - started - measuring) / 60  # measurement is not training
                row = {"epoch": epoch, "train_loss": train_loss} | scores
                log_epoch(row, fit.scheduler.get_last_lr()[0], progress.minutes, epoch * tflops_per_epoch)
                progress.commit(row, run.info.run_id, components)  # after its logging: a resume never skips one
                say(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"))
            distributed.barrier()
        if ranks.main:
            publish(progress, run, trained_on, cfg.epochs * tflops_per_epoch)
    if ranks.main:
        progress.discard()
    distributed.barrier()


@dataclass(frozen=True)
class Data:
    """The prepared splits as training reads them: this process's share of the train batches, every val image."""

    train_loader: DataLoader
    val_set: SegmentationArrays
    val_loader: DataLoader
    val_ids: list[str]
    size: tuple[int, int]

    @classmethod
    def load(cls, params: Params, device: torch.device, ranks: distributed.Ranks) -> "Data":
        cfg = params.train
        train_split, val_split = load_prepared("train"), load_prepared("val")
        if len(train_split.ids) < cfg.batch_size:
            raise CarvanaError(
                f"params: `train.batch_size` is {cfg.batch_size} but there are only {len(train_split.ids)} train "
                "images (training skips the last incomplete batch); lower it or hold out fewer cars"
            )
        train_set = SegmentationArrays(train_split.images, train_split.masks, train_transform(cfg.augment), params.seed)
        val_set = SegmentationArrays(val_split.images, val_split.masks, eval_transform(), params.seed)
        loading = dict(batch_size=cfg.batch_size, workers=cfg.num_workers, pin_memory=device.type == "cuda")
        return cls(
            train_loader=make_loader(train_set, training=True, rank=ranks.rank, world=ranks.world, **loading),
            val_set=val_set,
            val_loader=make_loader(val_set, training=False, **loading),
            val_ids=val_split.ids,
            size=tuple(train_split.images.shape[1:3]),
        )


def headline(
    data: Data, model: torch.nn.Module, trained_on: dict[str, str], world: int, tflops_per_epoch: float
) -> str:
    height, width = data.size
    val = f"{len(data.val_set)} val images" if data.val_ids else "no val images (a final fit)"
    return (
        f"train: {len(data.train_loader.dataset)} train / {val} at {height}x{width}, "
        f"{count_parameters(model):,} parameters, {tflops_per_epoch:.3g} TFLOP per epoch, "
        f"{trained_on['device']}, {trained_on['precision']}" + (f", {world} processes" if world > 1 else "")
    )


def checkpointed(fit: Fit) -> dict[str, Any]:
    """What resume state holds. "model": the weights that are scored and published; with an average of the weights,
    the trained ones are kept beside them."""
    components = {"model": fit.scored, "optimizer": fit.optimizer, "scheduler": fit.scheduler, "scaler": fit.scaler}
    return components | ({"trained": fit.model, "ema": fit.ema} if fit.ema else {})


def validate(fit: Fit, data: Data, cfg: TrainParams, epoch: int) -> tuple[dict[str, float], float]:
    """The epoch's val scores (val_dice_full on the epochs train.full_res_every names), its prediction panels
    logged; and the seconds spent scoring at full resolution."""
    panels = Panels(data.val_set, cfg.panels_per_epoch)
    full_res = FullResScores(stage_dir("download"), THRESHOLD) if full_res_due(cfg, epoch) else None
    sinks = [panels.collect] + ([full_res.sink(data.val_ids)] if full_res else [])
    scores = {f"val_{k}": v for k, v in score_val(fit, data.val_loader, *sinks).items()}
    panels.log(epoch)
    if full_res is None:
        return scores, 0.0
    return scores | {"val_dice_full": full_res.means()["dice"]}, full_res.seconds


def resume(
    logged: dict[str, Any], meta: dict[str, Any], components: dict[str, Any], ranks: distributed.Ranks
) -> Progress:
    """Process 0 decides whether the saved state is this run's and says so; every process then holds it."""
    progress, saved = None, None
    if ranks.main:
        progress = Progress(slot(), fingerprint(logged), meta, keep=logged["train.keep"])
        print(f"train: {progress.resume(components)}")
        if progress.abandoned_run_id:
            end_abandoned(progress.abandoned_run_id)
        saved = progress.saved() if progress.epoch and ranks.world > 1 else None
    progress, saved = distributed.from_main((progress, saved))
    if saved is not None and not ranks.main:
        Progress.load(saved, components)
    return progress


def logged_params(params: Params) -> dict[str, Any]:
    """The params that decide this model (all declared for train in dvc.yaml), flattened."""
    groups = ("download", "split_val", "train")
    flat = {k: v for g in groups for k, v in flatten(getattr(params, g), f"{g}.").items()}
    size = {"prepare.image_height": params.prepare.image_height, "prepare.image_width": params.prepare.image_width}
    return {"seed": params.seed} | flat | size


def log_epoch(row: dict[str, float], lr: float, minutes: float, tflops: float) -> None:
    """The epoch's scores, with what training has cost so far: minutes on this machine, TFLOPs on any."""
    so_far = {"lr": lr, "train_minutes": minutes, "train_tflops": tflops}
    metrics = {k: v for k, v in row.items() if k != "epoch"} | so_far
    mlflow.log_metrics(metrics, step=int(row["epoch"]))


def full_res_due(cfg: TrainParams, epoch: int) -> bool:
    return bool(cfg.full_res_every) and (epoch % cfg.full_res_every == 0 or epoch == cfg.epochs)


class Panels:
    """photo | truth | prediction rows of `count` val photos spread over the set, collected as scoring streams by
    and logged to MLflow."""

    def __init__(self, val_set: SegmentationArrays, count: int) -> None:
        self.val_set = val_set
        self.picks = np.linspace(0, len(val_set) - 1, min(count, len(val_set))).round().astype(int) if count else []
        self.predictions: dict[int, np.ndarray] = {}

    def collect(self, start: int, probabilities: np.ndarray) -> None:
        for pick in self.picks:
            if start <= pick < start + len(probabilities):
                self.predictions[int(pick)] = (probabilities[pick - start] > THRESHOLD).astype(np.uint8)

    def log(self, epoch: int) -> None:
        if len(self.picks):
            picks = self.picks
            predictions = np.stack([self.predictions[int(pick)] for pick in picks])
            grid = panels(self.val_set.images[picks], self.val_set.masks[picks], predictions)
            mlflow.log_image(grid, key="val_panels", step=epoch)


def publish(progress: Progress, run: mlflow.ActiveRun, trained_on: dict[str, str], tflops: float) -> None:
    """The finished training's checkpoints, metrics and plots into stages/train/, and into its MLflow run (evaluate
    logs and registers the model it scores). The metrics name the device and number format that computed them
    (`trained_on`: other CPU kinds land on other figures) and what the training cost in TFLOPs (on any machine)."""
    with atomic_dir(checkpoint_path().parent) as checkpoints:
        progress.publish(checkpoints)
    mlflow.log_artifacts(str(checkpoint_path().parent), artifact_path="checkpoints")
    out = stage_dir("train")
    best = progress.best
    scores = {k: v for k, v in best.items() if k != "epoch"}
    cost = {"train_tflops": float(f"{tflops:.4g}"), "trained_on": trained_on}
    write_json(out / "metrics.json", {"best_epoch": int(best["epoch"])} | scores | cost)
    with atomic_dir(out / "plots") as plots:
        for name, columns in PLOTS.items():
            rows = [r for r in progress.history if all(c in r for c in columns)]  # val_dice_full: some epochs
            lines = ["\t".join(("epoch", *columns))]
            lines += ["\t".join([str(int(r["epoch"])), *(f"{r[c]:.6f}" for c in columns)]) for r in rows]
            (plots / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    mlflow.log_metrics({f"best_{k}": v for k, v in best.items() if k != "epoch"})
    write_run_file(run.info.run_id, run.info.experiment_id)


if __name__ == "__main__":
    run_main(main)
