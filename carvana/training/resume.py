"""Resumable training: the state after each completed epoch, kept where DVC never looks.

DVC deletes a stage's outputs before running it and has no notion of a half-finished stage, so the
in-progress state cannot live in stages/train/. It lives in <repo>/.dvc/tmp/carvana-resume/<slot>/ instead:
git-ignored DVC scratch space, outside every output and the run-cache, and in the user's repository even when
a queued or --temp experiment runs in a temporary copy. The slot is the workspace, or the experiment's name in
a temp copy, so parallel queued experiments keep apart.

A run resumes only if everything that decides its result is what it was: the params, the prepared data and
the train stage's code. Otherwise it starts from epoch 1 and says what changed.
"""

import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from carvana.core.errors import CarvanaError
from carvana.core.outputs import prepared_digest
from carvana.core.paths import project_root, workspace_root
from carvana.core.pipeline import code_digest
from carvana.model.checkpoint import load_checkpoint, save_checkpoint

# train.* params that change how a run executes, not what it computes.
EXECUTION_ONLY = (
    "train.device",
    "train.num_workers",
    "train.panels_per_epoch",
    "train.compile",
    "train.full_res_every",
)
# What a published checkpoint carries: the weights and what rebuilding the model needs.
PUBLISHED = ("model", "model_config", "image_size", "params", "epoch", "metrics")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def fingerprint(params: dict[str, Any]) -> dict[str, Any]:
    """What decides a training run's result: its params, the prepared data and the train stage's code."""
    decisive = {key: value for key, value in params.items() if key not in EXECUTION_ONLY}
    return {"params": decisive, "data": prepared_digest(), "code": code_digest("train")}


def changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words."""
    found = []
    keys = saved["params"].keys() | current["params"].keys()
    params = sorted(key for key in keys if saved["params"].get(key) != current["params"].get(key))
    if params:
        found.append(f"params {', '.join(params)}")
    if saved["data"] != current["data"]:
        found.append("the prepared data (stages/prepare)")
    if saved["code"] != current["code"]:
        found.append("the train stage's code")
    return found


def restore(state: dict[str, Any], components: dict[str, Stateful]) -> None:
    for name, component in components.items():
        component.load_state_dict(state[name])


def slot() -> Path:
    name = "workspace" if workspace_root() == project_root() else f"exp-{os.environ.get('DVC_EXP_NAME', 'temp')}"
    return project_root() / ".dvc" / "tmp" / "carvana-resume" / name


@dataclass
class Progress:
    """A training run's bookkeeping: state in (`resume`), state out (`commit` after every epoch)."""

    folder: Path
    fingerprint: dict[str, Any]
    meta: dict[str, Any]  # model_config, image_size, params: what every checkpoint carries
    epoch: int = 0  # the last completed epoch
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    minutes: float = 0.0  # of training and val scoring so far, resumes included
    abandoned_run_id: str | None = None  # the run of a saved state that could not be resumed
    keep: str = "best"  # train.keep: the epoch best.pt holds, the best val dice's or the last

    def resume(self, components: dict[str, Stateful]) -> str:
        """Load the saved state into `components` if it belongs to this very run; say what happened."""
        path = self.folder / "last.pt"
        if not path.exists():
            return "starting from epoch 1"
        try:
            state = load_checkpoint(path)
            changed = changes(state["fingerprint"], self.fingerprint)
        except (CarvanaError, KeyError):
            self.discard()
            return f"not resuming: the saved state in {self.folder} is unreadable; starting from epoch 1"
        if changed:
            self.abandoned_run_id = state["run_id"]
            self.discard()
            return (
                f"not resuming the run interrupted after epoch {state['epoch']}: {' and '.join(changed)} changed "
                "since; starting from epoch 1"
            )
        restore(state, components)
        self.epoch, self.history, self.best, self.run_id = (
            state[key] for key in ("epoch", "history", "best", "run_id")
        )
        return f"resuming after epoch {self.epoch} (state in {self.folder})"

    def saved(self) -> bytes:
        """The resumed state as bytes, for the other processes: on other machines they have no file to read."""
        return (self.folder / "last.pt").read_bytes()

    @staticmethod
    def load(saved: bytes, components: dict[str, Stateful]) -> None:
        """State process 0 resumed (`saved`) into `components`, unchecked."""
        restore(torch.load(io.BytesIO(saved), map_location="cpu", weights_only=True), components)

    def commit(self, row: dict[str, float], run_id: str, components: dict[str, Stateful]) -> None:
        """Record a completed epoch. last.pt is written last: it is what a resume starts from."""
        self.epoch, self.run_id = int(row["epoch"]), run_id
        self.history.append(row)
        improved = (
            self.keep == "last" or not self.best or "val_dice" not in row or row["val_dice"] > self.best["val_dice"]
        )  # no val score (a final fit): the last
        self.best = row if improved else self.best
        weights = {**self.meta, "epoch": self.epoch, "metrics": row, "model": components["model"].state_dict()}
        if improved:
            save_checkpoint(self.folder / "best.pt", weights)
        bookkeeping = {
            "fingerprint": self.fingerprint,
            "history": self.history,
            "best": self.best,
            "run_id": run_id,
            "minutes": self.minutes,
        }
        others = {name: component.state_dict() for name, component in components.items() if name != "model"}
        save_checkpoint(self.folder / "last.pt", {**weights, **others, **bookkeeping})

    def publish(self, checkpoints: Path) -> None:
        """best.pt and last.pt as weights and model description only, into `checkpoints` (a fresh folder)."""
        shutil.copyfile(self.folder / "best.pt", checkpoints / "best.pt")
        last = load_checkpoint(self.folder / "last.pt")
        save_checkpoint(checkpoints / "last.pt", {key: last[key] for key in PUBLISHED})

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
