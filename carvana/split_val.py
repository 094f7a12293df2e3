"""Stage split_val: hold out whole cars for validation (no car in both sets), seeded.

Writes id lists stages/split_val/{train,val}.txt, not copies of images.
"""

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from carvana.core.atomic import atomic_dir
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import SPLITS, stage_dir, write_ids
from carvana.core.params import SplitValParams, load_params
from carvana.data.layout import car_of, image_ids


def split_by_car(ids: list[str], split: SplitValParams, seed: int) -> dict[str, list[str]]:
    cars = [car_of(image_id) for image_id in ids]
    n_cars = len(set(cars))
    n_val = split.val_cars if split.val_cars is not None else max(1, round(split.val_fraction * n_cars))
    if not 1 <= n_val < n_cars:
        raise CarvanaError(
            f"params: split_val holds out {n_val} of {n_cars} cars; both sets need at least one car "
            "(adjust `split_val.val_fraction` or `split_val.val_cars`)"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train_index, val_index = next(splitter.split(np.zeros(len(ids)), groups=cars))
    return {"train": sorted(ids[i] for i in train_index), "val": sorted(ids[i] for i in val_index)}


def main() -> None:
    params = load_params()
    ids = image_ids(stage_dir("download"))
    if not ids:
        raise CarvanaError(f"{stage_dir('download')} has no images: run `dvc repro download` first")
    split = split_by_car(ids, params.split_val, params.seed)
    with atomic_dir(stage_dir("split_val")) as tmp:
        for name in SPLITS:
            write_ids(tmp / f"{name}.txt", split[name])
    counts = ", ".join(
        f"{name}: {len(split[name])} images / {len({car_of(i) for i in split[name]})} cars" for name in SPLITS
    )
    print(f"split_val: {counts}")


if __name__ == "__main__":
    run_main(main)
