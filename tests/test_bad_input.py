"""Bad input, stage by stage, as a user meets it: one line naming the file or key (and the fix), exit 2, and
nothing half-written under stages/. Inputs that are not wrong (a .JPG photo, a 16-bit PNG, a last batch of one)
just work."""

import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import jpeg_declaring, png_declaring, write_pair
from PIL import Image
from pipeline_workspace import Checkout, Workspace

pytestmark = pytest.mark.e2e

CAR = "0aaaaaaaaaaa"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace where download, split_val, prepare, train, train_refiner and evaluate have run (no DVC: the stages
    alone)."""
    workspace = Workspace(tmp_path_factory.mktemp("bad-input") / "base")
    for stage in ("download", "split_val", "prepare", "train", "train_refiner", "evaluate"):
        workspace.run("python", "-m", f"carvana.{stage}")
    return workspace


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "stages").rglob("*")) if p.is_file()}


def set_param(ws: Checkout, key: str, value: object) -> None:
    params = yaml.safe_load((ws.root / "params.yaml").read_text())
    *groups, last = key.split(".")
    node = params
    for group in groups:
        node = node[group]
    node[last] = value
    (ws.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_dataset(folder: Path, cars: tuple[str, ...] = (CAR, "0bbbbbbbbbbb", "0ccccccccccc")) -> Path:
    for car in cars:
        for view in (1, 2):
            write_pair(folder, f"{car}_{view:02d}")
    return folder


def zip_of(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, str(path.relative_to(folder)))
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return archive


def patch_entry(archive: Path, name: str, flag: int = 0, method: int | None = None) -> None:
    """Set flag bits and/or the compression method of one entry, in its local and central headers."""
    data = bytearray(archive.read_bytes())
    encoded = name.encode()
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                data[start + flags_at] |= flag
                if method is not None:
                    data[start + flags_at + 2 : start + flags_at + 4] = struct.pack("<H", method)
            start += 4
    archive.write_bytes(bytes(data))


def crafted_pickle() -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    return pickle.dumps({"model": Evil()})


# --- what each case does to a copy of the base workspace; returns the expected message -----------------------


def nan_param(key: str) -> Callable[[Checkout], str]:
    def breaker(ws: Checkout) -> str:
        set_param(ws, key, float("nan"))
        return f"params: `{key}` is nan; it must be a finite number"

    return breaker


def external_source(ws: Checkout, make: Callable[[Path], Path]) -> None:
    set_param(ws, "download.source", str(make(ws.root.parent / f"{ws.root.name}-source")))


def bomb_photo_at_download(ws: Checkout) -> str:
    def make(folder: Path) -> Path:
        tiny_dataset(folder)
        (folder / "train" / f"{CAR}_01.jpg").write_bytes(jpeg_declaring(50000, 50000))
        return folder

    external_source(ws, make)
    return f"train/{CAR}_01.jpg: the image declares more than 89,478,485 pixels"


def first_photo(ws: Checkout) -> Path:
    return min((ws.root / "stages/download/train").glob("*.jpg"))


def bomb_mask_at_prepare(ws: Checkout) -> str:
    mask = ws.root / "stages/download/train_masks" / f"{first_photo(ws).stem}_mask.gif"
    gif = bytearray(mask.read_bytes())
    gif[6:10] = struct.pack("<HH", 50000, 50000)
    mask.write_bytes(bytes(gif))
    return f"{mask.name}: the mask declares more than 89,478,485 pixels"


def bomb_photo_at_render(ws: Checkout) -> str:
    photos = ws.root / "photos"
    photos.mkdir()
    (photos / "huge.png").write_bytes(png_declaring(50000, 50000))
    set_param(ws, "render_masks.images", "photos")
    return "photos/huge.png: the image declares more than 89,478,485 pixels"


def zipped_source(patch: Callable[[Path], None] | None = None, extra: dict[str, bytes] | None = None):
    def breaker(ws: Checkout) -> None:
        def make(folder: Path) -> Path:
            archive = zip_of(tiny_dataset(folder), folder.with_suffix(".zip"), extra)
            if patch:
                patch(archive)
            return archive

        external_source(ws, make)

    return breaker


def encrypted_zip(ws: Checkout) -> str:
    zipped_source(lambda archive: patch_entry(archive, f"train/{CAR}_02.jpg", flag=0x1))(ws)
    return f"entry train/{CAR}_02.jpg is encrypted. Re-create the archive"


def deflate64_zip(ws: Checkout) -> str:
    zipped_source(lambda archive: patch_entry(archive, f"train/{CAR}_02.jpg", method=9))(ws)
    return f"entry train/{CAR}_02.jpg uses compression method 9, which Python cannot read"


def zip_bomb(ws: Checkout) -> str:
    zipped_source(extra={"train/0ddddddddddd_01.jpg": bytes(60 * 2**20)})(ws)
    return "entry train/0ddddddddddd_01.jpg expands"


def duplicate_zip_entries(ws: Checkout) -> str:
    zipped_source(extra={f"train/{CAR}_01.jpg": b"second copy"})(ws)
    return f"entries train/{CAR}_01.jpg and train/{CAR}_01.jpg are the same file"


def car_name_with_a_space(ws: Checkout) -> str:
    def make(folder: Path) -> Path:
        tiny_dataset(folder)
        write_pair(folder, "my car!_01")
        return folder

    external_source(ws, make)
    return "train/my car!_01.jpg is not named <car>_<NN>"


def checkpoint_bytes(data: bytes) -> Callable[[Checkout], None]:
    def breaker(ws: Checkout) -> None:
        (ws.root / "stages/train/checkpoints/best.pt").write_bytes(data)

    return breaker


def crafted_checkpoint(ws: Checkout) -> str:
    checkpoint_bytes(crafted_pickle())(ws)
    return "best.pt: not a checkpoint this project wrote (damaged, or holding objects other than tensors"


def random_checkpoint(ws: Checkout) -> str:
    checkpoint_bytes(np.random.default_rng(0).bytes(5000))(ws)
    return "best.pt: not a checkpoint this project wrote"


def random_refiner(ws: Checkout) -> str:
    (ws.root / "stages/train_refiner/refiner.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    return "refiner.pt: not a checkpoint this project wrote"


def refiner_of_another_width(ws: Checkout) -> str:
    path = ws.root / "stages/train_refiner/refiner.pt"
    refiner = torch.load(path, weights_only=True)
    torch.save(refiner | {"config": {"width": 2 * refiner["config"]["width"]}}, path)
    return "refiner.pt: its weights do not fit the model it describes (size mismatch for body.0.weight"


def checkpoint_edit(edit: Callable[[dict], None]) -> Callable[[Checkout], None]:
    def breaker(ws: Checkout) -> None:
        path = ws.root / "stages/train/checkpoints/best.pt"
        checkpoint = torch.load(path, weights_only=True)
        edit(checkpoint)
        torch.save(checkpoint, path)

    return breaker


def checkpoint_without_config(ws: Checkout) -> str:
    checkpoint_edit(lambda checkpoint: checkpoint.pop("model_config"))(ws)
    return "best.pt: not a carvana checkpoint (no model_config)"


def checkpoint_of_another_shape(ws: Checkout) -> str:
    checkpoint_edit(lambda checkpoint: checkpoint["model_config"].update(features=[8, 16, 32]))(ws)
    return "best.pt: its weights do not fit the model it describes"


def final_fit_checkpoint_of_another_shape(ws: Checkout) -> str:
    set_param(ws, "split_val.val_cars", 0)  # no val photo: evaluate writes its unscored outputs
    for stage in ("split_val", "prepare"):
        ws.run("python", "-m", f"carvana.{stage}")
    return checkpoint_of_another_shape(ws)


def run_file_missing(ws: Checkout) -> str:
    (ws.root / "stages/train/mlflow_run.json").unlink()
    return "stages/train/mlflow_run.json not found; run `dvc repro -f train`"


def run_file_corrupt(ws: Checkout) -> str:
    (ws.root / "stages/train/mlflow_run.json").write_text('{"run_id": ')
    return "stages/train/mlflow_run.json is not a run file"


def same_stem_photos(ws: Checkout) -> str:
    photos = ws.root / "photos"
    photos.mkdir()
    shutil.copy(first_photo(ws), photos / "good_01.jpg")
    Image.open(photos / "good_01.jpg").save(photos / "good_01.png")
    set_param(ws, "render_masks.images", "photos")
    return "1 photo id(s) given twice, which would write the same outputs"


@dataclass(frozen=True)
class Case:
    stage: str
    breaker: Callable[[Checkout], str]


REFUSED = {
    "train.lr nan": Case("train", nan_param("train.lr")),
    "split_val.val_fraction nan": Case("split_val", nan_param("split_val.val_fraction")),
    "inference.threshold nan": Case("evaluate", nan_param("inference.threshold")),
    "train.device meta": Case(
        "train",
        lambda ws: (
            set_param(ws, "train.device", "meta") or "`train.device` is 'meta'; it must be auto, cpu, cuda or cuda:N"
        ),
    ),
    "model too deep for the image": Case(
        "train",
        lambda ws: (
            set_param(ws, "train.model.features", [4] * 7)
            or "`train.model.features` has 7 levels, but a 32x48 image is halved to nothing after 5"
        ),
    ),
    "50000x50000 photo at download": Case("download", bomb_photo_at_download),
    "50000x50000 mask at prepare": Case("prepare", bomb_mask_at_prepare),
    "50000x50000 photo at render": Case("render_masks", bomb_photo_at_render),
    "encrypted zip entry": Case("download", encrypted_zip),
    "Deflate64 zip entry": Case("download", deflate64_zip),
    "zip bomb": Case("download", zip_bomb),
    "duplicate zip entries": Case("download", duplicate_zip_entries),
    "car name with a space": Case("download", car_name_with_a_space),
    "crafted best.pt": Case("evaluate", crafted_checkpoint),
    "random-bytes best.pt": Case("evaluate", random_checkpoint),
    "random-bytes best.pt at train_refiner": Case("train_refiner", random_checkpoint),
    "random-bytes refiner.pt": Case("evaluate", random_refiner),
    "refiner.pt of another width": Case("evaluate", refiner_of_another_width),
    "best.pt without model_config": Case("evaluate", checkpoint_without_config),
    "best.pt of another shape": Case("evaluate", checkpoint_of_another_shape),
    "a final fit's best.pt of another shape": Case("evaluate", final_fit_checkpoint_of_another_shape),
    "mlflow_run.json missing": Case("evaluate", run_file_missing),
    "mlflow_run.json corrupt": Case("evaluate", run_file_corrupt),
    "photos with the same stem": Case("render_masks", same_stem_photos),
}


@pytest.fixture
def workspace(base: Workspace, tmp_path: Path) -> Checkout:
    """A copy of the base workspace (same git repo, outputs and MLflow store) to break."""
    shutil.copytree(base.root, tmp_path / "ws", symlinks=True)
    return Checkout(tmp_path / "ws")


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_input_is_refused_in_one_line_and_leaves_nothing(workspace: Checkout, name: str) -> None:
    case = REFUSED[name]
    expected = case.breaker(workspace)
    before = snapshot(workspace.root)
    result = workspace.run("python", "-m", f"carvana.{case.stage}", check=False)
    print(result.stderr)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and "weights_only=False" not in result.stderr
    assert snapshot(workspace.root) == before  # the stage's old outputs are untouched, and nothing was added


def test_photos_in_any_jpeg_spelling_are_taken(workspace: Checkout) -> None:
    def make(folder: Path) -> Path:
        tiny_dataset(folder)
        (folder / "train" / f"{CAR}_01.jpg").rename(folder / "train" / f"{CAR}_01.JPG")
        (folder / "train" / f"{CAR}_02.jpg").rename(folder / "train" / f"{CAR}_02.jpeg")
        return folder

    external_source(workspace, make)
    result = workspace.run("python", "-m", "carvana.download")
    assert "download: 6 images of 3 cars" in result.stdout
    assert (workspace.root / f"stages/download/train/{CAR}_01.jpg").exists()
    assert (workspace.root / f"stages/download/train/{CAR}_02.jpg").exists()


def test_a_16_bit_png_is_rendered_like_its_8_bit_twin(workspace: Checkout) -> None:
    photos = workspace.root / "photos"
    photos.mkdir()
    photo = np.asarray(Image.open(first_photo(workspace)).convert("L"))
    Image.fromarray(photo).save(photos / "eight.png")
    Image.fromarray(photo.astype(np.uint16) * 257).save(photos / "sixteen.png")
    set_param(workspace, "render_masks.images", "photos")
    workspace.run("python", "-m", "carvana.render_masks")
    overlays = workspace.root / "stages/render_masks/overlays"
    assert np.array_equal(
        np.asarray(Image.open(overlays / "sixteen.png")), np.asarray(Image.open(overlays / "eight.png"))
    )


def test_a_last_batch_of_one_is_skipped(workspace: Checkout) -> None:
    set_param(workspace, "train.batch_size", 47)  # 48 train images: batches of 47 and 1
    result = workspace.run("python", "-m", "carvana.train")
    assert "epoch 2:" in result.stdout


def test_leftovers_of_a_killed_stage_are_swept(workspace: Checkout) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    leftovers = [
        workspace.root / "stages" / f".split_val.tmp-{dead}-x1",
        workspace.root / "stages" / f".split_val.tmp-{dead}-x2",
    ]
    leftovers[0].mkdir()
    leftovers[1].write_text("half")
    live = workspace.root / "stages" / f".split_val.tmp-{os.getpid()}-x3"  # someone still writing: kept
    live.mkdir()
    workspace.run("python", "-m", "carvana.split_val")
    assert not any(path.exists() for path in leftovers) and live.exists()


def test_outputs_get_the_users_umask_not_private_modes(workspace: Checkout) -> None:
    workspace.run("sh", "-c", "umask 022 && python -m carvana.split_val")
    folder = workspace.root / "stages/split_val"
    assert folder.stat().st_mode & 0o777 == 0o755
    assert (folder / "val.txt").stat().st_mode & 0o777 == 0o644
    workspace.run("sh", "-c", "umask 022 && python -m carvana.evaluate")
    assert (workspace.root / "stages/evaluate/metrics.json").stat().st_mode & 0o777 == 0o644


def test_relative_source_is_the_repos_under_a_temp_experiment(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    tiny_dataset(tmp_path / "external")
    result = workspace.run("dvc", "exp", "run", "--temp", "-S", "download.source=../external", "download")
    assert "download: 6 images of 3 cars from ../external" in result.stdout
