import copy
import math
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from carvana.core.errors import CarvanaError
from carvana.core.params import flatten, load_params, parse
from carvana.core.params import main as params_main
from carvana.preset import available, set_args


def load(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_params(path)


def test_repo_params_are_valid(repo_params, tmp_path):
    params = load(tmp_path, repo_params)
    assert params.download.source == "synthetic"
    assert flatten(params.train, "train.")["train.model.features"] == params.train.model.features


NAN = math.nan


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p: p["train"].update(lr="fast"),
            "`train.lr` is 'fast'; it must be a valid number (Adam's",
        ),
        (lambda p: p["train"].update(lr=NAN), "`train.lr` is nan; it must be a finite number"),
        (lambda p: p["train"].update(lr=math.inf), "`train.lr` is inf; it must be a finite number"),
        (lambda p: p["train"].update(lr=0), "`train.lr` is 0; it must be greater than 0"),
        (lambda p: p["train"].update(lrr=0.1), "unknown key `train.lrr` (did you mean lr?); known keys here: device"),
        (lambda p: p["train"].update(epochs=0), "`train.epochs` is 0; it must be greater than or equal to 1"),
        (lambda p: p["train"].update(epochs=2.5), "`train.epochs` is 2.5; it must be a valid integer"),
        (
            lambda p: p["train"].update(precision="fp8"),
            "`train.precision` is 'fp8'; it must be 'auto', 'fp32', 'bf16' or 'fp16'",
        ),
        (lambda p: p["train"].update(loss="focal"), "`train.loss` is 'focal'; it must be 'bce' or 'bce_dice'"),
        (lambda p: p["train"].update(device="meta"), "`train.device` is 'meta'; it must be auto, cpu, cuda or cuda:N"),
        (lambda p: p["train"].update(device="cuda:x"), "`train.device` is 'cuda:x'; it must be auto, cpu, cuda"),
        (lambda p: p["train"]["model"].update(features=[]), "`train.model.features` is []; it must be List should"),
        (lambda p: p["train"]["model"].update(features=[8, 0]), "`train.model.features[1]` is 0; it must be greater"),
        (lambda p: p["train"]["augment"].update(hflip_p=NAN), "`train.augment.hflip_p` is nan; it must be a finite"),
        (lambda p: p["split_val"].update(val_fraction=1.5), "`split_val.val_fraction` is 1.5; it must be less than 1"),
        (lambda p: p["split_val"].update(val_fraction=0), "`split_val.val_fraction` is 0; it must be greater than 0"),
        (lambda p: p["split_val"].update(val_fraction=NAN), "`split_val.val_fraction` is nan; it must be a finite"),
        (lambda p: p["inference"].update(threshold=NAN), "`inference.threshold` is nan; it must be a finite number"),
        (lambda p: p["inference"].pop("threshold"), "`inference.threshold` is missing; add it to params.yaml"),
        (lambda p: p.update(seed=True), "`seed` is True; it must be a valid integer"),
        (lambda p: p.update(train=[1]), "`train` must be a mapping of keys"),
    ],
)
def test_bad_params_name_the_key(repo_params, tmp_path, edit, message):
    params = copy.deepcopy(repo_params)
    edit(params)
    with pytest.raises(CarvanaError) as error:
        load(tmp_path, params)
    assert str(error.value).startswith("params: ") and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "features, size, batch, block, message",
    [
        ([4] * 6, (32, 48), 8, 1, "has 6 levels, but a 32x48 image is halved to nothing after 5; use at most 5"),
        ([4] * 5, (32, 48), 1, 1, "a batch of 1 per process, and `train.model.features` halves a 32x48 image to 1x1"),
        (
            [4] * 5,
            (32, 48),
            8,
            2,
            "a 16x24 image (prepare's, folded by space_to_depth 2) is halved to nothing after 4; use at most 4 "
            "features or raise prepare.image_height/image_width to at least 64",
        ),
    ],
)
def test_model_depth_must_fit_the_image(repo_params, tmp_path, features, size, batch, block, message):
    repo_params["train"]["model"].update(features=features, space_to_depth=block)
    repo_params["prepare"].update(image_height=size[0], image_width=size[1])
    repo_params["train"]["batch_size"] = batch
    with pytest.raises(CarvanaError, match=re.escape(message)):
        load(tmp_path, repo_params)
    repo_params["train"]["model"]["features"] = features[:-1]
    assert load(tmp_path, repo_params).train.model.features == features[:-1]


