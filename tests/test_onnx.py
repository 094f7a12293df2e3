"""ONNX: `python -m carvana.export` and the onnxruntime backend against PyTorch, on a real tiny pipeline's model.

Parity is measured on the val set: probabilities at the model's size within 1e-4 of PyTorch's, and masks at the
photos' own size (upsampled, then thresholded) differing in at most 0.01 % of the pixels.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import NETWORK_IDS, NETWORKS, untrained_checkpoint
from mlflow.tracking import MlflowClient
from PIL import Image
from pipeline_workspace import Workspace

from carvana.core.errors import CarvanaError
from carvana.inference.onnx_backend import OnnxSegmenter
from carvana.inference.onnx_export import OPSET, export_onnx
from carvana.inference.segmenter import TorchSegmenter, upsample

MAX_PROBABILITY_DIFFERENCE = 1e-4
MAX_MASK_DIFFERENCE = 1e-4  # share of the pixels: 0.01 %
BEST = "stages/train/checkpoints/best.pt"


def random_photos(count: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, *size, 3), dtype=np.uint8)


# --- the export on its own: an untrained model --------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize(("space_to_depth", "block"), NETWORKS, ids=NETWORK_IDS)
def test_an_odd_image_size_exports_its_interpolation_and_matches_torch(tmp_path, space_to_depth, block):
    # 36x52 halves to 9x13 and then 4x6: the decoder interpolates to the skip's size, which the graph must hold
    features = [4, 8, 16][: 4 - space_to_depth]
    checkpoint = untrained_checkpoint(tmp_path / "odd.pt", (36, 52), features, space_to_depth, block)
    export_onnx(checkpoint, tmp_path / "odd.onnx")
    photos = random_photos(5, (36, 52))
    onnx_probabilities = OnnxSegmenter(tmp_path / "odd.onnx", batch_size=2).probabilities(photos)
    torch_probabilities = TorchSegmenter(checkpoint).probabilities(photos)
    assert onnx_probabilities.shape == (5, 36, 52) and onnx_probabilities.dtype == np.float32
    assert np.abs(onnx_probabilities - torch_probabilities).max() <= MAX_PROBABILITY_DIFFERENCE


def test_a_checkpoint_is_exported_on_the_fly(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "model.pt", (32, 48), [4, 8])
    segmenter = OnnxSegmenter.for_model(checkpoint, batch_size=4)
    assert segmenter.size == (32, 48)
    photos = random_photos(3, (32, 48))
    expected = TorchSegmenter(checkpoint).probabilities(photos)
    assert np.abs(segmenter.probabilities(photos) - expected).max() <= MAX_PROBABILITY_DIFFERENCE


def test_without_onnxruntime_one_line_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ModuleNotFoundError
    with pytest.raises(CarvanaError) as error:
        OnnxSegmenter(tmp_path / "model.onnx")
    assert str(error.value).startswith("onnxruntime is not installed")
    assert str(error.value).endswith('pip install -c constraints.txt -e ".[onnx]"') and "\n" not in str(error.value)


# --- a real tiny pipeline's model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tiny_pipeline: Workspace) -> Workspace:
    return tiny_pipeline


@pytest.fixture(scope="module")
def exported(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's best.pt exported by the CLI (outside the workspace: nothing there changes)."""
    out = tmp_path_factory.mktemp("onnx") / "best.onnx"
    result = workspace.run("python", "-m", "carvana.export", "--onnx", str(out), "--model", BEST)
    assert result.stderr == "", result.stderr  # no exporter chatter
    return out


@pytest.fixture(scope="module")
def val_photos(workspace: Workspace) -> tuple[list[str], np.ndarray]:
    ids = (workspace.root / "stages/prepare/val/ids.txt").read_text().split()
    return ids, np.load(workspace.root / "stages/prepare/val/images.npy")


@pytest.mark.e2e
def test_the_file_holds_the_size_the_opset_and_a_dynamic_batch(exported):
    model = onnx.load(exported)
    assert {entry.domain: entry.version for entry in model.opset_import}[""] == OPSET
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert (metadata["image_height"], metadata["image_width"]) == ("32", "48")
    (images,) = model.graph.input
    assert images.name == "images" and images.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim] == ["batch", 32, 48, 3]
    assert not list(exported.parent.glob("*.data"))  # the weights are in the file


@pytest.mark.numerics
@pytest.mark.e2e
def test_onnxruntime_matches_torch_on_the_val_set(workspace, exported, val_photos):
    ids, photos = val_photos
    torch_probabilities = TorchSegmenter(workspace.root / BEST).probabilities(photos)
    onnx_probabilities = OnnxSegmenter(exported).probabilities(photos)
    difference = np.abs(onnx_probabilities - torch_probabilities).max()

    differing = pixels = 0
    for image_id, ours, theirs in zip(ids, onnx_probabilities, torch_probabilities):
        with Image.open(workspace.root / "stages/download/train" / f"{image_id}.jpg") as photo:
            size = photo.height, photo.width
        differing += np.count_nonzero((upsample(ours, size) > 0.5) != (upsample(theirs, size) > 0.5))
        pixels += size[0] * size[1]
    print(
        f"{len(ids)} val photos: max |p_onnx - p_torch| = {difference:.3g}, masks differ in {differing} of {pixels} px"
    )
    assert difference <= MAX_PROBABILITY_DIFFERENCE
    assert differing <= MAX_MASK_DIFFERENCE * pixels


