import subprocess
import sys
import time

import mlflow
import pytest

from carvana.core.errors import CarvanaError
from carvana.core.paths import project_root, user_path, workspace_root
from carvana.core.redact import redact, redact_text
from carvana.inference import references
from carvana.server.processes import free_port
from carvana.tracking import store
from carvana.tracking.runs import continue_run, training_run


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """An empty repo root as DVC would announce it, with MLflow pointed nowhere yet."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def temp_copy(tmp_path, monkeypatch):
    """A stage running in a DVC temp copy of <tmp_path>/repo, as queued experiments do."""
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpk2j3"
    (copy / "stages").mkdir(parents=True)
    (copy / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(copy / "stages")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return copy


def test_queued_experiments_write_outputs_in_the_copy_and_track_into_the_repo(tmp_path, monkeypatch):
    copy = temp_copy(tmp_path, monkeypatch)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))  # what DVC sets for queued/--temp runs
    assert workspace_root() == copy
    assert project_root() == tmp_path / "repo"
    assert store.tracking_uri() == f"sqlite:///{tmp_path / 'repo' / 'mlruns' / 'mlflow.db'}"


def test_temp_copies_map_to_the_repo_without_dvc_root(tmp_path, monkeypatch):
    copy = temp_copy(tmp_path, monkeypatch)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert workspace_root() == copy
    assert project_root() == tmp_path / "repo"


def test_relative_user_paths_start_at_the_repo_also_in_temp_copies(tmp_path, monkeypatch):
    copy = temp_copy(tmp_path, monkeypatch)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    (copy / "data").mkdir()  # tracked, so the copy has it
    assert user_path("data") == copy / "data"
    assert user_path("../photos") == tmp_path / "repo" / ".." / "photos"  # not in the copy: the user's repo
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/photos") == tmp_path / "photos"


def test_mlflow_tracking_uri_wins(repo, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert store.tracking_uri() == "http://127.0.0.1:5000"
    assert store.artifact_location("http://127.0.0.1:5000") is None
    with store.store_lock("http://127.0.0.1:5000"):
        pass
    assert not (repo / "mlruns").exists()  # nothing is written to the local store


def test_experiment_artifacts_live_under_mlruns(repo):
    store.setup()
    location = mlflow.get_experiment_by_name("carvana").artifact_location
    assert location == (repo / "mlruns" / "artifacts").as_uri()


def test_continue_run_reopens_the_training_run(repo):
    with training_run({"train.lr": 0.1}) as run:
        pass
    with continue_run(run.info.run_id, "evaluate") as continued:
        mlflow.log_metric("eval_dice", 0.5)
    assert continued.info.run_id == run.info.run_id
    assert mlflow.get_run(run.info.run_id).data.metrics["eval_dice"] == 0.5


def test_missing_run_starts_a_new_one_tagged_with_its_origin(repo):
    store.setup()
    with continue_run("0123456789abcdef0123456789abcdef", "evaluate") as run:
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["origin_run_id"] == "0123456789abcdef0123456789abcdef"
    assert tags["stage"] == "evaluate"


EXIT_WITH_A_RUNNING_RUN = """
import mlflow
from carvana.tracking.runs import training_run
with training_run({"train.lr": 0.1}) as run:
    pass
mlflow.tracking.MlflowClient().update_run(run.info.run_id, "RUNNING")  # as if a stop signal cut its end short
mlflow.set_tracking_uri(None)  # MLflow's default store: an mlflow.db in the working directory
print(run.info.run_id)
"""


def test_a_run_left_running_is_ended_at_exit_in_its_own_store(repo):
    started = subprocess.run([sys.executable, "-c", EXIT_WITH_A_RUNNING_RUN], capture_output=True, text=True, cwd=repo)
    assert started.returncode == 0, started.stderr
    store.setup()
    assert mlflow.get_run(started.stdout.split()[-1]).info.status == "KILLED"
    assert not (repo / "mlflow.db").exists()


def test_a_deleted_run_is_treated_as_a_missing_one(repo):
    with training_run({"train.lr": 0.1}) as run:
        pass
    mlflow.tracking.MlflowClient().delete_run(run.info.run_id)
    with continue_run(run.info.run_id, "evaluate") as continued:
        mlflow.log_metric("eval_dice", 0.5)
    assert continued.info.run_id != run.info.run_id
    assert mlflow.get_run(continued.info.run_id).data.tags["origin_run_id"] == run.info.run_id


def test_models_latest_names_the_newest_version(repo):
    client = mlflow.tracking.MlflowClient(store.connect())
    client.create_registered_model("carvana-unet")
    runs = []
    for lr in (0.1, 0.2):
        with training_run({"train.lr": lr}) as run:
            runs.append(run.info.run_id)
        client.create_model_version("carvana-unet", f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert references.run_of("models:/carvana-unet/latest") == runs[-1]
    assert references.run_of("models:/carvana-unet/1") == runs[0]
    with pytest.raises(CarvanaError, match="--model models:/other/latest: the tracking store has no versions"):
        references.run_of("models:/other/latest")


def test_an_unreachable_server_is_one_line_within_seconds_without_its_password(repo, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:hunter2@127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(CarvanaError) as refused:
        references.default_reference()
    assert time.monotonic() - started < 15
    message = str(refused.value)
    assert "the tracking server http://***@127.0.0.1:" in message and "does not answer" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://user:pw@host:5000/x?token=abc&a=1", "http://***@host:5000/x?token=***&a=1"),
        ("postgresql://mlflow:s3cret@127.0.0.1:5432/mlflow", "postgresql://***@127.0.0.1:5432/mlflow"),
        (
            "https://bucket/k?X-Amz-Signature=zz&X-Amz-Credential=cc",
            "https://bucket/k?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("sqlite:////repo/mlruns/mlflow.db", "sqlite:////repo/mlruns/mlflow.db"),
        ("models:/carvana-unet@champion", "models:/carvana-unet@champion"),
    ],
)
def test_uris_are_shown_without_secrets(uri, shown):
    assert redact(uri) == shown


def test_uris_inside_a_message_are_shown_without_secrets():
    message = "could not reach ray://admin:hunter2@10.0.0.5:10001 (refused), nor 'http://u:pw@h:5000/x?token=t'"
    assert redact_text(message) == (
        "could not reach ray://***@10.0.0.5:10001 (refused), nor 'http://***@h:5000/x?token=***'"
    )
    assert redact_text("no uri here: host:6379") == "no uri here: host:6379"