def test_a_space_to_depth_stem_needs_whole_blocks(repo_params, tmp_path):
    repo_params["train"]["model"]["space_to_depth"] = 5
    with pytest.raises(CarvanaError, match="96x144 is not made of 5x5 blocks; make prepare.image_height and image_w"):
        load(tmp_path, repo_params)


def test_yaml_scientific_notation_without_dot_is_a_float(repo_params, tmp_path):
    repo_params["train"]["lr"] = "1e-4"
    assert load(tmp_path, repo_params).train.lr == 1e-4


def test_carvana_params_lists_every_key_with_its_bounds_value_and_help(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    params_main([])
    lines = capsys.readouterr().out.splitlines()
    lr = next(line for line in lines if line.startswith("train.lr "))
    assert lr.split("  ") == ["train.lr", "float", "> 0, <= 1", "= 0.001", "Adam's learning rate"]
    assert any(line.startswith("download.synthetic.jpeg_quality ") for line in lines)
    with pytest.raises(CarvanaError, match=r"no param `train.lrr` \(did you mean train.lr\?\)"):
        params_main(["train.lrr"])


def test_an_unknown_key_gets_the_nearest_one(repo_params):
    repo_params["train"]["epoch"] = 3
    with pytest.raises(CarvanaError, match=r"unknown key `train.epoch` \(did you mean epochs\?\)"):
        parse(repo_params)


@pytest.fixture
def params_file(repo_params, tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params))
    return path


def test_seed_preset_is_the_tutorial_recipe(params_file):
    assert "seed" in available()
    args = set_args(["seed"], params_file)
    assert "train.model.features=[64,128,256,512]" in args
    assert "train.lr=0.0001" in args and "prepare.image_height=160" in args and 'train.loss="bce"' in args
    assert args[::2] == ["-S"] * (len(args) // 2)


def test_presets_apply_in_turn(params_file):
    args = set_args(["cpu", "final"], params_file)
    assert "train.epochs=40" in args and "split_val.val_cars=0" in args and "split_val.folds=null" in args


def test_the_lean_preset_keeps_the_cpu_recipe_but_its_network_epochs_kept_epoch_and_one_car(params_file):
    cpu = set(set_args(["cpu"], params_file)[1::2])
    lean = set(set_args(["cpu", "lean"], params_file)[1::2])
    assert cpu - lean == {"train.epochs=40", "train.model.features=[16,32,64,128]"}
    changed = {"train.epochs=50", 'train.keep="last"', "train.model.features=[8,16,32,64]", "inference.one_car=true"}
    assert lean - cpu == changed


def test_the_sharp_preset_is_the_lean_recipe_at_384x576(params_file):
    lean = set(set_args(["cpu", "lean"], params_file)[1::2])
    sharp = set(set_args(["cpu", "lean", "sharp"], params_file)[1::2])
    assert lean - sharp == {"prepare.image_height=256", "prepare.image_width=384"}
    assert sharp - lean == {"prepare.image_height=384", "prepare.image_width=576"}


def test_the_long_preset_is_the_sharp_recipe_for_66_epochs(params_file):
    sharp = set(set_args(["cpu", "lean", "sharp"], params_file)[1::2])
    long = set(set_args(["cpu", "lean", "sharp", "long"], params_file)[1::2])
    assert sharp - long == {"train.epochs=50"}
    assert long - sharp == {"train.epochs=66"}


def test_the_mid_preset_is_the_lean_recipe_at_320x480_for_95_epochs(params_file):
    lean = set(set_args(["cpu", "lean"], params_file)[1::2])
    mid = set(set_args(["cpu", "lean", "mid"], params_file)[1::2])
    assert lean - mid == {"prepare.image_height=256", "prepare.image_width=384", "train.epochs=50"}
    assert mid - lean == {"prepare.image_height=320", "prepare.image_width=480", "train.epochs=95"}
    assert set(set_args(["cpu", "lean", "sharp", "long", "mid"], params_file)) == set(
        set_args(["cpu", "lean", "mid"], params_file)
    )


def test_parse_rejects_non_mapping():
    with pytest.raises(CarvanaError, match="must be a mapping"):
        parse([1, 2])


def test_a_key_given_twice_is_refused(tmp_path, repo_params):
    text = yaml.safe_dump(repo_params, sort_keys=False).replace("seed: 42\n", "seed: 42\nseed: 7\n")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(CarvanaError, match=r"params.yaml: `seed` is given twice \(line 2\); keep one"):
        load_params(tmp_path / "params.yaml")
