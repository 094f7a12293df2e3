"""The real dataset from Kaggle, downloaded with the official `kaggle` client and extracted into Kaggle layout."""

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from carvana.core.errors import CarvanaError
from carvana.data.archive import extract_zip

if TYPE_CHECKING:
    from kaggle.api.kaggle_api_extended import KaggleApi

COMPETITION = "carvana-image-masking-challenge"
FILES = ("train.zip", "train_masks.zip")
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
NEW_TOKEN = "create an API token at https://www.kaggle.com/settings (Settings → API → Create New Token)"
LOCAL_FALLBACK = (
    f"download {' and '.join(FILES)} from https://www.kaggle.com/competitions/{COMPETITION}/data "
    "and set download.source in params.yaml to the folder holding them"
)


def fetch_kaggle(target: Path) -> None:
    """Download the training photos and masks of the competition and extract them into target."""
    credentials = _credentials_origin()
    # Importing the kaggle package authenticates (OSError without credentials), so only after our own check.
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target) as downloads:
        for name in FILES:
            _download(api, name, Path(downloads), credentials)
            extract_zip(Path(downloads) / name, target)


def _credentials_origin() -> str:
    """Where the kaggle client will find the API token (for messages); CarvanaError if it will find none."""
    # Same order as the client: both variables set (even if empty) win over kaggle.json.
    if "KAGGLE_USERNAME" in os.environ and "KAGGLE_KEY" in os.environ:
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config = _config_file()
    if not config.is_file():
        raise CarvanaError(
            f"download.source=kaggle needs Kaggle API credentials, but KAGGLE_USERNAME/KAGGLE_KEY are not set "
            f"and {config} does not exist. To fix, {NEW_TOKEN}, save the downloaded kaggle.json as {config} "
            f"and run `chmod 600 {config}`, or export KAGGLE_USERNAME and KAGGLE_KEY; or {LOCAL_FALLBACK}."
        )
    try:
        token = json.loads(config.read_text())
        if not isinstance(token.get("username"), str) or not isinstance(token.get("key"), str):
            raise ValueError('it lacks "username" or "key"')
    except (ValueError, AttributeError) as error:
        raise CarvanaError(
            f"{config}: not a Kaggle API token ({error}). To fix, {NEW_TOKEN} and save the downloaded "
            "kaggle.json there."
        ) from error
    return str(config)


def _config_file() -> Path:
    """kaggle.json where kaggle 1.7 looks: $KAGGLE_CONFIG_DIR, ~/.kaggle, or on Linux the XDG config folder."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    legacy = Path.home() / ".kaggle"
    if legacy.exists() or not sys.platform.startswith("linux"):
        return legacy / "kaggle.json"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle" / "kaggle.json"


def _download(api: "KaggleApi", name: str, folder: Path, credentials: str) -> None:
    """Download one competition file into folder, turning the client's HTTP errors into CarvanaError."""
    try:
        api.competition_download_file(COMPETITION, name, path=str(folder))
    except requests.HTTPError as error:
        raise _refused(error, name, credentials) from error
    except (requests.ConnectionError, requests.Timeout) as error:
        raise CarvanaError(
            f"could not reach Kaggle to download {name} ({type(error).__name__}); check the network or proxy, "
            f"or {LOCAL_FALLBACK}."
        ) from error


def _refused(error: requests.HTTPError, name: str, credentials: str) -> CarvanaError:
    """The CarvanaError for an HTTP error status from Kaggle or its file storage."""
    status = error.response.status_code if error.response is not None else None
    if status == 401:
        return CarvanaError(
            f"Kaggle rejected the API credentials from {credentials} (HTTP 401) while downloading {name}. "
            f"To fix, {NEW_TOKEN} and replace the old one."
        )
    if status == 403:
        return CarvanaError(
            f"Kaggle refused {name} (HTTP 403): the account from {credentials} has most likely not accepted the "
            f"competition rules. Accept them at {RULES_URL} while signed in with that account, then re-run."
        )
    return CarvanaError(f"Kaggle failed to send {name} ({error}); try again later, or {LOCAL_FALLBACK}.")
