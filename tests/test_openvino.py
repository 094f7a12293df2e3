"""OpenVINO and INT8: `carvana export --openvino DIR [--int8]`, `carvana export --onnx FILE --int8` and predict's
openvino backend, against PyTorch on a real tiny pipeline's model (the parity gate of tests/test_onnx.py), and the
INT8 accuracy gate."""

import base64
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import openvino
import pytest
import torch
from conftest import NETWORK_IDS, NETWORKS, untrained_checkpoint
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace
from test_onnx import BEST, MAX_MASK_DIFFERENCE, MAX_PROBABILITY_DIFFERENCE, predicted_masks, random_photos

from carvana.core.errors import CarvanaError
from carvana.data.imageio import read_image, read_mask
from carvana.data.layout import image_path, mask_path
from carvana.inference.onnx_export import REFINER_KEY, export_onnx
from carvana.inference.openvino_backend import OpenVinoSegmenter, convert, export_openvino
from carvana.inference.quantize import Gate, quantize_onnx
from carvana.inference.segmenter import TorchSegmenter
from carvana.model.checkpoint import load_checkpoint, save_checkpoint
from carvana.training.refiner_tiles import photo_tiles


@pytest.mark.numerics
@pytest.mark.parametrize(("space_to_depth", "block"), NETWORKS, ids=NETWORK_IDS)
def test_an_odd_image_size_converts_and_matches_torch(tmp_path, space_to_depth, block):
    features = [4, 8, 16][: 4 - space_to_depth]
    checkpoint = untrained_checkpoint(tmp_path / "odd.pt", (36, 52), features, space_to_depth, block)
    assert export_openvino(checkpoint, tmp_path / "ir") == (36, 52)
    assert sorted(path.name for path in (tmp_path / "ir").iterdir()) == ["model.bin", "model.xml"]
    segmenter = OpenVinoSegmenter(tmp_path / "ir", batch_size=2)
    assert segmenter.size == (36, 52) and segmenter.settings.threshold == 0.5
    photos = random_photos(5, (36, 52))
    ours = segmenter.probabilities(photos)
    assert ours.shape == (5, 36, 52) and ours.dtype == np.float32
    assert np.abs(ours - TorchSegmenter(checkpoint).probabilities(photos)).max() <= MAX_PROBABILITY_DIFFERENCE


def test_without_openvino_one_line_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(CarvanaError) as error:
        OpenVinoSegmenter(tmp_path / "ir")
    assert str(error.value) == (
        "openvino is not installed; OpenVINO export and the openvino backend need the openvino extra: "
        'pip install -c constraints.txt -e ".[openvino]"'
    )


