"""The model predict runs: what `--model`, `--backend` and the inference flags name, loaded as one segmenter.

A `ModelChoice` is a small picklable description, so that every worker of a cluster run (carvana.inference.cluster)
loads the same model, with the same settings, as the single-process run does.
"""

from dataclasses import dataclass

from carvana.core.params import InferenceParams
from carvana.inference.fastest import fastest
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.openvino_backend import OpenVinoSegmenter
from carvana.inference.references import local_file
from carvana.inference.segmenter import Ensemble, Segmenter, TorchSegmenter, with_tta
from carvana.inference.settings import METADATA, overridden
from carvana.model.device import resolve_device


@dataclass(frozen=True)
class ModelChoice:
    references: tuple[str, ...]  # several: their probabilities are averaged
    backend: str  # what runs a checkpoint: auto (carvana.inference.fastest), torch, onnxruntime or openvino
    device: str  # the torch backend's device
    batch_size: int
    threshold: float | None = None  # None: as the (first) model was scored
    tta: bool | None = None
    refine: int | None = None
    edge_refiner: bool | None = None
    one_car: bool | None = None

    def load(self) -> tuple[Segmenter, InferenceParams]:
        """The segmenter, mirrored when TTA is on, and the settings to run it with."""
        models = [self.load_one(reference) for reference in self.references]
        segmenter = models[0] if len(models) == 1 else Ensemble(models)
        given = {name: getattr(self, name) for name in METADATA}
        settings = overridden(segmenter.settings, **given)
        return with_tta(segmenter, settings.tta), settings

    def load_one(self, reference: str) -> Segmenter:
        path = local_file(reference)
        if self.backend == "openvino" or path.suffix == ".xml" or path.is_dir():
            return OpenVinoSegmenter.for_model(path, self.batch_size)
        if self.backend == "onnxruntime" or path.suffix == ".onnx":
            return OnnxSegmenter.for_model(path, self.batch_size)
        device = resolve_device(self.device, "--device")
        if self.backend == "auto" and device.type == "cpu":
            return fastest(path, self.batch_size)
        return TorchSegmenter(path, device, self.batch_size)
