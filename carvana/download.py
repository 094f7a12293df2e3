"""Stage download: put a validated dataset in Kaggle layout into stages/download/{train,train_masks}/."""

from carvana.atomic import atomic_dir
from carvana.errors import run_main
from carvana.params import load_params
from carvana.paths import stage_dir
from carvana.sources import fetch
from carvana.validate import validate_dataset


def main() -> None:
    params = load_params()
    out = stage_dir("download")
    with atomic_dir(out) as tmp:
        fetch(params.download, params.seed, tmp)
        ids = validate_dataset(tmp, f"download.source={params.download.source}")
    cars = {image_id.rsplit("_", 1)[0] for image_id in ids}
    print(f"download: {len(ids)} images of {len(cars)} cars from {params.download.source} -> {out}")


if __name__ == "__main__":
    run_main(main)
