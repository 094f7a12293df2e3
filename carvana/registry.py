"""MLflow model registry: every trained model becomes a version of one registered model, and the alias
`champion` points at the version with the best full-resolution val dice (`models:/carvana-unet@champion`)."""

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MODEL_NAME = "carvana-unet"
CHAMPION = "champion"
SCORE = "eval_dice_full"


def promote_if_best(run_id: str, score: float) -> bool:
    """Point `champion` at this run's model version when it beats the current champion's score."""
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{run_id}'")
    if not versions:
        return False
    if score <= champion_score(client):
        return False
    latest = max(versions, key=lambda version: int(version.version))
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, latest.version)
    return True


def champion_score(client: MlflowClient) -> float:
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return float("-inf")
    return client.get_run(champion.run_id).data.metrics.get(SCORE, float("-inf"))
