import numpy as np
import pytest
from PIL import Image

from carvana.core.errors import CarvanaError
from carvana.data.imageio import read_image, read_mask, write_mask_gif


def test_gif_mask_round_trips_to_zero_one(tmp_path):
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:15, 10:20] = 1
    write_mask_gif(tmp_path / "a_mask.gif", mask)
    with Image.open(tmp_path / "a_mask.gif") as gif:
        assert gif.mode == "P"
        assert set(np.unique(np.asarray(gif)).tolist()) == {0, 1}  # Kaggle's palette indices
    assert np.array_equal(read_mask(tmp_path / "a_mask.gif"), mask)


def test_mask_with_reversed_palette_reads_by_colour(tmp_path):
    gif = Image.fromarray(np.array([[0, 1], [1, 1]], dtype=np.uint8), mode="P")
    gif.putpalette([255, 255, 255, 0, 0, 0])  # index 0 white (car), 1 black
    gif.save(tmp_path / "r_mask.gif")
    assert read_mask(tmp_path / "r_mask.gif").tolist() == [[1, 0], [0, 0]]


def test_non_binary_mask_is_refused(tmp_path):
    Image.fromarray(np.array([[0, 128], [255, 255]], dtype=np.uint8)).save(tmp_path / "g_mask.gif")
    with pytest.raises(CarvanaError, match="g_mask.gif: mask is not binary"):
        read_mask(tmp_path / "g_mask.gif")


def test_truncated_jpeg_is_refused(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(CarvanaError, match="t.jpg: cannot decode image"):
        read_image(tmp_path / "t.jpg")
