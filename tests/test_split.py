import pytest

from carvana.core.errors import CarvanaError
from carvana.core.params import SplitValParams
from carvana.data.layout import car_of, image_id
from carvana.split_val import split_by_car

IDS = [image_id(f"{car:012x}", view) for car in range(10) for view in range(1, 17)]


def params(**fields) -> SplitValParams:
    return SplitValParams(**{"val_fraction": 0.25, "val_cars": None, "folds": None, "fold": 0, **fields})


def test_no_car_is_in_both_sets():
    split = split_by_car(IDS, params(val_fraction=0.3), seed=1)
    assert {car_of(i) for i in split["train"]}.isdisjoint({car_of(i) for i in split["val"]})
    assert len({car_of(i) for i in split["val"]}) == 3
    assert sorted(split["train"] + split["val"]) == sorted(IDS)


def test_split_is_deterministic_and_seeded():
    fifth = params(val_fraction=0.2)
    assert split_by_car(IDS, fifth, seed=7) == split_by_car(IDS, fifth, seed=7)
    seeds = {tuple(split_by_car(IDS, fifth, seed=s)["val"]) for s in range(6)}
    assert len(seeds) > 1


def test_val_cars_overrides_fraction():
    split = split_by_car(IDS, params(val_fraction=0.9, val_cars=2), seed=0)
    assert len({car_of(i) for i in split["val"]}) == 2


@pytest.mark.parametrize("split", [params(val_fraction=0.99), params(val_cars=10)])
def test_training_needs_a_car(split):
    with pytest.raises(CarvanaError, match="training needs at least one car"):
        split_by_car(IDS, split, seed=0)


def test_a_final_fit_trains_on_every_car():
    split = split_by_car(IDS, params(val_fraction=0.5, val_cars=0), seed=0)
    assert split == {"train": sorted(IDS), "val": []}


def test_folds_hold_out_every_car_once():
    held_out = [split_by_car(IDS, params(folds=4, fold=fold), seed=3)["val"] for fold in range(4)]
    cars = [{car_of(i) for i in val} for val in held_out]
    assert sorted(len(group) for group in cars) == [2, 2, 3, 3]
    assert set().union(*cars) == {car_of(i) for i in IDS} and sum(map(len, cars)) == 10
    assert split_by_car(IDS, params(folds=4, fold=1), seed=3) == split_by_car(IDS, params(folds=4, fold=1), seed=3)
    assert split_by_car(IDS, params(folds=4, fold=1), seed=4) != split_by_car(IDS, params(folds=4, fold=1), seed=3)


def test_fold_numbers_and_counts_are_checked():
    with pytest.raises(
        CarvanaError, match="`split_val.fold` is 4 but `split_val.folds` is 4; folds are numbered 0 to 3"
    ):
        params(folds=4, fold=4)
    with pytest.raises(CarvanaError, match="`split_val.folds` is 11 but there are only 10 cars"):
        split_by_car(IDS, params(folds=11), seed=0)


def test_the_held_out_cars_are_those_scikit_learn_chose():
    """The split once came from scikit-learn's GroupShuffleSplit(test_size=n, random_state=seed): the same cars
    still, so earlier runs and their figures keep their meaning."""
    cars = [f"{car:012x}" for car in range(8)]
    ids = [image_id(car, view) for car in cars for view in (1, 2)]
    val = split_by_car(ids, params(val_fraction=0.25), seed=42)["val"]
    assert sorted({car_of(i) for i in val}) == [cars[1], cars[5]]
