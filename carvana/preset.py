"""Named params presets as `dvc exp run` arguments: `dvc exp run -n seed $(python -m carvana.preset seed)`.

A preset is a partial params.yaml (carvana/presets/<name>.yaml); it is checked against params.yaml's
schema before anything runs. Several apply in turn: `carvana preset cpu final` is the cpu recipe's final fit.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from carvana.core.cli import Parser
from carvana.core.errors import CarvanaError, run_main
from carvana.core.params import PARAMS_FILE, parse

PRESETS_DIR = Path(__file__).parent / "presets"


def available() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        raise CarvanaError(f"unknown preset {name!r}; available: {', '.join(available())}")
    return yaml.safe_load(path.read_text())


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def set_args(names: list[str], params_file: Path = PARAMS_FILE) -> list[str]:
    """`-S key=value` arguments for dvc exp run, of the presets `names` applied in turn (a later one wins); values
    in JSON/YAML flow style, without spaces."""
    preset: dict[str, Any] = {}
    for name in names:
        preset = merged(preset, load_preset(name))
    parse(merged(yaml.safe_load(params_file.read_text()), preset))
    return [
        arg
        for key, value in leaves(preset).items()
        for arg in ("-S", f"{key}={json.dumps(value, separators=(',', ':'))}")
    ]


def main(argv: list[str] | None = None) -> None:
    parser = Parser("carvana preset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "names", nargs="+", metavar="name", help=f"one or more, applied in turn: {', '.join(available())}"
    )
    print(" ".join(set_args(parser.parse_args(argv).names)))


if __name__ == "__main__":
    run_main(main)
