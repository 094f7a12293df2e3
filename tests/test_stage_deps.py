"""dvc.yaml's deps cover every file a stage's code imports: editing any of them reruns the stage."""

import ast
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from carvana.core.pipeline import code_deps, code_files

STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])


def module_file(name: str) -> Path | None:
    """carvana/x/y.py or carvana/x/y/__init__.py for the module `carvana.x.y`, if it is one."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every carvana module a file imports, anywhere in it (also inside functions), with its parent packages."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from carvana.x import module`
    modules = {name for name in names if name.split(".")[0] == "carvana" and module_file(name)}
    return {".".join(name.split(".")[:i]) for name in modules for i in range(1, name.count(".") + 2)}


def transitive_files(stage: str) -> set[Path]:
    seen: set[str] = set()
    todo = [f"carvana.{stage}"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += imported_modules(module_file(name))
    return {module_file(name) for name in seen}


@pytest.mark.parametrize("stage", STAGES)
def test_deps_cover_every_imported_file(stage):
    declared = code_deps(stage, REPO)
    uncovered = sorted(
        str(path.relative_to(REPO))
        for path in transitive_files(stage)
        if not any(path == dep or dep in path.parents for dep in declared)
    )
    assert not uncovered, f"dvc.yaml: stage {stage} imports {uncovered} but does not depend on them"


def test_every_stage_runs_its_own_module_and_imports_no_other_stage():
    for stage in STAGES:
        stage_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
        assert stage_yaml["cmd"].startswith(f"python -m carvana.{stage}")
        others = {f"carvana.{other}" for other in STAGES if other != stage}
        assert not imported_modules(REPO / "carvana" / f"{stage}.py") & others


def test_code_files_skip_bytecode_caches(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {s: {cmd: x, deps: [pkg, stages/a]}}\n")
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_text("")
    assert code_files("s", tmp_path) == [tmp_path / "pkg" / "a.py"]
