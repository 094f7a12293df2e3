"""Cross-validation as ordinary experiments, then `python -m carvana.cv` summarises them from MLflow."""

import re
import statistics

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace

pytestmark = pytest.mark.e2e


def test_fold_experiments_are_summarised(tmp_path):
    ws = Workspace(tmp_path / "ws", extra={"train": {"full_res_every": 1}})
    for fold in (0, 1):
        ws.run("dvc", "exp", "run", "-n", f"tiny-f{fold}", "-S", "split_val.folds=2", "-S", f"split_val.fold={fold}")
    ws.run("dvc", "exp", "run", "-n", "no-folds")  # not cross-validation: left out
    result = ws.run("python", "-m", "carvana.cv", "--out", "cv")
    print(result.stdout)

    client = MlflowClient(ws.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("carvana").experiment_id])
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
    tflops = {run.data.tags["dvc.exp_name"]: run.data.metrics["train_tflops"] for run in runs}
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
