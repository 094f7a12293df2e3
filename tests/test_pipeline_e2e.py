"""The real `dvc repro` and `dvc exp run -S` on a tiny synthetic dataset, checked in stages/ and MLflow."""

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo_frame
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace

from carvana.data.layout import car_of
from carvana.inference import rle
from carvana.model.checkpoint import load_checkpoint
from carvana.model.device import Precision, device_name
from carvana.model.flops import training_flops_per_image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workspace(tiny_pipeline: Workspace) -> Workspace:
    return tiny_pipeline


def runs(ws: Workspace):
    client = MlflowClient(tracking_uri=ws.tracking_uri)
    experiment = client.get_experiment_by_name("carvana")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_download_writes_a_validated_kaggle_layout(workspace):
    images = sorted((workspace.root / "stages/download/train").glob("*.jpg"))
    masks = sorted((workspace.root / "stages/download/train_masks").glob("*_mask.gif"))
    assert len(images) == len(masks) == 4 * 16
    assert all(re.fullmatch(r"[0-9a-f]{12}_\d{2}", p.stem) for p in images)
    with Image.open(images[0]) as photo:
        assert photo.size == (240, 160)


def test_split_holds_out_whole_cars(workspace):
    train = (workspace.root / "stages/split_val/train.txt").read_text().split()
    val = (workspace.root / "stages/split_val/val.txt").read_text().split()
    assert len(train) + len(val) == 64
    assert {car_of(i) for i in train}.isdisjoint({car_of(i) for i in val})
    assert len({car_of(i) for i in val}) == 1


def test_prepare_caches_both_splits_at_the_model_resolution(workspace):
    for split, count in (("train", 48), ("val", 16)):
        images = np.load(workspace.root / f"stages/prepare/{split}/images.npy", mmap_mode="r")
        masks = np.load(workspace.root / f"stages/prepare/{split}/masks.npy", mmap_mode="r")
        assert images.shape == (count, 32, 48, 3) and masks.shape == (count, 32, 48)
        ids = (workspace.root / f"stages/prepare/{split}/ids.txt").read_text().split()
        assert ids == (workspace.root / f"stages/split_val/{split}.txt").read_text().split()


def test_train_writes_checkpoints_metrics_and_plots(workspace):
    best = load_checkpoint(workspace.root / "stages/train/checkpoints/best.pt")
    last = load_checkpoint(workspace.root / "stages/train/checkpoints/last.pt")
    for checkpoint in (best, last):
        assert checkpoint["image_size"] == [32, 48] and checkpoint["model_config"]["features"] == [4, 8, 16]
        assert set(checkpoint) == {"model", "model_config", "image_size", "params", "epoch", "metrics"}
    assert last["epoch"] == 2
    metrics = workspace.json("stages/train/metrics.json")
    dice = {int(row.split("\t")[0]): float(row.split("\t")[1]) for row in plot_rows(workspace, "dice")}
    assert list(dice) == [1, 2]
    assert metrics["best_epoch"] == best["epoch"] == max(dice, key=lambda epoch: (dice[epoch], -epoch))
    assert metrics["val_dice"] == pytest.approx(dice[metrics["best_epoch"]], abs=1e-6)
    assert best["metrics"]["val_dice"] == metrics["val_dice"]
    # which machine and number format made these figures: another CPU kind lands on others
    cpu = torch.device("cpu")
    assert metrics["trained_on"] == {"device": device_name(cpu), "precision": Precision.choose(cpu, "auto").name}
    # what it cost on any machine: 2 epochs of 6 batches of 8 photos (48 train photos), a training step each
    step = training_flops_per_image({"in_channels": 3, "out_channels": 1, "features": [4, 8, 16]}, (32, 48))
    assert metrics["train_tflops"] == pytest.approx(2 * 48 * step / 1e12, rel=1e-3)
    loss = plot_rows(workspace, "loss", header=True)
    assert loss[0].split("\t") == ["epoch", "train_loss", "val_loss"] and len(loss) == 3


def plot_rows(workspace: Workspace, name: str, header: bool = False) -> list[str]:
    rows = (workspace.root / f"stages/train/plots/{name}.tsv").read_text().splitlines()
    return rows if header else rows[1:]


