"""predict --backend auto: the fastest installed runtime within the parity gate, measured once per checkpoint."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import untrained_checkpoint

from carvana.inference import fastest as auto
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.openvino_backend import OpenVinoSegmenter
from carvana.inference.segmenter import TorchSegmenter

pytest.importorskip("openvino")
KINDS = {"torch": TorchSegmenter, "onnxruntime": OnnxSegmenter, "openvino": OpenVinoSegmenter}


def choices(cache: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(cache.glob(f"backends/*/{auto.CHOICE}"))]


def test_auto_measures_once_and_runs_the_fastest_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("CARVANA_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", size=(32, 48))
    segmenter = auto.fastest(checkpoint, 4)
    (choice,) = choices(tmp_path / "cache")
    assert set(choice["rates"]) == set(KINDS) and choice["outside_gate"] == {}
    assert choice["backend"] == max(choice["rates"], key=choice["rates"].get)
    assert isinstance(segmenter, KINDS[choice["backend"]])
    assert f"--backend auto runs {choice['backend']}, the fastest here" in capsys.readouterr().out
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    reference = TorchSegmenter(checkpoint).probabilities(images)
    assert np.abs(segmenter.probabilities(images) - reference).max() <= auto.GATE

    monkeypatch.setattr(auto, "measure", lambda *args: pytest.fail("measured again"))
    assert isinstance(auto.fastest(checkpoint, 4), KINDS[choice["backend"]])  # from the cache
    other = untrained_checkpoint(tmp_path / "other.pt", size=(32, 48), features=(4, 8, 16))
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        auto.fastest(other, 4)  # another checkpoint's bytes: another measurement


def test_a_runtime_outside_the_parity_gate_is_never_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CARVANA_CACHE_DIR", str(tmp_path / "cache"))
    real = auto.segmenter

    def skewed(backend: str, *args: object):
        made = real(backend, *args)
        if backend != "torch":
            made.probabilities = lambda images, run=made.probabilities: run(images) + 0.01
        return made

    monkeypatch.setattr(auto, "segmenter", skewed)
    auto.fastest(untrained_checkpoint(tmp_path / "best.pt", size=(32, 48)), 4)
    (choice,) = choices(tmp_path / "cache")
    assert choice["backend"] == "torch" and set(choice["rates"]) == {"torch"}
    assert choice["outside_gate"] == pytest.approx({"onnxruntime": 0.01, "openvino": 0.01}, abs=1e-4)


def test_processes_starting_together_measure_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Ray actors on one node start predict's segmenter at once: one measures, the others wait and read its choice."""
    monkeypatch.setenv("CARVANA_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = untrained_checkpoint(tmp_path / "best.pt", size=(32, 48))
    real, measured = auto.measure, []

    def slow(*args: object) -> None:
        measured.append(args)
        time.sleep(0.5)  # long enough for the other threads to reach the cache
        real(*args)

    monkeypatch.setattr(auto, "measure", slow)
    with ThreadPoolExecutor(3) as pool:
        made = list(pool.map(lambda _: auto.fastest(checkpoint, 4), range(3)))
    assert len(measured) == 1 and len(choices(tmp_path / "cache")) == 1
    assert len({type(segmenter) for segmenter in made}) == 1
