"""Sharing through a DVC remote, end to end, for an S3 remote (moto's server on loopback) and a directory remote.

Clone A keeps the team's dataset in data/team (tracked by data/team.dvc, `download.source: data/team`), runs the
pipeline on it, commits, and pushes to a bare git repository and to the DVC remote. Clone B, a fresh `git clone`, runs
`dvc pull` and has nothing left to run. An experiment then travels the same way (`dvc exp push` / `dvc exp pull`
/ `dvc exp apply`). The S3 credentials are canary strings, set with `dvc remote modify --local`: they must show
up nowhere but each clone's .dvc/config.local.
"""

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from pipeline_workspace import Checkout, Workspace
from servers import S3Server

from carvana.sources.synthetic import generate

pytestmark = pytest.mark.e2e

BUCKET = "team-bucket"
EXPERIMENT = "lr-3e-3"
LOCAL_CONFIG = ".dvc/config.local"
UP_TO_DATE = "Data and pipelines are up to date."
EXPERIMENT_FILES = (
    "params.yaml",
    "stages/train/checkpoints/best.pt",
    "stages/train/metrics.json",
    "stages/evaluate/metrics.json",
)


@dataclass(frozen=True)
class Remote:
    """The DVC remote `storage`: its URL and settings, committed in .dvc/config, and its credentials, set with
    `dvc remote modify --local` in each clone's git-ignored .dvc/config.local."""

    url: str
    settings: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    server: S3Server | None = None

    def add_to(self, checkout: Checkout) -> None:
        checkout.run("dvc", "remote", "add", "-d", "storage", self.url)
        for key, value in self.settings.items():
            checkout.run("dvc", "remote", "modify", "storage", key, value)
        self.give_credentials(checkout)

    def give_credentials(self, checkout: Checkout) -> None:
        for key, value in self.credentials.items():
            checkout.run("dvc", "remote", "modify", "--local", "storage", key, value)


@dataclass(frozen=True)
class Clones:
    a: Checkout  # ran the pipeline and pushed
    bare: Path  # the git remote `origin`
    b: Checkout  # cloned from origin and pulled


@dataclass(frozen=True)
class AfterPull:
    a_files: dict[str, bytes]  # A's data/ and stages/ as pushed
    b_files: dict[str, bytes]  # B's as pulled
    status: str  # B's `dvc status` after the pull
    repro: str  # B's `dvc repro` after that
    git_status: str  # B's `git status --porcelain` after both


@dataclass(frozen=True)
class ExperimentTrip:
    baseline: dict[str, bytes]  # B's EXPERIMENT_FILES before `dvc exp apply`
    a_files: dict[str, bytes]  # A's after `dvc exp run`
    b_files: dict[str, bytes]  # B's after `dvc exp pull` and `dvc exp apply`
    a_metrics: dict[str, Any]  # the experiment's metrics in A's `dvc exp show --json`
    b_status: str  # B's `dvc status` after the apply