@pytest.mark.e2e
@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_batch_axis_is_dynamic(exported, val_photos, batch_size):
    _, photos = val_photos
    whole = OnnxSegmenter(exported, batch_size=len(photos)).probabilities(photos)
    segmenter = OnnxSegmenter(exported, batch_size=batch_size)
    assert segmenter.run(np.ascontiguousarray(photos[:batch_size])).shape == (batch_size, 32, 48)
    np.testing.assert_allclose(segmenter.probabilities(photos), whole, rtol=0, atol=1e-6)


@pytest.mark.e2e
@pytest.mark.parametrize("reference", [BEST, None], ids=["best.pt", "the champion"])
def test_export_logs_the_file_to_the_models_run(workspace, tmp_path, reference):
    out = tmp_path / "exported.onnx"
    model = ["--model", reference] if reference else []
    result = workspace.run("python", "-m", "carvana.export", "--onnx", str(out), *model)
    client = MlflowClient(workspace.tracking_uri)
    if reference:
        run_id = workspace.json("stages/train/mlflow_run.json")["run_id"]
    else:
        run_id = client.get_model_version_by_alias("carvana-unet", "champion").run_id
    assert f"logged to MLflow run {run_id} as onnx/model.onnx" in result.stdout and result.stderr == ""
    assert [artifact.path for artifact in client.list_artifacts(run_id, "onnx")] == ["onnx/model.onnx"]
    logged = client.download_artifacts(run_id, "onnx/model.onnx", str(tmp_path))
    assert Path(logged).read_bytes() == out.read_bytes()


@pytest.fixture(scope="module")
def torch_masks(workspace: Workspace, val_photos, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return predicted_masks(workspace, val_photos[0], tmp_path_factory.mktemp("torch-masks"), "--model", BEST)


def predicted_masks(workspace: Workspace, ids: list[str], out: Path, *options: str) -> Path:
    photos = [str(workspace.root / "stages/download/train" / f"{image_id}.jpg") for image_id in ids]
    workspace.run("python", "-m", "carvana.predict", *photos, "--masks", str(out), *options)
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("model", ["checkpoint", "onnx file"])
def test_predict_with_onnxruntime_writes_the_torch_backends_masks(
    workspace, exported, val_photos, torch_masks, tmp_path, model
):
    options = ["--backend", "onnxruntime", "--model", BEST] if model == "checkpoint" else ["--model", str(exported)]
    ours = predicted_masks(workspace, val_photos[0], tmp_path / "masks", *options)
    names = sorted(path.name for path in torch_masks.iterdir())
    assert sorted(path.name for path in ours.iterdir()) == names and len(names) == len(val_photos[0])
    differing = pixels = 0
    for name in names:
        mask, expected = (np.asarray(Image.open(folder / name)) for folder in (ours, torch_masks))
        differing += np.count_nonzero(mask != expected)
        pixels += expected.size
    print(f"predict --masks, onnxruntime ({model}) vs torch: {differing} of {pixels} px differ")
    assert differing <= MAX_MASK_DIFFERENCE * pixels


def refused(workspace: Workspace, *args: str) -> str:
    result = workspace.run("python", "-m", *args, check=False)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.e2e
def test_a_missing_model_is_refused_in_one_line(workspace, tmp_path):
    stderr = refused(workspace, "carvana.export", "--onnx", str(tmp_path / "m.onnx"), "--model", "nowhere.pt")
    assert "--model nowhere.pt: no such file" in stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.e2e
def test_a_damaged_checkpoint_is_refused_in_one_line(workspace, tmp_path):
    (tmp_path / "damaged.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    stderr = refused(
        workspace, "carvana.export", "--onnx", str(tmp_path / "m.onnx"), "--model", str(tmp_path / "damaged.pt")
    )
    assert "damaged.pt: not a checkpoint this project wrote" in stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.e2e
def test_an_unwritable_output_is_refused_in_one_line(workspace, tmp_path):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "model.onnx"  # under a file: no user can create it, root included
    stderr = refused(workspace, "carvana.export", "--onnx", str(out), "--model", BEST)
    assert f"--onnx {out}: cannot write it" in stderr


@pytest.mark.e2e
def test_a_damaged_onnx_file_is_refused_in_one_line(workspace, tmp_path):
    (tmp_path / "damaged.onnx").write_bytes(b"not a protobuf" * 100)
    photo = next((workspace.root / "stages/download/train").glob("*.jpg"))
    stderr = refused(
        workspace,
        "carvana.predict",
        str(photo),
        "--masks",
        str(tmp_path / "masks"),
        "--model",
        str(tmp_path / "damaged.onnx"),
    )
    assert "damaged.onnx: onnxruntime cannot load it" in stderr and "python -m carvana.export" in stderr
