"""`carvana doctor`: what this machine has for the pipeline, one line each, never a secret.

Python and the platform; torch and its build (CPU or CUDA), the GPUs; the CPU and the number format training picks
on it (bf16 where AMX or AVX-512 BF16 computes it natively, under any oneDNN cap); DVC and MLflow; the tracking store
in force (its URI without credentials, and whether a server answers); the DVC remote; PostgreSQL (for `carvana
server`) and Chromium (for the browser tests).
"""

import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from carvana.core.cli import Parser
from carvana.core.errors import CarvanaError
from carvana.core.paths import project_root
from carvana.core.redact import redact, redact_text
from carvana.model.device import Precision, cpu_kind, onednn_isa_cap
from carvana.server import postgres
from carvana.tracking.store import check_reachable, tracking_uri


def report() -> list[tuple[str, str]]:
    cuda = torch.cuda.is_available()
    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else "none"
    cpu = torch.device("cpu")
    return [
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        ("torch", f"{torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'})"),
        ("gpus", gpus),
        ("cpu", f"{cpu_kind()}, {torch.get_num_threads()} threads"),
        ("cpu training", f"{Precision.choose(cpu, 'auto').name} (train.precision: auto)"),
        ("onednn cap", onednn_isa_cap() or "none (ONEDNN_MAX_CPU_ISA unset)"),
        ("dvc", package("dvc")),
        ("mlflow", package("mlflow")),
        ("tracking", tracking()),
        ("dvc remote", dvc_remote()),
        ("postgresql", str(postgres.find() or f"missing: {postgres.INSTALL_HINT}")),
        ("chromium", shutil.which("chromium") or "missing: apt-get install chromium chromium-driver (browser tests)"),
    ]


def package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def tracking() -> str:
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return f"{redact(uri)} (local store)"
    try:
        check_reachable(uri)
    except CarvanaError:
        return f"{redact(uri)} (does not answer)"
    return f"{redact(uri)} (answers)"


def dvc_remote() -> str:
    dvc = Path(sys.executable).parent / "dvc"
    try:
        listed = subprocess.run(
            [str(dvc) if dvc.exists() else "dvc", "remote", "list"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (`dvc remote list` failed)"
    remotes = [redact_text(line) for line in listed]
    return "; ".join(remotes) or "none configured (dvc remote add -d NAME URL)"


def main(argv: list[str] | None = None) -> None:
    Parser("carvana doctor", description=__doc__).parse_args(argv)
    for name, value in report():
        print(f"{name + ':':14} {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
