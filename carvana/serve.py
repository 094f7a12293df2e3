"""`carvana serve`: the model over HTTP, and a page to try it in a browser.

MLflow's own scoring app (the `/invocations`, `/ping` and `/version` of `mlflow models serve`: nothing new to
learn) with the served model (carvana/inference/serving.py), plus one page at `/`: drop or pick a car photo, see
the mask over it and the cut-out on a background of your choice, download the PNG.

    carvana serve [--model REF] [--host 127.0.0.1] [--port 5001]

REF is what `carvana predict --model` takes (default: the registry's champion, else this workspace's best.pt).
It binds 127.0.0.1 unless told otherwise; a request over the size limits is refused with HTTP 413 and a message.
"""

import argparse
import os
import tempfile
import warnings
from importlib.resources import files
from pathlib import Path

import mlflow
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from mlflow.pyfunc import scoring_server

from carvana.core.cli import Parser, port
from carvana.core.errors import CarvanaError
from carvana.inference.references import RUN_ID, default_reference, local_file, names_a_run, run_of
from carvana.inference.serving import MAX_PHOTO_BYTES, max_photos
from carvana.tracking.registry import served_model
from carvana.tracking.store import connect

PAGE = files("carvana.web").joinpath("try_it.html")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser("carvana serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the model to serve (default: the champion, else best.pt)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to bind (default: 127.0.0.1, this machine)")
    parser.add_argument("--port", type=port, default=5001, help="default: 5001")
    return parser.parse_args(argv)


def load(reference: str, folder: Path) -> mlflow.pyfunc.PyFuncModel:
    """The served model `reference` names: the registered or logged one of a models:/ URI or run id, or one made
    from a checkpoint file (saved into `folder`, as a run would log it)."""
    if names_a_run(reference):
        connect()
        uri = reference if not RUN_ID.match(reference) else f"runs:/{run_of(reference)}/model"
        return mlflow.pyfunc.load_model(uri)
    checkpoint = local_file(reference)
    if checkpoint.suffix != ".pt":
        raise CarvanaError(f"--model {reference}: serve takes a checkpoint (.pt), a models:/ URI or a run id")
    mlflow.pyfunc.save_model(path=str(folder / "model"), **served_model(checkpoint))
    return mlflow.pyfunc.load_model(str(folder / "model"))


def app_for(model: mlflow.pyfunc.PyFuncModel) -> FastAPI:
    app = scoring_server.init(model)
    most = int(MAX_PHOTO_BYTES * 4 / 3 * max_photos()) + 2**20  # base64 photos in JSON, and some room

    @app.middleware("http")
    async def refuse_oversized(request: Request, call_next):  # noqa: ANN001, ANN202 (FastAPI's signature)
        length = int(request.headers.get("content-length") or 0)
        if length > most:
            message = f"the request is {length / 2**20:.0f} MiB, over this server's limit of {most / 2**20:.0f} MiB"
            return JSONResponse({"error_code": "REQUEST_TOO_LARGE", "message": message}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.read_text().replace("MAX_PHOTO_BYTES", str(MAX_PHOTO_BYTES))

    return app


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model file
    warnings.filterwarnings("ignore", message=".*input example was not provided.*")  # saved to serve, not to share
    args = parse_args(argv)
    reference = args.model or default_reference()
    with tempfile.TemporaryDirectory(prefix="carvana-serve-") as folder:
        model = load(reference, Path(folder))
        print(f"serve: {reference} on http://{args.host}:{args.port} (a page at /, MLflow's /invocations)", flush=True)
        uvicorn.run(app_for(model), host=args.host, port=args.port, log_level="warning")
