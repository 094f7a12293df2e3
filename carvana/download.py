"""Stage download: put a checked dataset in Kaggle layout into stages/download/{train,train_masks}/, with
stages/download/manifest.tsv (each pair's id and MD5s), on which the later stages depend."""

import os

from carvana.core.atomic import atomic_dir
from carvana.core.errors import run_main
from carvana.core.outputs import stage_dir, write_manifest
from carvana.core.params import load_params
from carvana.data.layout import car_of, image_path, mask_path
from carvana.sources import fetch
from carvana.sources.check import check_dataset


def main() -> None:
    params = load_params()
    out = stage_dir("download")
    with atomic_dir(out) as tmp:
        fetch(params.download, params.seed, tmp)
        ids = check_dataset(tmp, f"download.source={params.download.source}")
        write_manifest(tmp, ids, lambda root, image_id: (image_path(root, image_id), mask_path(root, image_id)))
    cars = {car_of(image_id) for image_id in ids}
    print(f"download: {len(ids)} images of {len(cars)} cars from {params.download.source} -> {os.path.relpath(out)}")


if __name__ == "__main__":
    run_main(main)
