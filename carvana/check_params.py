"""Stage check_params: read and check the whole params.yaml before any other stage runs.

DVC removes a stage's outputs just before it runs the stage, so a stage that refused its own params would leave
the previous outputs gone. Every stage depends on this one: a refused value (`dvc exp run -S train.epochs=-1`)
stops the pipeline here, one line naming the key, with every earlier output as it was. Its output is the same
file whatever the params, so a valid change reruns only the stages that read the changed params.
"""

from carvana.core.atomic import write_text
from carvana.core.errors import run_main
from carvana.core.outputs import stage_dir
from carvana.core.params import PARAMS_FILE, load_params

VALID = f"{PARAMS_FILE}: every key checked against carvana/core/params.py\n"


def main() -> None:
    load_params()
    write_text(stage_dir("check_params") / "valid.txt", VALID)


if __name__ == "__main__":
    run_main(main)
