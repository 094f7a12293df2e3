import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import IMAGE_DIR, MASK_DIR, VIEWS_PER_CAR, image_id, image_path, mask_path
from carvana.sources.synthetic import generate

WIDTH, HEIGHT = 240, 160
FILE_NAME = re.compile(r"^[0-9a-f]{12}_\d{2}(_mask)?\.(jpg|gif)$")
FRONT, SIDE, REAR, OTHER_SIDE = 1, 5, 9, 13


def small_set(root: Path, seed: int = 7, workers: int = 1) -> Path:
    generate(root, cars=2, width=WIDTH, height=HEIGHT, seed=seed, workers=workers)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_set(tmp_path_factory.mktemp("synthetic"))


def cars(root: Path) -> list[str]:
    return sorted({path.name[:12] for path in (root / IMAGE_DIR).iterdir()})


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def width_of(mask: np.ndarray) -> int:
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[-1] - columns[0] + 1)


def test_writes_the_kaggle_layout(dataset: Path) -> None:
    jpgs, gifs = sorted((dataset / IMAGE_DIR).iterdir()), sorted((dataset / MASK_DIR).iterdir())
    assert len(jpgs) == len(gifs) == 2 * VIEWS_PER_CAR
    assert all(FILE_NAME.match(path.name) for path in jpgs + gifs)
    assert len(cars(dataset)) == 2
    for car in cars(dataset):
        for view in range(1, VIEWS_PER_CAR + 1):
            with Image.open(image_path(dataset, image_id(car, view))) as photo:
                assert (photo.format, photo.mode, photo.size) == ("JPEG", "RGB", (WIDTH, HEIGHT))
            with Image.open(mask_path(dataset, image_id(car, view))) as mask:
                assert (mask.format, mask.mode, mask.size) == ("GIF", "P", (WIDTH, HEIGHT))
                assert set(np.unique(np.asarray(mask)).tolist()) == {0, 1}


def test_same_arguments_give_identical_files_whatever_the_workers(dataset: Path, tmp_path: Path) -> None:
    assert files(small_set(tmp_path, workers=2)) == files(dataset)


def test_another_seed_gives_other_cars(dataset: Path, tmp_path: Path) -> None:
    other = small_set(tmp_path, seed=8)
    assert not set(cars(other)) & set(cars(dataset))
    first, second = (read_image(image_path(root, image_id(cars(root)[0], FRONT))) for root in (dataset, other))
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 2


def test_silhouette_turns_with_the_view(dataset: Path) -> None:
    for car in cars(dataset):
        masks = {view: read_mask(mask_path(dataset, image_id(car, view))) for view in range(1, VIEWS_PER_CAR + 1)}
        assert all(0.03 < mask.mean() < 0.6 for mask in masks.values())
        assert width_of(masks[SIDE]) > 1.6 * width_of(masks[FRONT])
        assert width_of(masks[OTHER_SIDE]) > 1.6 * width_of(masks[REAR])
        assert masks[SIDE].sum() > 1.2 * masks[FRONT].sum()


def test_mask_covers_the_car_and_not_its_shadow(dataset: Path) -> None:
    for car in cars(dataset):
        for view in range(1, VIEWS_PER_CAR + 1):
            photo = read_image(image_path(dataset, image_id(car, view))).mean(axis=2)
            mask = read_mask(mask_path(dataset, image_id(car, view))).astype(bool)
            assert abs(photo[mask].mean() - photo[~mask].mean()) > 20
            # Two pixels below the car's lower edge, across its middle third: floor in the car's shadow.
            columns = np.flatnonzero(mask.any(axis=0))
            third = (columns[-1] - columns[0]) // 3
            middle = np.arange(columns[0] + third, columns[-1] - third)
            below = HEIGHT + 1 - np.argmax(mask[::-1, middle], axis=0)
            assert not mask[below, middle].any()
            assert photo[below, middle].mean() < 0.85 * photo[below, 2].mean()
