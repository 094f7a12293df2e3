"""Stage split_val: hold out whole cars for validation (no car in both sets), seeded; or none (`split_val.val_cars:
0`, a final fit: the recipe was judged by cross-validation, and the last cars are worth training on).

Writes id lists stages/split_val/{train,val}.txt, not copies of images.
"""

import numpy as np

from carvana.core.atomic import atomic_dir
from carvana.core.errors import CarvanaError, run_main
from carvana.core.outputs import SPLITS, stage_dir, write_ids
from carvana.core.params import SplitValParams, load_params
from carvana.data.layout import car_of, image_ids


def split_by_car(ids: list[str], split: SplitValParams, seed: int) -> dict[str, list[str]]:
    """Hold out whole cars: fold `split.fold` of `split.folds` seeded groups, or a seeded share of them."""
    cars = sorted({car_of(image_id) for image_id in ids})
    held_out = fold_cars(cars, split.folds, split.fold, seed) if split.folds else shuffled_share(cars, split, seed)
    return {
        "train": sorted(i for i in ids if car_of(i) not in held_out),
        "val": sorted(i for i in ids if car_of(i) in held_out),
    }


def fold_cars(cars: list[str], folds: int, fold: int, seed: int) -> set[str]:
    """The cars of group `fold` when the cars, shuffled by the seed, are dealt into `folds` groups of (nearly)
    equal size."""
    if folds > len(cars):
        raise CarvanaError(
            f"params: `split_val.folds` is {folds} but there are only {len(cars)} cars; use at most {len(cars)}"
        )
    order = np.random.default_rng(seed).permutation(len(cars))
    return {cars[i] for i in np.array_split(order, folds)[fold]}


def shuffled_share(cars: list[str], split: SplitValParams, seed: int) -> set[str]:
    n_val = split.val_cars if split.val_cars is not None else max(1, round(split.val_fraction * len(cars)))
    if n_val >= len(cars):
        raise CarvanaError(
            f"params: split_val holds out {n_val} of {len(cars)} cars; training needs at least one car "
            "(adjust `split_val.val_fraction` or `split_val.val_cars`)"
        )
    # the cars of scikit-learn's GroupShuffleSplit(test_size=n_val, random_state=seed), without importing it
    return {cars[i] for i in np.random.RandomState(seed).permutation(len(cars))[:n_val]}


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
    print(f"split_val: {counts}" + ("" if split["val"] else " (a final fit: every car trains, no val score)"))


if __name__ == "__main__":
    run_main(main)
