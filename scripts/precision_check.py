"""One epoch of the default recipe on a large synthetic set, in fp32 and in bf16 on this machine's CPU:
`python scripts/precision_check.py [--cars N] [--workers N]`.

Does bf16 autocast on the CPU cost accuracy? Trains params.yaml's `train` recipe (model, lr, batch, augmentation) for
one epoch from the same seed in each number format through the project's own Fit and train_epoch, on N synthetic
cars (16 photos each, rendered at 384x256 and resized to the prepared size as `prepare` does; a quarter of the cars
held out), and prints each run's train loss and seconds, and its val loss and dice scored in each format. Needs
torch, numpy, Pillow, PyYAML, pydantic and albumentations only (no DVC or MLflow): it runs on a lent GPU machine's
CPU too."""

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carvana.core.params import load_params  # noqa: E402
from carvana.data.layout import car_of, image_ids, image_path, mask_path  # noqa: E402
from carvana.data.resize import load_pair  # noqa: E402
from carvana.model.device import Precision, cpu_has_native_bf16, device_name  # noqa: E402
from carvana.model.unet import UNet  # noqa: E402
from carvana.sources.synthetic import generate  # noqa: E402
from carvana.training.augment import eval_transform, train_transform  # noqa: E402
from carvana.training.loader import SegmentationArrays, make_loader, start_epoch  # noqa: E402
from carvana.training.loop import Fit, score_val, train_epoch  # noqa: E402

CPU = torch.device("cpu")
FORMATS = ("fp32", "bf16")


def arrays(root: Path, ids: list[str], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [load_pair(image_path(root, i), mask_path(root, i), size) for i in ids]
    return np.stack([image for image, _ in pairs]), np.stack([mask for _, mask in pairs])


def main() -> None:
    parser = argparse.ArgumentParser("python scripts/precision_check.py", description=__doc__)
    parser.add_argument("--cars", type=int, default=318, help="synthetic cars, 16 photos each (default 318: 5,088)")
    parser.add_argument("--workers", type=int, default=None, help="processes rendering the photos")
    args = parser.parse_args()
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    size = (params.prepare.image_height, params.prepare.image_width)
    print(f"precision_check: {device_name(CPU)}, native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        generate(root, cars=args.cars, width=384, height=256, seed=params.seed, workers=args.workers)
        ids = image_ids(root)
        cars = sorted({car_of(i) for i in ids})
        val_cars = set(cars[::4])
        train_ids = [i for i in ids if car_of(i) not in val_cars]
        val_ids = [i for i in ids if car_of(i) in val_cars]
        train_data, val_data = arrays(root, train_ids, size), arrays(root, val_ids, size)
    print(f"{len(train_ids)} train / {len(val_ids)} val photos at {size[0]}x{size[1]}", flush=True)
    for precision in FORMATS:
        cfg = params.train.model_copy(update={"precision": precision, "epochs": 1})
        train_loader = make_loader(
            SegmentationArrays(*train_data, train_transform(cfg.augment), params.seed), cfg.batch_size, True, 0, False
        )
        val_loader = make_loader(SegmentationArrays(*val_data, eval_transform(), params.seed), 32, False, 0, False)
        torch.manual_seed(params.seed)
        fit = Fit.of(UNet(features=list(cfg.model.features)), cfg, len(train_loader), CPU)
        assert fit.precision == Precision.choose(CPU, precision)
        started = time.perf_counter()
        start_epoch(train_loader, 1)
        train_loss = train_epoch(fit, train_loader, 1)
        seconds = time.perf_counter() - started
        scored = {name: score_val(replace(fit, precision=Precision.choose(CPU, name)), val_loader) for name in FORMATS}
        print(
            f"{precision}-trained: train loss {train_loss:.4f} after one epoch ({seconds:.0f} s); scored in "
            + ", ".join(f"{name}: val loss {s['loss']:.4f}, val dice {s['dice']:.4f}" for name, s in scored.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
