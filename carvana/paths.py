"""Where things live: the workspace DVC runs a stage in, each stage's output folder, the tracking store."""

import os
from pathlib import Path

STAGES_DIR = "stages"


def workspace_root() -> Path:
    """The folder holding dvc.yaml that this stage runs in (a DVC temp copy for queued/--temp experiments)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "dvc.yaml").exists()), here)


def project_root() -> Path:
    """The user's repository, even when DVC runs the stage in a temp copy under <repo>/.dvc/tmp/exps/.

    Queued and --temp experiments run in such copies, which DVC deletes afterwards: anything meant to
    outlive the experiment (the MLflow store) must be addressed from here, never from the workspace.
    """
    root = workspace_root()
    parts = root.parts
    if ".dvc" in parts:
        return Path(*parts[: parts.index(".dvc")])
    return root


def stage_dir(stage: str) -> Path:
    """stages/<stage>/ in the current workspace: the only place the stage writes."""
    return workspace_root() / STAGES_DIR / stage
