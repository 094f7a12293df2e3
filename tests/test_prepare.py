import numpy as np
import pytest
from PIL import Image

from carvana.core.atomic import atomic_dir
from carvana.core.errors import CarvanaError
from carvana.data.imageio import read_image
from carvana.data.layout import image_ids
from carvana.data.resize import load_pair, load_photo, resize_photo
from carvana.prepare import prepare_split
from carvana.sources.synthetic import generate


def test_draft_decoding_matches_a_full_decode(tmp_path):
    """DCT-scaled decoding + resize stays within a couple of grey levels of decode-everything + resize."""
    generate(tmp_path, cars=1, width=1918, height=1280, seed=3, workers=1)
    photo = tmp_path / "train" / f"{image_ids(tmp_path)[4]}.jpg"
    for size in [(96, 144), (160, 240), (320, 480)]:
        fast = load_photo(photo, size).astype(float)
        full = resize_photo(read_image(photo), size).astype(float)
        assert np.abs(fast - full).mean() < 2.0, size


def test_split_arrays_hold_every_pair_in_order(dataset, tmp_path):
    ids = image_ids(dataset)
    prepare_split(dataset, ids, tmp_path / "val", (24, 32), workers=2)
    images = np.load(tmp_path / "val/images.npy", mmap_mode="r")
    masks = np.load(tmp_path / "val/masks.npy", mmap_mode="r")
    assert images.shape == (6, 24, 32, 3) and masks.shape == (6, 24, 32) and images.dtype == np.uint8
    assert (tmp_path / "val/ids.txt").read_text().split() == ids
    for row, image_id in enumerate(ids):
        photo, mask = load_pair(
            dataset / "train" / f"{image_id}.jpg", dataset / "train_masks" / f"{image_id}_mask.gif", (24, 32)
        )
        assert np.array_equal(images[row], photo) and np.array_equal(masks[row], mask)
    assert set(np.unique(masks).tolist()) == {0, 1}


def test_bad_files_are_named_and_nothing_is_left(dataset, tmp_path):
    corrupt = dataset / "train" / "0bbbbbbbbbbb_02.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:150])
    Image.fromarray(np.full((48, 64), 7, dtype=np.uint8)).save(dataset / "train_masks" / "0ccccccccccc_01_mask.gif")
    expected = r"2 file\(s\).*0bbbbbbbbbbb_02.jpg.*0ccccccccccc_01_mask.gif"
    with pytest.raises(CarvanaError, match=expected), atomic_dir(tmp_path / "stages" / "prepare") as out:
        prepare_split(dataset, image_ids(dataset), out / "train", (24, 32), workers=2)
    assert list((tmp_path / "stages").iterdir()) == []
