"""What dvc.yaml declares about a stage's code, and a hash of that code."""

import hashlib
from pathlib import Path

import yaml

from carvana.core.outputs import STAGES_DIR
from carvana.core.paths import workspace_root

IGNORED = ("__pycache__", ".pyc")


def code_deps(stage: str, root: Path | None = None) -> list[Path]:
    """The files and folders (absolute) that dvc.yaml lists as `stage`'s deps, outside stages/."""
    root = root or workspace_root()
    deps = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]["deps"]
    return [root / dep for dep in deps if not dep.startswith(f"{STAGES_DIR}/")]


def code_files(stage: str, root: Path | None = None) -> list[Path]:
    """Every file under `stage`'s code deps, as DVC hashes them (no bytecode caches)."""
    files = []
    for dep in code_deps(stage, root):
        found = sorted(dep.rglob("*")) if dep.is_dir() else [dep]
        files += [f for f in found if f.is_file() and not any(part.endswith(IGNORED) for part in f.parts)]
    return files


def code_digest(stage: str) -> str:
    root = workspace_root()
    digest = hashlib.sha256()
    for path in code_files(stage, root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
