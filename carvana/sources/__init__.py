"""Where the dataset comes from: `download.source` is `synthetic`, `kaggle`, or a folder/zip path."""

from pathlib import Path

from carvana.core.params import DownloadParams
from carvana.core.paths import user_path


def fetch(download: DownloadParams, seed: int, target: Path) -> None:
    """Write the dataset in Kaggle layout into `target` (a fresh folder)."""
    if download.source == "synthetic":
        from carvana.sources.synthetic import generate

        synthetic = download.synthetic
        generate(target, synthetic.cars, synthetic.width, synthetic.height, seed, synthetic.jpeg_quality)
    elif download.source == "kaggle":
        from carvana.sources.kaggle import fetch_kaggle

        fetch_kaggle(target)
    else:
        from carvana.sources.local import fetch_local

        fetch_local(user_path(download.source), target)
