"""Cross-validation summary: `python -m carvana.cv [--out DIR]`.

Run each fold as an experiment (`dvc exp run --queue -n cpu-f0 -S split_val.folds=4 -S split_val.fold=0`, ... then
`dvc queue start`); this reads their MLflow runs, groups them into recipes (runs whose params are alike but for
`split_val.fold`), and prints per recipe and fold the full-resolution val dice (Kaggle's score), the worst paint of
the repaint check (evaluate.repaint), the worst val photo and the training cost (TFLOPs, the same on any machine,
and minutes on the machine that trained), with the recipe's mean and standard deviation over its folds; then each
recipe's dice per paint. It writes the tables to DIR/cv.md and a plot to DIR/cv.png: dice per fold for each recipe,
and full-resolution val dice against training TFLOPs (evaluate's, mean and sd over the folds, at the training's
cost; epoch by epoch too where the runs logged it: `train.full_res_every`). With `--fold N` it compares the recipes
on that one fold (e.g. the presets, to pick a training budget: `dvc exp run -n seed-f0 $(carvana preset seed) -S
split_val.folds=4 -S split_val.fold=0 -S train.full_res_every=1`, then `--fold 0 --recipe default --recipe seed
--recipe cpu`)."""

import argparse
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from carvana.core.atomic import atomic_write, write_text
from carvana.core.cli import Parser
from carvana.core.errors import CarvanaError, run_main
from carvana.core.redact import redact
from carvana.inference.settings import ADDED_LATER
from carvana.tracking.store import EXPERIMENT, connect, tracking_uri
from carvana.training.resume import EXECUTION_ONLY

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
from matplotlib.ticker import LogFormatter  # noqa: E402

FOLD_SUFFIX = re.compile(r"[-_]?f(old)?\d+$")
CURVE = ("train_tflops", "val_dice_full")
REPAINT, FULL = "eval_repaint_", "_dice_full"  # eval_repaint_<paint>_dice_full
DICE_TICKS = (0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)
# params added after fold runs were logged, with the value that does what those runs did
BEFORE_PARAMS = {
    "train.model.block": "conv",
    "train.model.space_to_depth": "1",
    "train.augment.colour_p": "0.0",
    "train.augment.repaint_p": "0.0",
    "train.augment.repaint_feather": "0.0",
    "train.augment.shift_scale_p": "0.0",
    "train.augment.scale_limit": "0.0",
    "train.augment.shift_limit": "0.0",
    "train.keep": "best",
}


@dataclass(frozen=True)
class Fold:
    fold: int
    run_id: str
    dice: float  # eval_dice_full
    worst_dice: float
    worst_image: str
    tflops: float
    minutes: float
    paints: dict[str, float]  # the repaint check's dice per paint (evaluate.repaint), if it ran


def worst_paint(paints: dict[str, float]) -> str:
    if not paints:
        return "n/a"
    paint = min(paints, key=paints.__getitem__)
    return f"{paints[paint]:.4f} ({paint})"


@dataclass(frozen=True)
class Recipe:
    label: str
    folds: int
    runs: list[Fold]

    @property
    def dice(self) -> list[float]:
        return [fold.dice for fold in self.runs]

    @property
    def paints(self) -> dict[str, float]:
        """Dice per paint, the mean over the folds that scored every one."""
        scored = [fold.paints for fold in self.runs if fold.paints]
        if not scored:
            return {}
        return {
            paint: statistics.mean(p[paint] for p in scored) for paint in scored[0] if all(paint in p for p in scored)
        }

    @property
    def worst(self) -> Fold:
        return min(self.runs, key=lambda fold: fold.worst_dice)


