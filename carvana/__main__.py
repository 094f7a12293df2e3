"""carvana: the commands run by hand, behind one front door (the pipeline's stages are `dvc repro`).

carvana COMMAND [ARGS...]        carvana COMMAND --help for each
"""

import importlib
import sys

from carvana.core.errors import CarvanaError, run_main
from carvana.core.params import nearest

# name: (module with main(argv), what it does)
COMMANDS = {
    "predict": ("carvana.predict", "masks, cut-outs, composites or a Kaggle submission for any photos"),
    "serve": ("carvana.serve", "the champion over HTTP (MLflow's /invocations) with a try-it page at /"),
    "export": ("carvana.export", "a trained model as an ONNX file or OpenVINO IR, fp32 or INT8"),
    "cv": ("carvana.cv", "the cross-validation table and plot of the fold experiments"),
    "preset": ("carvana.preset", "a named recipe as `dvc exp run` -S arguments: dvc exp run $(carvana preset cpu)"),
    "params": ("carvana.core.params", "every param: its type, bounds, value here and what it does"),
    "server": ("carvana.tracking_server", "the team tracking server: PostgreSQL and MLflow on 127.0.0.1"),
    "doctor": ("carvana.doctor", "what this machine has: Python, torch, CPU/GPU, bf16, DVC, MLflow, tracking"),
}
EXAMPLES = """examples:
  carvana predict ~/photos --cutouts cutouts
  carvana serve                          # then open http://127.0.0.1:5001
  dvc exp run $(carvana preset cpu)
  carvana params train.lr
  carvana doctor"""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join([__doc__.strip(), "", "commands:", *lines, "", EXAMPLES])


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        raise CarvanaError(
            f"carvana: no command {name!r}{nearest(name, list(COMMANDS))}; commands: {', '.join(COMMANDS)}"
        )
    importlib.import_module(COMMANDS[name][0]).main(rest)


def console_script() -> None:
    run_main(main)


if __name__ == "__main__":
    console_script()