def test_evaluate_scores_at_train_and_full_resolution(workspace):
    metrics = workspace.json("stages/evaluate/metrics.json")
    assert {"dice", "iou", "accuracy", "dice_full", "iou_full", "accuracy_full"} <= metrics.keys()
    assert metrics["images"] == 16
    # the repaint check: the val cars in each paint of evaluate.repaint, and the worst of them
    repainted = metrics["repaint_dice_full"]
    assert set(repainted) == {"yellow", "black"}
    assert all(0 <= dice <= 1 for dice in repainted.values())
    assert metrics["worst_paint_dice_full"] == min(repainted.values()) == repainted[metrics["worst_paint"]]
    rows = (workspace.root / "stages/evaluate/per_image.tsv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("id\tdice\tdice_full")


def test_evaluate_writes_the_val_masks_and_the_model_with_its_settings(workspace):
    with gzip.open(workspace.root / "stages/evaluate/masks.csv.gz", "rt") as file:
        rows = list(csv.reader(file))
    val = (workspace.root / "stages/split_val/val.txt").read_text().split()
    assert rows[0] == ["img", "rle_mask"] and [row[0] for row in rows[1:]] == [f"{i}.jpg" for i in val]
    mask = rle.decode(rows[1][1], (160, 240))
    assert 0 < mask.mean() <= 1
    scored = load_checkpoint(workspace.root / "stages/evaluate/model.pt")
    trained = load_checkpoint(workspace.root / "stages/train/checkpoints/best.pt")
    assert scored["inference"] == {"threshold": 0.5, "tta": False, "refine": 0, "edge_refiner": True, "one_car": True}
    refiner = torch.load(workspace.root / "stages/train_refiner/refiner.pt", weights_only=True)
    assert all(torch.equal(scored["edge_refiner"]["model"][k], v) for k, v in refiner["model"].items())
    assert all(torch.equal(scored["model"][k], trained["model"][k]) for k in trained["model"])


def test_render_masks_draws_evaluates_masks_and_a_sheet(workspace):
    assert len(list((workspace.root / "stages/render_masks/overlays").glob("*.png"))) == 16
    with Image.open(workspace.root / "stages/render_masks/worst_cases.png") as sheet:
        assert sheet.width > 120


def test_one_mlflow_run_holds_everything(workspace):
    client, found = runs(workspace)
    assert len(found) == 1
    run = found[0]
    run_id = workspace.json("stages/train/mlflow_run.json")["run_id"]
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.001" and run.data.params["seed"] == "42"
    assert [m.step for m in client.get_metric_history(run_id, "val_dice")] == [1, 2]
    tflops = [m.value for m in client.get_metric_history(run_id, "train_tflops")]
    assert tflops == pytest.approx([tflops[0], 2 * tflops[0]]) and tflops[0] > 0  # the cost so far, epoch by epoch
    assert {"eval_dice", "eval_dice_full", "best_val_dice", "eval_repaint_yellow_dice_full"} <= run.data.metrics.keys()
    refiner = workspace.json("stages/train_refiner/metrics.json")
    assert run.data.metrics["refiner_tflops"] == refiner["refiner_tflops"] > 0
    assert [m.step for m in client.get_metric_history(run_id, "refiner_loss")] == [6]
    assert run.data.tags["train_refiner.steps"] == "6"
    assert run.data.tags["eval_worst_paint"] == workspace.json("stages/evaluate/metrics.json")["worst_paint"]
    assert any(key.startswith("system/") for key in run.data.metrics)
    assert run.data.tags["git.commit"] and run.data.tags["stage"] == "train"
    assert run.data.tags["trained_on.device"] == workspace.json("stages/train/metrics.json")["trained_on"]["device"]
    assert run.info.artifact_uri.startswith((workspace.root / "mlruns" / "artifacts").as_uri())
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"checkpoints", "images", "render_masks", "evaluate", "edge_refiner"} <= artifacts
    assert {a.path for a in client.list_artifacts(run_id, "checkpoints")} == {
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    }
    assert "render_masks/worst_cases.png" in {a.path for a in client.list_artifacts(run_id, "render_masks")}
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    assert sorted(model.name for model in models) == ["model", "unet"]


def test_the_pytorch_model_in_the_run_predicts(workspace):
    import mlflow

    client, found = runs(workspace)
    (model,) = client.search_logged_models([found[0].info.experiment_id], filter_string="name = 'unet'")
    mlflow.set_tracking_uri(workspace.tracking_uri)
    loaded = mlflow.pytorch.load_model(model.model_uri)
    for batch in (1, 3):
        assert loaded(torch.zeros(batch, 3, 32, 48)).shape == (batch, 1, 32, 48)