def recipes(client: MlflowClient, experiment: str, fold: int | None = None) -> list[Recipe]:
    """Fold runs that finished evaluation (of `fold` only, when given), grouped by everything but the fold that
    decides their masks; the newest run of each fold."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise CarvanaError(
            f"no MLflow experiment {experiment!r} in {redact(tracking_uri())}: run the fold experiments first"
        )
    runs = client.search_runs(
        [found.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"]
    )
    groups: dict[tuple, dict[int, Run]] = {}
    for run in runs:
        params = run.data.params
        if params.get("split_val.folds", "None") == "None" or "eval_dice_full" not in run.data.metrics:
            continue
        if fold is not None and int(params["split_val.fold"]) != fold:
            continue
        groups.setdefault(recipe_key(run), {}).setdefault(int(params["split_val.fold"]), run)
    if not groups:
        which = "fold runs" if fold is None else f"runs of fold {fold}"
        raise CarvanaError(
            f"no finished {which} in {redact(tracking_uri())} (runs with split_val.folds set and an evaluate stage); "
            "run them with `dvc exp run -S split_val.folds=4 -S split_val.fold=N`"
        )
    return [recipe_of(index, by_fold) for index, by_fold in enumerate(groups.values(), 1)]


def recipe_key(run: Run) -> tuple[tuple[str, str], ...]:
    """What decides a fold's masks but the fold: the params, and the tags of the settings evaluate made the masks
    with (`inference.*`) and of the refiner when it made them (`train_refiner.*`: a refit keeps the network's run)."""
    params = BEFORE_PARAMS | run.data.params
    decided = {k: v for k, v in params.items() if k != "split_val.fold" and k not in EXECUTION_ONLY}
    tags = {f"inference.{k}": str(v) for k, v in ADDED_LATER.items()} | run.data.tags  # runs older than a setting
    groups = ("inference.", "train_refiner.") if tags["inference.edge_refiner"] == "True" else ("inference.",)
    decided |= {k: v for k, v in tags.items() if k.startswith(groups) and not k.endswith(".git.commit")}
    return tuple(sorted(decided.items()))


def recipe_of(index: int, by_fold: dict[int, Run]) -> Recipe:
    """The recipe named after its experiments (`cpu-f0`, `cpu-f1`: `cpu`; the most common name when they
    differ), or numbered when they have none."""
    names = Counter(FOLD_SUFFIX.sub("", run.data.tags.get("dvc.exp_name", "")) for run in by_fold.values())
    name = names.most_common(1)[0][0]
    label = name or f"recipe {index}"
    folds = int(next(iter(by_fold.values())).data.params["split_val.folds"])
    return Recipe(label, folds, [fold_of(fold, by_fold[fold]) for fold in sorted(by_fold)])


def fold_of(fold: int, run: Run) -> Fold:
    """A fold's scores and training cost: the network's, and the learned boundary refiner's when it made the masks."""
    metrics = run.data.metrics
    refined = run.data.tags.get("inference.edge_refiner") == "True"
    refiner = {key: metrics.get(f"refiner_{key}", 0.0) if refined else 0.0 for key in ("tflops", "minutes")}
    return Fold(
        fold,
        run.info.run_id,
        metrics["eval_dice_full"],
        metrics.get("eval_worst_dice_full", float("nan")),
        run.data.tags.get("eval_worst_image", "?"),
        metrics.get("train_tflops", float("nan")) + refiner["tflops"],
        metrics.get("train_minutes", float("nan")) + refiner["minutes"],
        {key[len(REPAINT) : -len(FULL)]: value for key, value in metrics.items() if key.startswith(REPAINT)},
    )


def chosen(found: list[Recipe], labels: list[str]) -> list[Recipe]:
    """The recipes named `labels`, in that order."""
    by_label = {recipe.label: recipe for recipe in found}
    missing = [label for label in labels if label not in by_label]
    if missing:
        raise CarvanaError(f"no recipe {', '.join(map(repr, missing))}; found: {', '.join(by_label)}")
    return [by_label[label] for label in labels]


def table(found: list[Recipe], summaries: bool = True) -> str:
    lines = [
        "| recipe | fold | dice (full resolution) | worst paint | worst val photo | training TFLOPs | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for recipe in found:
        for fold in recipe.runs:
            worst = f"{fold.worst_dice:.4f} ({fold.worst_image})"
            cost = f"{fold.tflops:.4g} | {fold.minutes:.1f}"
            lines.append(
                f"| {recipe.label} | {fold.fold} | {fold.dice:.4f} | {worst_paint(fold.paints)} | {worst} | {cost} |"
            )
        if not summaries:
            continue
        spread = f"{statistics.stdev(recipe.dice):.4f}" if len(recipe.dice) > 1 else "n/a"
        complete = "" if len(recipe.runs) == recipe.folds else f" ({len(recipe.runs)} of {recipe.folds} folds)"
        cost = " | ".join(
            format(statistics.mean(getattr(fold, what) for fold in recipe.runs), spec)
            for what, spec in (("tflops", ".4g"), ("minutes", ".1f"))
        )
        lines.append(
            f"| **{recipe.label}**{complete} | mean ± sd | **{statistics.mean(recipe.dice):.4f} ± {spread}** | "
            f"{worst_paint(recipe.paints)} | {recipe.worst.worst_dice:.4f} ({recipe.worst.worst_image}) | {cost} |"
        )
    return "\n".join(lines) + "\n" + paint_table(found)


def paint_table(found: list[Recipe]) -> str:
    """Each recipe's dice per paint of the repaint check, the mean over its folds."""
    painted = [recipe for recipe in found if recipe.paints]
    if not painted:
        return ""
    paints = list(painted[0].paints)
    lines = ["", "| recipe | " + " | ".join(paints) + " |", "| --- |" + " --- |" * len(paints)]
    for recipe in painted:
        lines.append(
            f"| {recipe.label} | " + " | ".join(f"{recipe.paints.get(p, float('nan')):.4f}" for p in paints) + " |"
        )
    return "\n".join(lines) + "\n"


def learning_curve(client: MlflowClient, recipe: Recipe) -> tuple[list[float], list[float]]:
    """Training TFLOPs and full-resolution val dice at the epochs where every fold scored them, averaged over the
    folds."""
    histories = [
        {metric: {m.step: m.value for m in client.get_metric_history(run.run_id, metric)} for metric in CURVE}
        for run in recipe.runs
    ]
    steps = sorted(set.intersection(*(set(h["train_tflops"]) & set(h["val_dice_full"]) for h in histories)))
    tflops, dice = ([statistics.mean(h[metric][step] for h in histories) for step in steps] for metric in CURVE)
    return tflops, dice


def plot(client: MlflowClient, found: list[Recipe], path: Path, fold: int | None = None) -> None:
    figure, (per_fold, per_cost) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, recipe in enumerate(found):
        per_fold.scatter([index] * len(recipe.runs), recipe.dice, label=None)
        per_fold.hlines(statistics.mean(recipe.dice), index - 0.25, index + 0.25)
        tflops, dice = learning_curve(client, recipe)
        if tflops:
            per_cost.plot(tflops, dice, "o-", ms=3, color=f"C{index}")
        spread = statistics.stdev(recipe.dice) if len(recipe.dice) > 1 else 0
        cost = statistics.mean(fold.tflops for fold in recipe.runs)
        per_cost.errorbar(cost, statistics.mean(recipe.dice), spread, fmt="D", color=f"C{index}", label=recipe.label)
    per_fold.set_xticks(range(len(found)), [recipe.label for recipe in found])
    which = "per fold (line: mean)" if fold is None else f"on fold {fold}"
    per_fold.set(title=f"Val dice at 1918x1280 {which}", ylabel="dice")
    per_cost.set(
        title="Val dice at 1918x1280 against training cost" + (" (mean over folds)" if fold is None else ""),
        xlabel="training TFLOPs",
        ylabel="dice",
    )
    # a logit axis spreads 0.9, 0.99, 0.999 equally, so the differences near 1 show; it starts below the worst recipe
    bottom = min(0.9, max(0.05, 0.8 * min(min(recipe.dice) for recipe in found)))
    ticks = [tick for tick in DICE_TICKS if tick >= bottom]
    for axes in (per_fold, per_cost):
        axes.set_yscale("logit", nonpositive="clip")
        axes.set_ylim(bottom, DICE_TICKS[-1])
        axes.set_yticks(ticks, [f"{tick:g}" for tick in ticks])
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
    per_cost.set_xscale("log")  # a small recipe and one 30 times its cost on one axis
    per_cost.xaxis.set_major_formatter("{x:g}")
    per_cost.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))  # not 2x10^2
    if per_cost.has_data():
        per_cost.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def main(argv: list[str] | None = None) -> None:
    parser = Parser("carvana cv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("cv"), help="folder for cv.md and cv.png (default: cv)")
    parser.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment (default: {EXPERIMENT})")
    parser.add_argument("--fold", type=int, help="compare the recipes on this fold only (no means)")
    parser.add_argument("--recipe", action="append", help="only this recipe (repeat for several; default: all)")
    args = parser.parse_args(argv)
    connect()
    client = MlflowClient()
    found = recipes(client, args.experiment, args.fold)
    if args.recipe:
        found = chosen(found, args.recipe)
    text = table(found, summaries=args.fold is None)
    write_text(args.out / "cv.md", text)
    plot(client, found, args.out / "cv.png", args.fold)
    print(text + f"\n(written to {args.out / 'cv.md'} and {args.out / 'cv.png'})")


if __name__ == "__main__":
    run_main(main)
