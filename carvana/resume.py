"""Resumable training: the state after each completed epoch, kept where DVC never looks.

DVC deletes a stage's outputs before running it and has no notion of a half-finished stage, so the
in-progress state cannot live in stages/train/. It lives in <repo>/.dvc/tmp/carvana-resume/<fingerprint>/
instead: git-ignored DVC scratch space, outside every output and the run-cache, and in the user's repository
even when a queued or --temp experiment runs in a temporary copy. The fingerprint covers everything that
decides the result (seed, image size, train params, the split), so only an identical run resumes it.
"""

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from carvana.checkpoint import load_checkpoint
from carvana.params import Params
from carvana.paths import project_root

# Params that change how a run executes, not what it computes.
EXECUTION_ONLY = ("device", "num_workers", "panels_per_epoch", "compile")


def resume_dir(params: Params, ids: dict[str, list[str]]) -> Path:
    train = {k: v for k, v in asdict(params.train).items() if k not in EXECUTION_ONLY}
    size = [params.prepare.image_height, params.prepare.image_width]
    identity = {"seed": params.seed, "image_size": size, "train": train, "ids": ids}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return project_root() / ".dvc" / "tmp" / "carvana-resume" / digest


def load_state(folder: Path) -> dict[str, Any] | None:
    """The last completed epoch's state, or None to start from scratch."""
    path = folder / "last.pt"
    return load_checkpoint(path) if path.exists() else None


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
