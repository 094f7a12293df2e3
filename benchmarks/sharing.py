"""Sharing a pipeline's outputs: `dvc push` then `dvc pull` through an S3 remote (moto's server on loopback) vs
a local directory remote.

A DVC repository (without git) tracks what the download and prepare stages write for the benchmark's pairs:
stages/download/{train,train_masks}/ (the photos and masks) and stages/prepare/train/ (their arrays at the
model's resolution). A round trip pushes them to a fresh, empty remote, deletes them and pulls them back into a
fresh, empty cache, and checks that every object went both ways. It runs through DVC's Python API: the CLI's
start-up, the same on both sides, is left out. Rate: the bytes of the cached objects over the round trip's time.

moto's server runs in its own process on 127.0.0.1 (tests/servers.py): this measures the S3 protocol, moto and
DVC's S3 client against plain file copies, not a network.
"""

import itertools
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from dvc.repo import Repo

from benchmarks.measure import Work, compare
from benchmarks.report import Row, megabytes
from carvana.data.layout import image_path, mask_path
from tests.servers import ADMIN_KEY, S3Server

OUTPUTS = ["stages/download", "stages/prepare"]
BUCKET = "carvana"
S3_KEYS = {"access_key_id": ADMIN_KEY, "secret_access_key": ADMIN_KEY}


def measure(root: Path, ids: list[str], prepared: Path, work: Path, repeats: int, min_seconds: float) -> Row:
    logging.getLogger("dvc").setLevel(logging.WARNING)  # its info lines go to stdout, where the report goes
    repo = work / "sharing"
    track_outputs(repo, root, ids, prepared)
    objects = [path for path in (repo / ".dvc" / "cache").rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in objects)
    trips = itertools.count()

    def trip_through(remote: Callable[[int], dict[str, str]]) -> Work:
        def round_trip_mebibytes() -> float:
            trip = next(trips)
            round_trip(repo, remote(trip), work / f"cache-{trip}", len(objects))
            return size / 2**20

        return round_trip_mebibytes

    with S3Server(work / "s3-server") as server:
        server.create_bucket(BUCKET)
        comparison = compare(
            trip_through(lambda trip: {"url": f"s3://{BUCKET}/{trip}", "endpointurl": server.endpoint, **S3_KEYS}),
            trip_through(lambda trip: {"url": str(work / f"remote-{trip}")}),
            repeats,
            min_seconds,
        )
    return Row.of(
        "sharing: dvc push + dvc pull of a pipeline's outputs, loopback S3 (moto) vs local directory remote "
        f"({len(ids)} pairs and their arrays: {len(objects)} objects, {megabytes(size)})",
        comparison,
        "MiB/s",
        "—",
    )


def track_outputs(repo: Path, root: Path, ids: list[str], prepared: Path) -> None:
    """A DVC repository at repo tracking the download and prepare outputs of ids, in its cache."""
    download = repo / "stages" / "download"
    for image_id in ids:
        for path_in in (image_path, mask_path):
            path_in(download, image_id).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path_in(root, image_id), path_in(download, image_id))
    shutil.copytree(prepared, repo / "stages" / "prepare" / "train")
    with Repo.init(str(repo), no_scm=True) as dvc, dvc.config.edit() as config:
        config["core"]["site_cache_dir"] = str(repo.parent / "dvc-site-cache")  # not /var/tmp/dvc: gone at the end
    with Repo(str(repo)) as dvc:
        dvc.add([str(repo / output) for output in OUTPUTS])


def round_trip(repo: Path, remote: dict[str, str], cache: Path, objects: int) -> None:
    """Push the outputs to the (empty) remote, delete them, pull them back into the (empty) cache."""
    config = {"core": {"remote": "trip"}, "remote": {"trip": remote}}
    with Repo(str(repo), config=config) as dvc:
        pushed = dvc.push()
    for output in OUTPUTS:
        shutil.rmtree(repo / output)
    with Repo(str(repo), config={**config, "cache": {"dir": str(cache)}}) as dvc:
        pulled = dvc.pull()["stats"]["fetched"]
    if pushed != objects or pulled != objects:
        raise RuntimeError(f"sharing: {objects} objects in the cache, but {pushed} pushed and {pulled} pulled")