@pytest.fixture(scope="module", params=["s3", "directory"])
def remote(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    folder = tmp_path_factory.mktemp(f"{request.param}-remote")
    if request.param == "directory":
        yield Remote(str(folder / "storage"))
        return
    with S3Server(folder) as server:
        server.create_bucket(BUCKET)
        server.record_requests()
        canaries = {
            "access_key_id": f"CANARY-KEY-{secrets.token_hex(8)}",
            "secret_access_key": f"CANARY-SECRET-{secrets.token_hex(16)}",
        }
        yield Remote(f"s3://{BUCKET}/carvana", {"endpointurl": server.endpoint}, canaries, server)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clone A before it has a remote: the team's dataset in data/ and the pipeline run on it. Each remote's clones
    start from a copy (the pipeline runs once)."""
    a = Workspace(tmp_path_factory.mktemp("pipeline") / "a", extra={"download": {"source": "data/team"}})
    generate(a.root / "data" / "team", cars=4, width=240, height=160, seed=7, workers=1)
    a.run("dvc", "add", "data/team")
    a.run("dvc", "repro")
    return a.root


@pytest.fixture(scope="module")
def clones(remote: Remote, pipeline_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Clones:
    root = tmp_path_factory.mktemp("clones")
    shutil.copytree(pipeline_run, root / "a", symlinks=True)
    a, bare = pushed_workspace(Checkout(root / "a"), remote)
    a.run("git", "clone", "-q", str(bare), str(root / "b"))
    b = Checkout(root / "b")
    remote.give_credentials(b)
    b.run("dvc", "pull")
    return Clones(a, bare, b)


def pushed_workspace(a: Checkout, remote: Remote) -> tuple[Checkout, Path]:
    """Clone A, with the team's dataset in data/ and the pipeline run on it, pushed to git and to the DVC remote;
    and the bare git repository it pushed to."""
    root = a.root.parent
    remote.add_to(a)
    a.run("git", "add", "-A")
    a.run("git", "commit", "-q", "-m", "the team's dataset, the pipeline's results, the remote")
    bare = root / "origin.git"
    a.run("git", "init", "-q", "--bare", "-b", "main", str(bare))
    a.run("git", "remote", "add", "origin", str(bare))
    a.run("git", "push", "-q", "origin", "main")
    a.run("dvc", "push")
    return a, bare


def files(root: Path, *folders: str) -> dict[str, bytes]:
    """Every file below root/<folder>, by its path relative to root."""
    paths = (path for folder in folders for path in sorted((root / folder).rglob("*")) if path.is_file())
    return {str(path.relative_to(root)): path.read_bytes() for path in paths}


@pytest.fixture(scope="module")
def after_pull(clones: Clones) -> AfterPull:
    b = clones.b
    return AfterPull(
        a_files=files(clones.a.root, "data", "stages"),
        b_files=files(b.root, "data", "stages"),
        status=b.run("dvc", "status").stdout,
        repro=b.run("dvc", "repro").stdout,
        git_status=b.run("git", "status", "--porcelain").stdout,
    )


@pytest.fixture(scope="module")
def experiment(clones: Clones, after_pull: AfterPull) -> ExperimentTrip:
    a, b = clones.a, clones.b
    a.run("dvc", "exp", "run", "-n", EXPERIMENT, "-S", "train.lr=0.003")
    a.run("dvc", "exp", "push", "origin", EXPERIMENT)
    baseline = files_named(b.root, EXPERIMENT_FILES)
    b.run("dvc", "exp", "pull", "origin", EXPERIMENT)
    b.run("dvc", "exp", "apply", EXPERIMENT)
    return ExperimentTrip(
        baseline=baseline,
        a_files=files_named(a.root, EXPERIMENT_FILES),
        b_files=files_named(b.root, EXPERIMENT_FILES),
        a_metrics=experiment_metrics(a, EXPERIMENT),
        b_status=b.run("dvc", "status").stdout,
    )


def files_named(root: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in names}


def experiment_metrics(checkout: Checkout, name: str) -> dict[str, Any]:
    """The metrics of experiment `name` as `dvc exp show --json` reports them, by file."""
    shown = json.loads(checkout.run("dvc", "exp", "show", "--json").stdout)
    (found,) = [exp for rev in shown for exp in rev.get("experiments") or [] if exp.get("name") == name]
    return found["revs"][0]["data"]["metrics"]


def differing(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    return [path for path in a if a[path] != b[path]]


def test_pull_brings_the_dataset_and_every_output_byte_for_byte(after_pull: AfterPull):
    assert any(path.startswith("data/team/train_masks/") for path in after_pull.a_files)  # the team's dataset
    assert "stages/train/checkpoints/best.pt" in after_pull.a_files
    assert sorted(after_pull.b_files) == sorted(after_pull.a_files)
    assert differing(after_pull.a_files, after_pull.b_files) == []


def test_the_pulled_clone_has_nothing_to_run(clones: Clones, after_pull: AfterPull):
    assert after_pull.status.strip() == UP_TO_DATE
    assert UP_TO_DATE in after_pull.repro and "Running stage" not in after_pull.repro
    assert after_pull.git_status == ""  # nothing rewritten: not dvc.lock, not a metrics file
    assert not (clones.b.root / "mlruns").exists()  # no stage ran, so nothing was tracked


def test_an_experiment_travels_through_the_remote(experiment: ExperimentTrip):
    assert differing(experiment.a_files, experiment.b_files) == []
    best = "stages/train/checkpoints/best.pt"
    assert experiment.b_files[best] != experiment.baseline[best]  # the experiment's model, not the baseline's
    assert yaml.safe_load(experiment.b_files["params.yaml"])["train"]["lr"] == 0.003
    for name in ("stages/train/metrics.json", "stages/evaluate/metrics.json"):
        assert json.loads(experiment.b_files[name]) == experiment.a_metrics[name]["data"]
    assert experiment.b_status.strip() == UP_TO_DATE


@pytest.mark.parametrize("remote", ["s3"], indirect=True)  # a directory remote has no credentials
def test_credentials_stay_in_config_local(remote: Remote, clones: Clones, experiment: ExperimentTrip):
    assert remote.server is not None
    canaries = [value.encode() for value in remote.credentials.values()]
    signers = remote.server.signing_keys()
    assert signers and set(signers) == {remote.credentials["access_key_id"]}  # DVC used config.local's keys
    for checkout in (clones.a, clones.b):
        assert all(canary in (checkout.root / LOCAL_CONFIG).read_bytes() for canary in canaries)
        assert checkout.run("git", "ls-files", LOCAL_CONFIG).stdout == ""
        checkout.run("git", "check-ignore", "-q", LOCAL_CONFIG)  # fails unless ignored: `git add -A` skips it
    places = everywhere(clones, remote.server)
    assert sum(name.startswith("MLflow") for name in places) == 2  # A's baseline and experiment runs
    leaks = sorted(name for name, content in places.items() if any(canary in content for canary in canaries))
    assert leaks == [], "the credentials leaked to:\n" + "\n".join(leaks)


def everywhere(clones: Clones, server: S3Server) -> dict[str, bytes]:
    """Every place a credential could leak to, by name: each file of both clones (.git/, the DVC cache and
    mlruns/ included) but .dvc/config.local, and of the bare repository; every git object of the three,
    unpacked; the params and tags of every MLflow run; the output of every command run; the S3 server's log."""
    places: dict[str, bytes] = {}
    for repo in (clones.a.root, clones.b.root, clones.bare):
        places |= {str(path): path.read_bytes() for path in repo.rglob("*") if path.is_file()}
        places[f"git objects of {repo}"] = git_objects(repo)
    for checkout in (clones.a, clones.b):
        del places[str(checkout.root / LOCAL_CONFIG)]
        places |= mlflow_values(checkout)
        places |= command_outputs(checkout)
    places[str(server.log)] = server.log.read_bytes()
    return places


def command_outputs(checkout: Checkout) -> dict[str, bytes]:
    return {
        f"output of `{' '.join(command.args)}` (command {index} in {checkout.root})": command.stdout.encode()
        + command.stderr.encode()
        for index, command in enumerate(checkout.commands)
    }


def git_objects(repo: Path) -> bytes:
    """The content of every object in a git repository, loose or packed, reachable or not."""
    command = ["git", "cat-file", "--batch-all-objects", "--batch"]
    return subprocess.run(command, cwd=repo, capture_output=True, check=True).stdout


def mlflow_values(checkout: Checkout) -> dict[str, bytes]:
    """The param and tag values of every run in a clone's MLflow store (none when nothing ever ran there)."""
    if not (checkout.root / "mlruns" / "mlflow.db").exists():
        return {}
    client = MlflowClient(checkout.tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(experiments, run_view_type=ViewType.ALL)
    return {
        f"MLflow run {run.info.run_id} in {checkout.root}": "\n".join(
            [*run.data.params.values(), *run.data.tags.values()]
        ).encode()
        for run in runs
    }
