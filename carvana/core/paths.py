"""Where things live: the workspace DVC runs a stage in, and the user's repository.

Queued and --temp experiments run in temporary copies under <repo>/.dvc/tmp/exps/ that DVC deletes
afterwards. There, the working directory is the copy (outputs belong there), while DVC sets DVC_ROOT to the
user's repository (what must outlive the experiment, like the MLflow store, belongs there).
"""

import os
from pathlib import Path


def workspace_root() -> Path:
    """The folder holding the dvc.yaml this stage runs from: the working directory or one above it."""
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "dvc.yaml").exists()), here)


def project_root() -> Path:
    """The user's repository, also when the stage runs in a DVC temp copy."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    parts = workspace_root().parts
    if ".dvc" in parts:  # a temp copy run without DVC_ROOT (older DVC): <repo>/.dvc/tmp/exps/<copy>
        return Path(*parts[: parts.index(".dvc")])
    return workspace_root()


def user_path(text: str) -> Path:
    """A path from params.yaml: `~` expanded, relative paths from the repository root.

    In a temp copy, a path the copy holds (tracked by git or DVC, like data/) is the copy's; any other
    (an untracked folder, `../elsewhere`) is the user's repository's.
    """
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    in_workspace = workspace_root() / path
    return in_workspace if in_workspace.exists() else project_root() / path
