"""carvana.cv's grouping of fold runs into recipes (the summary itself: tests/test_cv_e2e.py)."""

from mlflow.entities import Param, Run, RunData, RunInfo, RunTag

from carvana.cv import recipe_key


def fold_run(fold: int, tags: dict[str, str], **params: str) -> Run:
    logged = {"split_val.folds": "4", "split_val.fold": str(fold), "train.epochs": "40", "train.device": "cpu"} | params
    info = RunInfo(f"run{fold}", "1", "user", "FINISHED", 0, 1, "active")
    data = RunData(params=[Param(k, v) for k, v in logged.items()], tags=[RunTag(k, v) for k, v in tags.items()])
    return Run(info, data)


GUIDED = {"inference.tta": "True", "inference.refine": "8", "inference.edge_refiner": "False"}
LEARNED = {"inference.tta": "True", "inference.refine": "0", "inference.edge_refiner": "True"}
REFINER = {"train_refiner.steps": "1500", "train_refiner.git.commit": "abc"}


def test_folds_group_by_what_made_their_masks():
    assert recipe_key(fold_run(0, GUIDED)) == recipe_key(fold_run(3, GUIDED | {"evaluate.git.commit": "x"}))
    assert recipe_key(fold_run(0, GUIDED)) == recipe_key(fold_run(1, GUIDED, **{"train.device": "cuda"}))
    assert recipe_key(fold_run(0, GUIDED)) != recipe_key(fold_run(1, GUIDED, **{"train.epochs": "20"}))
    # the same network's masks made with the learned refiner are another recipe, and so is a refiner fitted longer
    assert recipe_key(fold_run(0, GUIDED)) != recipe_key(fold_run(1, LEARNED | REFINER))
    longer = REFINER | {"train_refiner.steps": "3000", "train_refiner.git.commit": "def"}
    assert recipe_key(fold_run(0, LEARNED | REFINER)) != recipe_key(fold_run(1, LEARNED | longer))
    assert recipe_key(fold_run(0, LEARNED | REFINER)) == recipe_key(fold_run(1, LEARNED | REFINER | {"x": "1"}))
    # a refiner that made no mask does not split a recipe; runs scored before the refiner existed had it off
    assert recipe_key(fold_run(0, GUIDED)) == recipe_key(fold_run(1, GUIDED | longer))
    before = {k: v for k, v in GUIDED.items() if k != "inference.edge_refiner"}
    assert recipe_key(fold_run(0, GUIDED)) == recipe_key(fold_run(1, before))


def test_a_param_added_later_splits_no_recipe_at_the_value_that_does_what_older_runs_did():
    older = fold_run(0, GUIDED)
    assert recipe_key(older) == recipe_key(fold_run(1, GUIDED, **{"train.model.block": "conv"}))
    assert recipe_key(older) != recipe_key(fold_run(1, GUIDED, **{"train.model.block": "separable"}))
    assert recipe_key(older) != recipe_key(fold_run(1, GUIDED, **{"train.augment.colour_p": "0.5"}))
