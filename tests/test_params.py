import copy

import pytest
import yaml

from carvana.errors import CarvanaError
from carvana.params import Params, flatten, load_params, parse
from carvana.preset import available, set_args


def load(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_params(path)


def test_repo_params_are_valid(repo_params, tmp_path):
    params = load(tmp_path, repo_params)
    assert params.download.source == "synthetic"
    assert flatten(params.train, "train.")["train.model.features"] == params.train.model.features


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["train"].update(lr="fast"), "`train.lr` must be a number"),
        (lambda p: p["train"].update(lrr=0.1), "unknown key `train.lrr`"),
        (lambda p: p["train"].update(epochs=0), "`train.epochs` is 0; it must be in 1..inf"),
        (lambda p: p["train"].update(epochs=2.5), "`train.epochs` must be int"),
        (lambda p: p["train"].update(loss="focal"), "`train.loss` is 'focal'; choose one of bce, bce_dice"),
        (lambda p: p["train"]["model"].update(features=[]), "`train.model.features` must be a non-empty list"),
        (lambda p: p["split_val"].update(val_fraction=1.5), "`split_val.val_fraction` is 1.5"),
        (lambda p: p["evaluate"].pop("threshold"), "`evaluate.threshold` is missing"),
        (lambda p: p.update(seed=True), "`seed` must be int"),
    ],
)
def test_bad_params_name_the_key(repo_params, tmp_path, edit, message):
    params = copy.deepcopy(repo_params)
    edit(params)
    with pytest.raises(CarvanaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, params)


def test_yaml_scientific_notation_without_dot_is_a_float(repo_params, tmp_path):
    repo_params["train"]["lr"] = "1e-4"
    assert load(tmp_path, repo_params).train.lr == 1e-4


def test_seed_preset_is_the_tutorial_recipe(repo_params, tmp_path):
    assert "seed" in available()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(repo_params))
    args = set_args("seed", path)
    assert "train.model.features=[64,128,256,512]" in args
    assert "train.lr=0.0001" in args and "prepare.image_height=160" in args and 'train.loss="bce"' in args
    assert args[::2] == ["-S"] * (len(args) // 2)


def test_parse_rejects_non_mapping():
    with pytest.raises(CarvanaError, match="must be a mapping"):
        parse(Params, [1, 2], "")
