"""The GPU code paths, run for real: `python scripts/gpu_check.py [--device cuda|cpu] [--quick]`.

On a CUDA machine (torch alone is enough, with pydantic carried for the params schema): a few training steps of
the seed network (the tutorial's 64-128-256-512 U-Net) at 640x960 through the project's own Fit and train_epoch,
in bf16 and in fp16 with a GradScaler, channels_last, with and without torch.compile; the loss must fall and stay
finite. Then the trained network through the inference engine (the path of `carvana predict`) on 64 synthetic
1918x1280 photos, plain and as the recommended recipe runs it (mirror TTA, a learned edge refiner, one car kept), the
recipe's masks of a few photos compared with the CPU's. Prints the images/s of each, and exits non-zero when a check
fails. `--device cpu --quick` runs the same code on the CPU, small, in seconds (what the tests do).
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

from carvana.core.params import AugmentParams, InferenceParams, ModelParams, TrainParams  # noqa: E402
from carvana.inference.engine import predict  # noqa: E402
from carvana.inference.learned_edges import KEY  # noqa: E402
from carvana.inference.photos import find_photos  # noqa: E402
from carvana.inference.refine import refinement  # noqa: E402
from carvana.inference.segmenter import Segmenter, TorchSegmenter, with_tta  # noqa: E402
from carvana.inference.writers import MaskGifs  # noqa: E402
from carvana.model.checkpoint import save_checkpoint  # noqa: E402
from carvana.model.device import device_name, memory_format  # noqa: E402
from carvana.model.metrics import per_image_scores  # noqa: E402
from carvana.model.refiner import EdgeRefiner, refiner_config  # noqa: E402
from carvana.model.unet import UNet  # noqa: E402
from carvana.training.loop import Fit, train_epoch  # noqa: E402

SEED_FEATURES = [64, 128, 256, 512]
RECIPE = InferenceParams(threshold=0.5, tta=True, refine=0, edge_refiner=True, one_car=True)
COMPARED = 4  # photos the recipe also runs on the CPU, to compare
QUICK_FEATURES = [8, 16, 32, 64]  # --quick: the same network, narrower


def train_params(precision: str, compile_model: bool, features: list[int]) -> TrainParams:
    augment = AugmentParams.off()
    return TrainParams(
        device="auto", epochs=1, batch_size=4, processes=1, lr=3e-4, lr_schedule="constant", num_workers=0,
        loss="bce_dice", boundary_weight=1.0, ema=0.0, keep="best", precision=precision, compile=compile_model,
        panels_per_epoch=0, full_res_every=0, augment=augment,
        model=ModelParams(features=features, space_to_depth=1, block="conv"),
    )  # fmt: skip


def boxes(count: int, size: tuple[int, int], device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright boxes on noise, a batch the network can learn in a few steps."""
    generator = torch.Generator().manual_seed(seed)
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
) -> tuple[bool, UNet]:
    """Whether every format and compile mode trained, and the first network trained (bf16 or fp32, not compiled)."""
    ok, first = True, None
    images, masks = boxes(4, size, device)
    for precision, compiling in zip(formats, compile_modes):
        for compile_model in compiling:
            torch.manual_seed(0)
            model = UNet(features=features).to(device, memory_format=memory_format(device))
            first = model if first is None else first
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
    return ok, first


def box_photos(folder: Path, count: int) -> list[np.ndarray]:
    """`count` 1918x1280 photos of boxes on noise, as the network trained on, in `folder`; their true masks."""
    folder.mkdir()
    truths = []
    for index in range(count):
        image, mask = boxes(1, (1280, 1918), torch.device("cpu"), seed=index + 1)
        photo = (image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(photo).save(folder / f"car_{index:02d}.jpg", quality=95)
        truths.append(mask[0, 0].numpy() > 0.5)
    return truths


def with_refiner(unet: UNet, size: tuple[int, int], features: list[int], path: Path) -> Path:
    """A checkpoint of `unet` holding an edge refiner whose output layer is random (a fresh one changes nothing)."""
    edges = refiner_config(16)
    refiner = EdgeRefiner(**edges)
    torch.nn.init.normal_(refiner.head.weight, std=0.5, generator=torch.Generator().manual_seed(0))
    config = {"in_channels": 3, "out_channels": 1, "features": features}
    state = {name: value.cpu() for name, value in unet.state_dict().items()}
    refined = {"config": edges, "model": refiner.state_dict()}
    save_checkpoint(path, {"model": state, "model_config": config, "image_size": list(size), KEY: refined})
    return path


def masks_of(folder: Path, count: int) -> list[np.ndarray]:
    return [np.array(Image.open(folder / f"car_{index:02d}_mask.gif")) > 0 for index in range(count)]


def run_predict(
    name: str, segmenter: Segmenter, photos: list[str], masks: Path, settings: InferenceParams | None
) -> bool:
    """`carvana predict`'s path: the photos (files or folders) `photos`, their masks into `masks`."""
    refined = refinement(settings, segmenter.edge_refiner) if settings else None
    runner = with_tta(segmenter, settings.tta) if settings else segmenter
    found, started = find_photos(photos), time.perf_counter()
    count = len(found)
    outcomes = list(predict(found, runner, [MaskGifs(masks)], threads=8, refinement=refined))
    seconds = time.perf_counter() - started
    written = len(list(masks.glob("*_mask.gif")))
    ok = written == count and not any(outcome.error for outcome in outcomes)
    print(f"predict {name}: {written} masks at 1918x1280 in {seconds:.1f} s ({count / seconds:.1f} masks/s): ", end="")
    print("ok" if ok else "FAILED", flush=True)
    return ok


def check_inference(
    device: torch.device, count: int, size: tuple[int, int], unet: UNet, features: list[int], work: Path
) -> bool:
    """The trained network through predict, plain and as the recommended recipe runs it (mirror TTA, the learned
    edge refiner, one car kept); off the CPU, the recipe's masks of a few photos must match the CPU's."""
    truths = box_photos(work / "photos", count)
    checkpoint = with_refiner(unet, size, features, work / "model.pt")
    segmenter = TorchSegmenter(checkpoint, device, batch_size=16)
    ok = run_predict("plain", segmenter, [str(work / "photos")], work / "plain", None)
    ok &= run_predict("recipe", segmenter, [str(work / "photos")], work / "recipe", RECIPE)
    masks = masks_of(work / "recipe", count)
    dice = per_image_scores(torch.from_numpy(np.stack(masks)), torch.from_numpy(np.stack(truths)))["dice"].mean()
    print(f"recipe masks against the boxes: mean dice {dice:.4f}")
    if device.type == "cpu":
        return ok
    few = [str(work / "photos" / f"car_{index:02d}.jpg") for index in range(COMPARED)]
    ok &= run_predict("recipe on the CPU", TorchSegmenter(checkpoint, "cpu"), few, work / "cpu", RECIPE)
    here, cpu = masks[:COMPARED], masks_of(work / "cpu", COMPARED)
    agree = np.mean([np.mean(a == b) for a, b in zip(here, cpu)])
    car = np.mean([m.mean() for m in cpu])
    same = agree >= 0.999 and 0.05 < car < 0.95
    print(
        f"recipe masks, {device.type} against the CPU: {agree:.5f} of pixels agree, car {car:.3f} of the photo: ",
        end="",
    )
    print("ok" if same else "FAILED")
    return ok and same


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
    ok, trained = check_training(device, size, steps, formats, compile_modes, features)
    with tempfile.TemporaryDirectory() as work:
        ok &= check_inference(device, photos, size, trained, features, Path(work))
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print("gpu_check: all passed" if ok else "gpu_check: FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