def test_the_registered_champion_takes_photos_and_ships_its_code(workspace):
    import mlflow

    client, found = runs(workspace)
    (version,) = client.search_model_versions("name = 'carvana-unet'")
    assert version.run_id == found[0].info.run_id
    assert client.get_model_version_by_alias("carvana-unet", "champion").version == version.version
    mlflow.set_tracking_uri(workspace.tracking_uri)
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/carvana-unet@champion"))
    assert (model_dir / "code/carvana/inference/serving.py").is_file()
    assert (model_dir / "artifacts/model.pt").read_bytes() == (workspace.root / "stages/evaluate/model.pt").read_bytes()
    photo = min((workspace.root / "stages/download/train").glob("*.jpg"))
    champion = mlflow.pyfunc.load_model("models:/carvana-unet@champion")
    answer = champion.predict(photo_frame(photo))
    assert list(answer.columns) == ["rle", "width", "height"]
    assert (answer["width"][0], answer["height"][0]) == (240, 160)
    assert rle.decode(answer["rle"][0], (160, 240)).any()


def test_dvc_plots_render_curves_and_overlays(workspace):
    plots = json.loads(workspace.run("dvc", "plots", "show", "--json").stdout)["data"]
    for name, column in (("loss", "val_loss"), ("dice", "val_dice"), ("iou", "val_iou"), ("accuracy", "val_accuracy")):
        (curve,) = plots[name]
        assert curve["type"] == "vega"
        assert sorted({row["epoch"] for row in curve["content"]["data"]["values"] if column in row}) == ["1", "2"]
    images = [key for key in plots if key.startswith("stages/render_masks/")]
    assert "stages/render_masks/worst_cases.png" in images and len(images) == 1 + 16
    assert all(plots[key][0]["type"] == "image" for key in images)


def test_second_repro_runs_nothing(workspace):
    result = workspace.run("dvc", "repro")
    assert "didn't change, skipping" in result.stdout
    assert "Running stage" not in result.stdout
    assert len(runs(workspace)[1]) == 1


def test_exp_run_makes_a_tagged_run_and_dvc_metrics(workspace):
    workspace.run("dvc", "exp", "run", "-n", "faster-lr", "-S", "train.lr=0.003")
    client, found = runs(workspace)
    assert len(found) == 2
    new = found[-1]
    assert new.data.tags["dvc.exp_name"] == "faster-lr" and new.info.run_name == "faster-lr"
    assert new.data.params["train.lr"] == "0.003"
    assert "eval_dice_full" in new.data.metrics  # evaluate logged into the same run
    best = max(found, key=lambda run: run.data.metrics["eval_dice_full"])
    champion = client.get_model_version_by_alias("carvana-unet", "champion")
    assert champion.run_id == best.info.run_id
    assert len(client.search_model_versions("name = 'carvana-unet'")) == 2
    shown = json.loads(workspace.run("dvc", "exp", "show", "--json").stdout)
    experiments = [exp for rev in shown for exp in (rev.get("experiments") or [])]
    named = [exp for exp in experiments if exp.get("name") == "faster-lr"]
    assert named, shown
    data = named[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.003
    assert "val_dice" in data["metrics"]["stages/train/metrics.json"]["data"]
    assert "dice_full" in data["metrics"]["stages/evaluate/metrics.json"]["data"]


def test_predict_writes_the_masks_evaluate_scored(workspace, tmp_path):
    """Decoding straight to the model's size (predict) and prepare's arrays (evaluate) give the same pixels: on torch,
    as evaluate runs the model, the same masks."""
    val = (workspace.root / "stages/split_val/val.txt").read_text().split()
    photos = [f"stages/download/train/{image_id}.jpg" for image_id in val]
    submission = tmp_path / "val.csv.gz"
    result = workspace.run(
        "python", "-m", "carvana.predict", *photos, "--backend", "torch", "--submission", str(submission)
    )
    assert "predict: model models:/carvana-unet@champion (threshold 0.5, learned edges, one car)" in result.stdout
    assert unzipped(submission) == unzipped(workspace.root / "stages/evaluate/masks.csv.gz")


def unzipped(path: Path) -> bytes:
    with gzip.open(path) as file:
        return file.read()


def test_a_refiner_param_refits_the_refiner_alone_into_the_same_run(workspace):
    before = len(runs(workspace)[1])
    result = workspace.run("dvc", "exp", "run", "-n", "longer-refit", "-S", "train_refiner.steps=7")
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    # the network is not trained again; evaluate reruns only if the refit changed refiner.pt (the tiny network calls
    # every pixel car: no edge, nothing for the refiner to learn)
    assert ran[:2] == ["Running stage 'check_params':", "Running stage 'train_refiner':"]
    assert "Running stage 'train':" not in ran
    client, found = runs(workspace)
    assert len(found) == before  # no new run: the network's own run gets the refit
    run_id = workspace.json("stages/train/mlflow_run.json")["run_id"]
    run = client.get_run(run_id)
    assert run.data.tags["train_refiner.steps"] == "7"
    assert [m.step for m in client.get_metric_history(run_id, "refiner_loss")][-1] == 7
