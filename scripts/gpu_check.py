"""The GPU code paths, run for real: `python scripts/gpu_check.py [--device cuda|cpu] [--quick]`.

On a CUDA machine (torch alone is enough, with pydantic carried for the params schema): a few training steps of
the seed network (the tutorial's 64-128-256-512 U-Net) at 640x960 through the project's own Fit and train_epoch,
in bf16 and in fp16 with a GradScaler, channels_last, with and without torch.compile; the loss must fall and stay
finite. Then the inference engine (the path of `carvana predict`) on 64 synthetic 1918x1280 photos. Prints the
images/s of each, and exits non-zero when a check fails. `--device cpu --quick` runs the same code on the CPU,
small, in seconds (what the tests do).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carvana.core.params import AugmentParams, ModelParams, TrainParams  # noqa: E402
from carvana.inference.engine import predict  # noqa: E402
from carvana.inference.photos import find_photos  # noqa: E402
from carvana.inference.segmenter import TorchSegmenter  # noqa: E402
from carvana.inference.writers import MaskGifs  # noqa: E402
from carvana.model.checkpoint import save_checkpoint  # noqa: E402
from carvana.model.device import device_name, memory_format  # noqa: E402
from carvana.model.unet import UNet  # noqa: E402
from carvana.training.loop import Fit, train_epoch  # noqa: E402

SEED_FEATURES = [64, 128, 256, 512]
QUICK_FEATURES = [8, 16, 32, 64]  # --quick: the same network, narrower


def train_params(precision: str, compile_model: bool, features: list[int]) -> TrainParams:
    augment = AugmentParams.off()
    return TrainParams(
        device="auto", epochs=1, batch_size=4, processes=1, lr=3e-4, lr_schedule="constant", num_workers=0,
        loss="bce_dice", boundary_weight=1.0, ema=0.0, keep="best", precision=precision, compile=compile_model,
        panels_per_epoch=0, full_res_every=0, augment=augment,
        model=ModelParams(features=features, space_to_depth=1, block="conv"),
    )  # fmt: skip


def boxes(count: int, size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright boxes on noise, a batch the network can learn in a few steps."""
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(count, 1, *size)
    for mask in masks:
        top, left = (int(torch.randint(0, s // 2, (1,), generator=generator)) for s in size)
        mask[:, top : top + size[0] // 2, left : left + size[1] // 2] = 1
    images = masks.expand(-1, 3, -1, -1) * 0.6 + torch.rand(count, 3, *size, generator=generator) * 0.4
    return images.to(device), masks.to(device)


def check_training(
    device: torch.device,
    size: tuple[int, int],
    steps: int,
    formats: list[str],
    compile_modes: list[tuple[bool, ...]],
    features: list[int],
) -> bool:
    ok = True
    images, masks = boxes(4, size, device)
    for precision, compiling in zip(formats, compile_modes):
        for compile_model in compiling:
            torch.manual_seed(0)
            model = UNet(features=features).to(device, memory_format=memory_format(device))
            fit = Fit.of(model, train_params(precision, compile_model, features), steps, device)
            losses, started = [], time.perf_counter()
            for step in range(steps):
                losses.append(train_epoch(fit, [(images, masks)], step))
                if step == 0:
                    started = time.perf_counter()  # the first step compiles and warms up
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = (steps - 1) * len(images) / (time.perf_counter() - started)
            good = all(np.isfinite(losses)) and losses[-1] < losses[0]
            ok &= good
            print(
                f"train {precision:4} compile={compile_model!s:5} {size[0]}x{size[1]}: loss {losses[0]:.3f} -> "
                f"{losses[-1]:.3f} over {steps} steps, {rate:.1f} img/s, scaler {fit.scaler.is_enabled()}: "
                f"{'ok' if good else 'FAILED'}",
                flush=True,
            )
    return ok


def check_inference(device: torch.device, photos: int, size: tuple[int, int], features: list[int], work: Path) -> bool:
    folder = work / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(photos):
        Image.fromarray(rng.integers(0, 255, (1280, 1918, 3), dtype=np.uint8)).save(folder / f"car_{index:02d}.jpg")
    config = {"in_channels": 3, "out_channels": 1, "features": features}
    checkpoint = work / "seed.pt"
    save_checkpoint(
        checkpoint, {"model": UNet(**config).state_dict(), "model_config": config, "image_size": list(size)}
    )
    segmenter = TorchSegmenter(checkpoint, device, batch_size=16)
    started = time.perf_counter()
    outcomes = list(predict(find_photos([str(folder)]), segmenter, [MaskGifs(work / "masks")], threads=8))
    seconds = time.perf_counter() - started
    written = len(list((work / "masks").glob("*_mask.gif")))
    ok = written == photos and not any(outcome.error for outcome in outcomes)
    rate = photos / seconds
    print(f"predict: {written} masks at 1918x1280 in {seconds:.1f} s ({rate:.1f} masks/s): {'ok' if ok else 'FAILED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser("python scripts/gpu_check.py", description=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (a smoke run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available here; give --device cpu for a smoke run")
    print(f"gpu_check: torch {torch.__version__} on {device_name(device)}", flush=True)
    size, steps, photos = ((64, 96), 4, 4) if args.quick else ((640, 960), 12, 64)
    features = QUICK_FEATURES if args.quick else SEED_FEATURES
    formats = ["bf16", "fp16"] if device.type == "cuda" else ["fp32", "bf16"]
    # torch.compile with and without, in each format; --quick compiles once (a compile takes ~20 s on 2 cores)
    compile_modes = [(False, True), (False,)] if args.quick else [(False, True), (False, True)]
    ok = check_training(device, size, steps, formats, compile_modes, features)
    with tempfile.TemporaryDirectory() as work:
        ok &= check_inference(device, photos, size, features, Path(work))
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print("gpu_check: all passed" if ok else "gpu_check: FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