def test_an_onnx_file_converts_on_the_fly_and_its_int8_quantization_stays_close(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "model.pt", (32, 48), [4, 8])
    export_onnx(checkpoint, tmp_path / "fp32.onnx")
    photos = random_photos(16, (32, 48))
    expected = TorchSegmenter(checkpoint).probabilities(photos)
    fp32 = OpenVinoSegmenter.for_model(tmp_path / "fp32.onnx").probabilities(photos)
    assert np.abs(fp32 - expected).max() <= MAX_PROBABILITY_DIFFERENCE

    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", photos)
    model = onnx.load(tmp_path / "int8.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert (metadata["image_height"], metadata["image_width"]) == ("32", "48")
    int8 = OpenVinoSegmenter.for_model(tmp_path / "int8.onnx").probabilities(photos)
    assert np.abs(int8 - expected).max() < 0.05  # quantized, not wrong


def test_the_gate_refuses_an_int8_model_that_loses_dice():
    assert Gate(0.9850, 0.9845, 64).passed
    with pytest.raises(CarvanaError) as error:
        Gate(0.9850, 0.9812, 64).check()
    assert str(error.value) == (
        "--int8: refused, nothing written: full-resolution dice on 64 val photos: INT8 0.9812, fp32 0.9850 "
        "(-0.0038; the gate allows a drop of 0.001); keep the fp32 model"
    )


# --- a real tiny pipeline's model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tiny_pipeline: Workspace) -> Workspace:
    return tiny_pipeline


@pytest.fixture(scope="module")
def val_ids(workspace: Workspace) -> list[str]:
    return (workspace.root / "stages/prepare/val/ids.txt").read_text().split()


def differing_pixels(ours: Path, theirs: Path) -> tuple[int, int]:
    names = sorted(path.name for path in theirs.iterdir())
    assert sorted(path.name for path in ours.iterdir()) == names
    masks = [(np.asarray(Image.open(ours / name)), np.asarray(Image.open(theirs / name))) for name in names]
    return sum(np.count_nonzero(a != b) for a, b in masks), sum(b.size for _, b in masks)


@pytest.mark.e2e
def test_an_openvino_export_is_logged_and_predicts_the_torch_masks(workspace, val_ids, tmp_path):
    result = workspace.run("carvana", "export", "--openvino", str(tmp_path / "ir"), "--model", BEST)
    run_id = workspace.json("stages/train/mlflow_run.json")["run_id"]
    assert f"logged to MLflow run {run_id} as openvino/" in result.stdout and result.stderr == ""
    logged = [artifact.path for artifact in MlflowClient(workspace.tracking_uri).list_artifacts(run_id, "openvino")]
    assert logged == ["openvino/model.bin", "openvino/model.xml"]

    torch_masks = predicted_masks(workspace, val_ids, tmp_path / "torch", "--model", BEST)
    for options in (["--model", str(tmp_path / "ir")], ["--backend", "openvino", "--model", BEST]):
        ours = predicted_masks(workspace, val_ids, tmp_path / "ours", *options)
        differing, pixels = differing_pixels(ours, torch_masks)
        print(f"predict --masks {' '.join(options)} vs torch: {differing} of {pixels} px differ")
        assert differing <= MAX_MASK_DIFFERENCE * pixels


@pytest.mark.e2e
def test_an_int8_export_passes_the_gate_and_predicts(workspace, val_ids, tmp_path):
    out = tmp_path / "int8"  # --onnx FILE --int8 writes the file the gate ran in onnxruntime instead
    result = workspace.run("carvana", "export", "--openvino", str(out), "--int8", "--model", BEST)
    assert f"full-resolution dice on {len(val_ids)} val photos: INT8" in result.stdout, result.stdout
    assert "(INT8, " in result.stdout and result.stderr == ""
    masks = predicted_masks(workspace, val_ids, tmp_path / "masks", "--model", str(out))
    assert len(list(masks.iterdir())) == len(val_ids)


@pytest.mark.e2e
def test_int8_without_prepared_photos_is_refused_in_one_line(workspace, tmp_path):
    checkout = Workspace(tmp_path / "bare")  # a workspace where nothing ran yet
    out, model = str(tmp_path / "m.onnx"), str(workspace.root / BEST)
    result = checkout.run("carvana", "export", "--onnx", out, "--int8", "--model", model, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --int8 calibrates on the prepared train photos")
    assert "dvc repro" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


REFINED = """
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.openvino_backend import OpenVinoSegmenter
segmenter = {backend}(Path("{model}"))
assert segmenter.settings.edge_refiner
full, photo = np.load("{folder}/full.npy"), np.load("{folder}/photo.npy")
refined = segmenter.edge_refiner(full, photo)
with ThreadPoolExecutor(4) as pool:  # predict refines the masks of a batch on several threads at once
    together = list(pool.map(lambda _: segmenter.edge_refiner(full, photo), range(16)))
assert all(np.array_equal(refined, other) for other in together)
np.save("{out}", refined)
"""
SCORED = "stages/evaluate/model.pt"  # best.pt with evaluate's settings and the learned boundary refiner (on)


def changing_refiner(workspace: Workspace, folder: Path) -> Path:
    """evaluate's model with a refiner that changes things: the tiny network calls every pixel car, so its own refiner
    learned nothing."""
    scored = load_checkpoint(workspace.root / SCORED)
    torch.manual_seed(0)
    scored["edge_refiner"]["model"]["head.weight"] = torch.randn_like(scored["edge_refiner"]["model"]["head.weight"])
    model = folder / "model.pt"
    save_checkpoint(model, scored)
    return model


def edge_of(workspace: Workspace, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """A photo and its true mask blurred into probabilities with an edge."""
    root = workspace.root / "stages/download"
    photo = read_image(image_path(root, image_id))
    return photo, cv2.GaussianBlur(read_mask(mask_path(root, image_id)).astype(np.float32), (9, 9), 3)


def refined_by(
    workspace: Workspace, model: Path, backend: str, exported: Path, folder: Path
) -> tuple[np.ndarray, np.ndarray]:
    """An edge of the first val photo refined by `exported` (of `model`) run in `backend` (in a process of its own,
    as predict runs it: the runtimes' thread pools stay out of this one), and by torch."""
    photo, full = edge_of(workspace, (workspace.root / "stages/prepare/val/ids.txt").read_text().split()[0])
    np.save(folder / "full.npy", full)
    np.save(folder / "photo.npy", photo)
    refined = folder / f"{backend}.npy"
    workspace.run("python", "-c", REFINED.format(backend=backend, model=exported, folder=folder, out=refined))
    expected = TorchSegmenter(model).edge_refiner(full, photo)
    assert np.abs(expected - full).max() > 0.01  # the refiner changes the probabilities
    return np.load(refined), expected


@pytest.mark.e2e
def test_the_learned_refiner_travels_in_the_exports_and_matches_torch(workspace, val_ids, tmp_path):
    model = changing_refiner(workspace, tmp_path)
    onnx_file, ir = tmp_path / "scored.onnx", tmp_path / "ir"
    workspace.run("carvana", "export", "--onnx", str(onnx_file), "--model", str(model))
    workspace.run("carvana", "export", "--openvino", str(ir), "--model", str(model))
    for backend, exported in (("OnnxSegmenter", onnx_file), ("OpenVinoSegmenter", ir)):
        refined, expected = refined_by(workspace, model, backend, exported, tmp_path)
        np.testing.assert_allclose(refined, expected, atol=MAX_PROBABILITY_DIFFERENCE)

    torch_masks = predicted_masks(workspace, val_ids, tmp_path / "torch", "--backend", "torch", "--model", str(model))
    for exported in (onnx_file, ir):
        ours = predicted_masks(workspace, val_ids, tmp_path / f"masks-{exported.name}", "--model", str(exported))
        differing, pixels = differing_pixels(ours, torch_masks)
        print(f"predict --masks --model {exported.name} (learned edges) vs torch: {differing} of {pixels} px differ")
        assert differing <= MAX_MASK_DIFFERENCE * pixels


@pytest.mark.e2e
def test_an_int8_export_quantizes_the_learned_refiner_too(workspace, tmp_path):
    model = changing_refiner(workspace, tmp_path)
    ir = tmp_path / "int8"
    result = workspace.run("carvana", "export", "--openvino", str(ir), "--int8", "--model", str(model))
    assert "(INT8, " in result.stdout and result.stderr == ""
    info = openvino.Core().read_model(str(ir / "model.xml")).get_rt_info()["carvana"]
    refiner = onnx.load_from_string(base64.b64decode(info[REFINER_KEY].astype(str)))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in refiner.graph.node}


@pytest.mark.e2e
def test_an_int8_refiner_calibrated_on_edges_refines_as_torch_does(workspace, tmp_path):
    # calibrated on true edges: the tiny network calls every pixel car, so the export's own tiles hold none
    model = changing_refiner(workspace, tmp_path)
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    size = export_onnx(model, fp32)
    rng = np.random.default_rng(0)
    train_ids = (workspace.root / "stages/prepare/train/ids.txt").read_text().split()[:4]
    tiles = [
        photo_tiles(photo, full > 0.5, full, 16, 0, rng)[:2]
        for photo, full in (edge_of(workspace, i) for i in train_ids)
    ]
    quantize_onnx(fp32, int8, random_photos(8, size), tuple(np.concatenate(column) for column in zip(*tiles)))
    convert(int8, tmp_path / "ir")
    for backend, exported in (("OnnxSegmenter", int8), ("OpenVinoSegmenter", tmp_path / "ir")):
        refined, expected = refined_by(workspace, model, backend, exported, tmp_path)
        difference = np.abs(refined - expected)
        print(
            f"{backend} INT8 refiner vs torch: max {difference.max():.4f}, mean {difference[difference > 0].mean():.4f}"
        )
        assert difference.max() < 0.05
