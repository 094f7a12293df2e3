"""Cross-validation as ordinary experiments, then `python -m carvana.cv` summarises them from MLflow; then a final
fit of the recipe on every car."""

import gzip
import re
import statistics

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace

from carvana.model.checkpoint import load_checkpoint
from carvana.train import FINAL_FIT_NOTE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def folds(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Two fold experiments of one recipe, and an experiment that is not cross-validation."""
    ws = Workspace(tmp_path_factory.mktemp("cv") / "ws", extra={"train": {"full_res_every": 1}})
    for fold in (0, 1):
        ws.run("dvc", "exp", "run", "-n", f"tiny-f{fold}", "-S", "split_val.folds=2", "-S", f"split_val.fold={fold}")
    ws.run("dvc", "exp", "run", "-n", "no-folds")  # not cross-validation: left out
    return ws


def test_fold_experiments_are_summarised(folds):
    ws = folds
    result = ws.run("python", "-m", "carvana.cv", "--out", "cv")
    print(result.stdout)

    client = MlflowClient(ws.tracking_uri)
    found = client.search_runs([client.get_experiment_by_name("carvana").experiment_id])
    runs = [run for run in found if "final_fit" not in run.data.tags]
    dice = {run.data.tags["dvc.exp_name"]: run.data.metrics["eval_dice_full"] for run in runs}
    folds_table, paints_table = result.stdout.split("\n\n")[:2]
    rows = [line for line in folds_table.splitlines() if line.startswith("| tiny")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1"]
    assert [float(row.split(" | ")[2]) for row in rows] == pytest.approx([dice["tiny-f0"], dice["tiny-f1"]], abs=1e-4)
    worst_paint = {
        run.data.tags["dvc.exp_name"]: f"{run.data.metrics['eval_worst_paint_dice_full']:.4f} "
        f"({run.data.tags['eval_worst_paint']})"
        for run in runs
    }
    assert [row.split(" | ")[3] for row in rows] == [worst_paint["tiny-f0"], worst_paint["tiny-f1"]]
    assert paints_table.splitlines()[0] == "| recipe | yellow | black |"
    assert paints_table.splitlines()[2].startswith("| tiny | ")
    # the network's training and, as the tiny params make masks with it, the learned boundary refiner's
    tflops = {
        run.data.tags["dvc.exp_name"]: run.data.metrics["train_tflops"] + run.data.metrics["refiner_tflops"]
        for run in runs
    }
    assert [float(row.split(" | ")[5]) for row in rows] == pytest.approx([tflops["tiny-f0"], tflops["tiny-f1"]], 1e-3)
    summary = next(line for line in result.stdout.splitlines() if line.startswith("| **tiny**"))
    mean, sd = map(float, re.search(r"\*\*([\d.]+) ± ([\d.]+)\*\*", summary).groups())
    assert mean == pytest.approx(statistics.mean([dice["tiny-f0"], dice["tiny-f1"]]), abs=1e-4)
    assert sd == pytest.approx(statistics.stdev([dice["tiny-f0"], dice["tiny-f1"]]), abs=1e-4)
    assert "no-folds" not in result.stdout and "recipe 1" not in result.stdout  # every recipe named
    assert (ws.root / "cv" / "cv.md").read_text() in result.stdout
    with Image.open(ws.root / "cv" / "cv.png") as picture:
        assert picture.width > 800

    one_fold = ws.run("python", "-m", "carvana.cv", "--fold", "1", "--out", "cv1").stdout
    rows = [line for line in one_fold.split("\n\n")[0].splitlines() if line.startswith("| tiny")]
    assert [row.split(" | ")[1] for row in rows] == ["1"]
    assert float(rows[0].split(" | ")[2]) == pytest.approx(dice["tiny-f1"], abs=1e-4)
    assert "mean ± sd |" not in one_fold
    refused = ws.run("python", "-m", "carvana.cv", "--fold", "5", "--out", "cv5", check=False)
    assert refused.returncode != 0 and "no finished runs of fold 5" in refused.stderr
    assert not (ws.root / "cv5").exists()
    refused = ws.run("python", "-m", "carvana.cv", "--recipe", "tiny", "--recipe", "big", "--out", "cv6", check=False)
    assert refused.returncode != 0 and "no recipe 'big'; found: tiny" in refused.stderr


def test_a_final_fit_trains_on_every_car_and_says_it_has_no_val_score(folds):
    """`carvana preset final` after the cross-validation: every car trains, nothing is scored, the champion stays."""
    ws = folds
    client = MlflowClient(ws.tracking_uri)
    champion = client.get_model_version_by_alias("carvana-unet", "champion").version
    summary = ws.run("python", "-m", "carvana.cv").stdout
    preset = ws.run("python", "-m", "carvana.preset", "final").stdout.split()
    result = ws.run("dvc", "exp", "run", "-n", "tiny-final", *preset)
    assert "no val images (a final fit)" in result.stdout

    train_ids = (ws.root / "stages/split_val/train.txt").read_text().split()
    assert len(train_ids) == 64 and (ws.root / "stages/split_val/val.txt").read_text().split() == []
    assert np.load(ws.root / "stages/prepare/val/images.npy").shape == (0, 32, 48, 3)
    metrics = ws.json("stages/train/metrics.json")
    assert metrics["best_epoch"] == 2 and "val_dice" not in metrics and metrics["train_tflops"] > 0
    assert load_checkpoint(ws.root / "stages/train/checkpoints/best.pt")["epoch"] == 2  # no val: the last epoch

    assert ws.json("stages/evaluate/metrics.json") == {"images": 0}
    with gzip.open(ws.root / "stages/evaluate/masks.csv.gz", "rt") as masks:
        assert masks.read() == "img,rle_mask\n"
    assert load_checkpoint(ws.root / "stages/evaluate/model.pt")["inference"]["threshold"] == 0.5
    assert not list((ws.root / "stages/render_masks/overlays").iterdir())
    with Image.open(ws.root / "stages/render_masks/worst_cases.png") as sheet:
        assert sheet.height < 50  # the caption alone

    experiment = client.get_experiment_by_name("carvana").experiment_id
    (run,) = client.search_runs([experiment], "attributes.run_name = 'tiny-final'")
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny-final"
    assert run.data.tags["final_fit"] == "true" and run.data.tags["mlflow.note.content"] == FINAL_FIT_NOTE
    assert run.data.params["split_val.val_cars"] == "0"
    assert {"train_loss", "train_tflops"} <= set(run.data.metrics)
    assert not [key for key in run.data.metrics if key.startswith(("val_", "eval_"))]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
    (version,) = client.search_model_versions(f"name = 'carvana-unet' and run_id = '{run.info.run_id}'")
    # never champion by itself (it has no score to beat the champion's with), and no recipe of the cross-validation
    assert client.get_model_version_by_alias("carvana-unet", "champion").version == champion
    assert ws.run("python", "-m", "carvana.cv").stdout == summary

    made_champion = (  # as docs/workflow.md says
        "from mlflow import MlflowClient; from carvana.tracking.store import setup; setup(); "
        f"MlflowClient().set_registered_model_alias('carvana-unet', 'champion', '{version.version}')"
    )
    ws.run("python", "-c", made_champion)
    assert client.get_model_version_by_alias("carvana-unet", "champion").version == version.version
    photo = ws.root / "stages/download/train" / f"{train_ids[0]}.jpg"
    ws.run("carvana", "predict", str(photo), "--masks", "masks")  # the champion
    with Image.open(ws.root / "masks" / f"{train_ids[0]}_mask.gif") as mask:
        assert mask.size == (240, 160)
