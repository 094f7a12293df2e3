import pytest

from carvana.core.errors import CarvanaError
from carvana.core.params import SplitValParams
from carvana.data.layout import car_of, image_id
from carvana.split_val import split_by_car

IDS = [image_id(f"{car:012x}", view) for car in range(10) for view in range(1, 17)]


def test_no_car_is_in_both_sets():
    split = split_by_car(IDS, SplitValParams(val_fraction=0.3, val_cars=None), seed=1)
    assert {car_of(i) for i in split["train"]}.isdisjoint({car_of(i) for i in split["val"]})
    assert len({car_of(i) for i in split["val"]}) == 3
    assert sorted(split["train"] + split["val"]) == sorted(IDS)


def test_split_is_deterministic_and_seeded():
    params = SplitValParams(val_fraction=0.2, val_cars=None)
    assert split_by_car(IDS, params, seed=7) == split_by_car(IDS, params, seed=7)
    seeds = {tuple(split_by_car(IDS, params, seed=s)["val"]) for s in range(6)}
    assert len(seeds) > 1


def test_val_cars_overrides_fraction():
    split = split_by_car(IDS, SplitValParams(val_fraction=0.9, val_cars=2), seed=0)
    assert len({car_of(i) for i in split["val"]}) == 2


@pytest.mark.parametrize(
    "params", [SplitValParams(val_fraction=0.99, val_cars=None), SplitValParams(val_fraction=0.25, val_cars=10)]
)
def test_both_sets_need_a_car(params):
    with pytest.raises(CarvanaError, match="both sets need at least one car"):
        split_by_car(IDS, params, seed=0)
