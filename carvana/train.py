"""Stage train: fit the U-Net on the train cars, score it on the val cars after every epoch.

Writes stages/train/{checkpoints/{best,last}.pt, metrics.json, plots/*.tsv, mlflow_run.json} and records
params, per-epoch metrics, prediction panels, checkpoints and the model in one MLflow run.
"""

import math
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from torch import nn
from tqdm import tqdm

from carvana import registry, resume, tracking
from carvana.allocator import keep_freed_memory
from carvana.atomic import atomic_dir, write_json
from carvana.augment import eval_transform, train_transform
from carvana.checkpoint import save_checkpoint
from carvana.data import SegmentationArrays, make_loader, start_epoch
from carvana.device import Precision, resolve_device
from carvana.errors import CarvanaError, run_main
from carvana.losses import LOSSES, Loss
from carvana.metrics import ScoreAccumulator
from carvana.model import UNet, count_parameters
from carvana.params import Params, flatten, load_params
from carvana.paths import stage_dir
from carvana.prepare import load_prepared
from carvana.visualize import panels

PLOTS = {"loss": ("train_loss", "val_loss"), "dice": ("val_dice",), "iou": ("val_iou",), "accuracy": ("val_accuracy",)}


def main() -> None:
    keep_freed_memory()
    params = load_params()
    cfg = params.train
    torch.manual_seed(params.seed)
    device = resolve_device(cfg.device)
    precision = Precision.choose(device, cfg.amp)
    torch.backends.cudnn.benchmark = device.type == "cuda"

    train_ids, train_images, train_masks = load_prepared("train")
    val_ids, val_images, val_masks = load_prepared("val")
    size = train_images.shape[1:3]
    train_set = SegmentationArrays(train_images, train_masks, train_transform(cfg.augment), params.seed)
    val_set = SegmentationArrays(val_images, val_masks, eval_transform(), params.seed)
    loader_args = dict(batch_size=cfg.batch_size, workers=cfg.num_workers, pin_memory=device.type == "cuda")
    train_loader = make_loader(train_set, shuffle=True, **loader_args)
    val_loader = make_loader(val_set, shuffle=False, **loader_args)

    model_config = {"in_channels": 3, "out_channels": 1, "features": list(cfg.model.features)}
    model = UNet(**model_config).to(device, memory_format=memory_format(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = lr_scheduler(optimizer, cfg.lr_schedule, cfg.epochs, len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
    loss_fn = LOSSES[cfg.loss]
    step_model = torch.compile(model) if cfg.compile else model  # shares its weights with `model`
    print(
        f"train: {len(train_set)} train / {len(val_set)} val images at {size[0]}x{size[1]}, "
        f"{count_parameters(model):,} parameters, {device}, {precision.dtype or torch.float32}"
    )

    progress_dir = resume.resume_dir(params, {"train": train_ids, "val": val_ids})
    state = resume.load_state(progress_dir)
    if state:
        for component, key in (
            (model, "model"),
            (optimizer, "optimizer"),
            (scheduler, "scheduler"),
            (scaler, "scaler"),
        ):
            component.load_state_dict(state[key])
        print(f"train: resuming after epoch {state['epoch']} (state in {progress_dir})")
    history: list[dict[str, float]] = state["history"] if state else []
    best: dict[str, float] = state["best"] if state else {}
    first_epoch = state["epoch"] + 1 if state else 1

    meta = {"model_config": model_config, "image_size": list(size), "params": logged_params(params)}
    with tracking.training_run(logged_params(params), state and state["run_id"]) as run:
        for epoch in range(first_epoch, cfg.epochs + 1):
            start_epoch(train_loader, epoch)
            train_loss = train_epoch(
                step_model, train_loader, optimizer, scheduler, scaler, loss_fn, device, precision, epoch
            )
            val_scores, val_preds = validate(step_model, val_loader, loss_fn, device, precision)
            row = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val_scores.items()}}
            history.append(row)
            improved = not best or row["val_dice"] > best["val_dice"]
            best = row if improved else best
            state = {
                **meta,
                "epoch": epoch,
                "metrics": row,
                "history": history,
                "best": best,
                "run_id": run.info.run_id,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
            }
            mlflow.log_metrics(
                {k: v for k, v in row.items() if k != "epoch"} | {"lr": scheduler.get_last_lr()[0]}, step=epoch
            )
            log_panels(val_set, val_preds, cfg.panels_per_epoch, epoch)
            # last.pt commits the epoch: written after its MLflow logging, so a resume never skips a logged step.
            if improved:
                save_checkpoint(progress_dir / "best.pt", state)
            save_checkpoint(progress_dir / "last.pt", state)
            print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"))
        out = stage_dir("train")
        with atomic_dir(out / "checkpoints") as checkpoints:
            for name in ("best.pt", "last.pt"):
                shutil.copyfile(progress_dir / name, checkpoints / name)
        mlflow.log_artifacts(str(out / "checkpoints"), artifact_path="checkpoints")
        write_outputs(history, best, run)
        log_model(model, out / "checkpoints" / "best.pt", size, device)
    resume.discard(progress_dir)


def logged_params(params: Params) -> dict[str, Any]:
    """The params that decide this model (all declared for train in dvc.yaml), flattened."""
    groups = ("download", "split_val", "train")
    flat = {k: v for g in groups for k, v in flatten(getattr(params, g), f"{g}.").items()}
    size = {"prepare.image_height": params.prepare.image_height, "prepare.image_width": params.prepare.image_width}
    return {"seed": params.seed} | flat | size


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-batch multiplier of the base lr: constant, or one linear warm-up epoch then cosine decay to zero."""
    total = epochs * steps_per_epoch
    warmup = steps_per_epoch if epochs > 1 else 0

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def memory_format(device: torch.device) -> torch.memory_format:
    # channels_last makes cuDNN's tensor-core convolutions faster; on the CPU it brings nothing here.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def train_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    loss_fn: Loss,
    device: torch.device,
    precision: Precision,
    epoch: int,
) -> float:
    model.train()
    total, count = 0.0, 0
    progress = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None)  # silent when not a terminal
    for images, masks in progress:
        images = images.to(device, non_blocking=True, memory_format=memory_format(device))
        masks = masks.to(device, non_blocking=True)
        with precision.autocast():
            loss = loss_fn(model(images), masks)
        value = loss.item()
        if not math.isfinite(value):
            raise CarvanaError(f"train: loss became {value} at epoch {epoch}; lower `train.lr` and re-run")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += value * len(images)
        count += len(images)
        progress.set_postfix(loss=f"{total / count:.4f}")
    return total / count


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_fn: Loss,
    device: torch.device,
    precision: Precision,
) -> tuple[dict[str, float], np.ndarray]:
    """Mean loss and per-image scores over the val set, and the predicted masks (uint8, N x H x W)."""
    model.eval()
    scores = ScoreAccumulator()
    total, preds = 0.0, []
    for images, masks in loader:
        images = images.to(device, non_blocking=True, memory_format=memory_format(device))
        masks = masks.to(device, non_blocking=True)
        with precision.autocast():
            logits = model(images)
        total += loss_fn(logits.float(), masks).item() * len(images)
        pred = logits.float() > 0
        scores.add(pred, masks.bool())
        preds.append(pred[:, 0].to(torch.uint8).cpu().numpy())
    return {"loss": total / len(loader.dataset), **scores.means()}, np.concatenate(preds)


def log_panels(val_set: SegmentationArrays, preds: np.ndarray, count: int, epoch: int) -> None:
    if count:
        picks = np.linspace(0, len(val_set) - 1, min(count, len(val_set))).round().astype(int)
        grid = panels(val_set.images[picks], val_set.masks[picks], preds[picks])
        mlflow.log_image(grid, key="val_panels", step=epoch)


def write_outputs(history: list[dict[str, float]], best: dict[str, float], run: mlflow.ActiveRun) -> None:
    out = stage_dir("train")
    write_json(
        out / "metrics.json", {"best_epoch": int(best["epoch"]), **{k: v for k, v in best.items() if k != "epoch"}}
    )
    with atomic_dir(out / "plots") as plots:
        for name, columns in PLOTS.items():
            lines = ["\t".join(("epoch", *columns))]
            lines += ["\t".join([str(int(r["epoch"])), *(f"{r[c]:.6f}" for c in columns)]) for r in history]
            (plots / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    tracking.write_run_file(out / tracking.RUN_FILE, run)
    mlflow.log_metrics({f"best_{k}": v for k, v in best.items() if k != "epoch"})


def log_model(model: nn.Module, best_checkpoint: Path, size: tuple[int, int], device: torch.device) -> None:
    """The best weights as an MLflow PyTorch model, with a signature from a real input example."""
    state = torch.load(best_checkpoint, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    example = np.zeros((1, 3, *size), dtype=np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example).to(device)).cpu().numpy()
    mlflow.pytorch.log_model(
        model.cpu(),
        name="model",
        input_example=example,
        signature=infer_signature(example, output),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        code_paths=[tracking.package_dir()],
        registered_model_name=registry.MODEL_NAME,
    )


if __name__ == "__main__":
    run_main(main)
