"""The model as MLflow serves it (`mlflow models serve`, `mlflow.pyfunc.load_model`): photos in, masks out.

A request is a DataFrame with one column, `image`: a photo per row (JPEG, PNG or WebP at any size), its file's
bytes base64-encoded. The answer has a row per photo: the car's mask at the photo's own size in Kaggle's run-length
encoding (`rle`, top to bottom, left to right, 1-indexed), the photo's `width` and `height`, and with the param
`cutout` the car on a transparent background (`cutout`: a base64 RGBA PNG). Params: `threshold`, `tta`, `refine`,
`edge_refiner`, `one_car` (by default as the model was scored: carvana.inference.settings), `cutout` (false), `hard`
(false: the cut-out's edge follows the probability; true: the mask's hard edge).

A row that is not base64, over MAX_PHOTO_BYTES, not a photo Pillow decodes, or declaring more pixels than the
decompression-bomb limit stops the request with an MlflowException(INVALID_PARAMETER_VALUE) naming the row
(counted from 0, as in the request): the scoring server answers HTTP 400 with it and keeps serving.
"""

import base64
import io
import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from pydantic import ValidationError

from carvana.core.errors import CarvanaError
from carvana.core.params import InferenceParams, describe
from carvana.inference import rle
from carvana.inference.engine import predict
from carvana.inference.photos import EncodedPhoto
from carvana.inference.refine import refinement
from carvana.inference.segmenter import TorchSegmenter, with_tta
from carvana.inference.settings import METADATA, overridden
from carvana.inference.writers import PerPhoto, Prediction, save_cutout
from carvana.model.device import resolve_device

IMAGE = "image"  # the request's column
CHECKPOINT = "checkpoint"  # the model's artifact: stages/train/checkpoints/best.pt
MAX_PHOTO_BYTES = 20 * 2**20  # per row, before base64; a 24-megapixel JPEG is about 10 MB
MAX_PHOTOS = "CARVANA_MAX_PHOTOS_PER_REQUEST"  # the environment variable, set where the server starts
DEFAULT_MAX_PHOTOS = 32  # a request's answer (cut-outs included) is held whole: about 6 MB a full-size photo
PARAMS = ParamSchema(
    [
        ParamSpec("threshold", "double", None),  # None: as the model was scored (carvana.inference.settings)
        ParamSpec("tta", "boolean", None),
        ParamSpec("refine", "long", None),
        ParamSpec("edge_refiner", "boolean", None),
        ParamSpec("one_car", "boolean", None),
        ParamSpec("cutout", "boolean", False),
        ParamSpec("hard", "boolean", False),
    ]
)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", IMAGE)]),
    outputs=Schema(
        [
            ColSpec("string", "rle"),
            ColSpec("long", "width"),
            ColSpec("long", "height"),
            ColSpec("string", "cutout", required=False),
        ]
    ),
    params=PARAMS,
)


class PhotoSegmenter(mlflow.pyfunc.PythonModel):
    """The checkpoint artifact, loaded weights-only, run on the photos of each request."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.segmenter = TorchSegmenter(Path(context.artifacts[CHECKPOINT]), resolve_device("auto"))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        given = {spec.name: spec.default for spec in PARAMS.params} | (params or {})
        try:
            settings = overridden(self.segmenter.settings, **{k: given[k] for k in METADATA})
            InferenceParams.model_validate(settings.model_dump())
        except ValidationError as error:
            raise invalid(describe(error.errors()[0])) from None
        most = max_photos()
        if len(model_input) > most:
            raise invalid(
                f"{len(model_input)} photos in one request, over the limit of {most}; send them in several "
                f"requests (the server's limit is {MAX_PHOTOS})"
            )
        photos = [encoded_photo(row, value) for row, value in model_input[IMAGE].items()]
        answer = Answer(given["cutout"], given["hard"])
        segmenter = with_tta(self.segmenter, settings.tta)
        try:
            outcomes = list(
                predict(
                    photos,
                    segmenter,
                    [answer],
                    settings.threshold,
                    threads=os.cpu_count() or 1,
                    refinement=refinement(settings, segmenter.edge_refiner),
                )
            )
        except CarvanaError as error:
            raise invalid(str(error)) from None
        return pd.DataFrame([outcome.values[Answer.key] for outcome in outcomes])


def max_photos() -> int:
    return int(os.environ.get(MAX_PHOTOS, DEFAULT_MAX_PHOTOS))


class Answer(PerPhoto):
    """A photo's row of the answer."""

    key = "row"

    def __init__(self, cutout: bool, hard: bool) -> None:
        self.cutout, self.hard = cutout, hard

    def write(self, prediction: Prediction) -> dict[str, Any]:
        height, width = prediction.mask.shape
        row = {"rle": rle.encode(prediction.mask), "width": width, "height": height}
        if self.cutout:
            png = io.BytesIO()
            save_cutout(prediction, self.hard, png)
            row["cutout"] = base64.b64encode(png.getvalue()).decode("ascii")
        return row


def encoded_photo(row: Any, value: str) -> EncodedPhoto:
    """The photo in a row of the request, its size checked before it is decoded from base64."""
    name = f"row {row}"
    if not isinstance(value, str):
        raise invalid(f"{name}: {value!r} is not a base64 string; send each photo's file bytes base64-encoded")
    size = len(value) * 3 // 4
    if size > MAX_PHOTO_BYTES:
        raise invalid(
            f"{name}: the photo is {size / 2**20:.1f} MiB, over the limit of {MAX_PHOTO_BYTES // 2**20} MiB per "
            "photo; send it smaller (resized or recompressed)"
        )
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError as error:  # binascii.Error, or characters outside ASCII
        raise invalid(f"{name}: not base64 ({error}); send each photo's file bytes base64-encoded") from None
    return EncodedPhoto(name, name, data)


def invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)
