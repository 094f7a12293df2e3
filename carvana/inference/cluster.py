"""Batch prediction on Ray Data: `carvana predict --ray [ADDRESS]`, the same photos and outputs as single-process
predict, spread over the actors of a Ray cluster (or of a Ray started on this machine).

The photos are listed here into a dataset whose rows are chunks of photos, cut where single-process predict cuts its
batches, so that every photo meets the model in the same company and the outputs are byte-identical. A pool of
actors (`SegmentChunk`), each loading the model once, runs predict's own engine on its chunks: decoding, the model
and the writers overlap inside each actor, which writes the per-photo files (masks, cut-outs, composites)
atomically. What is collected in photo order (the submission's rows) streams back here. An actor that dies is
restarted and its chunk run again: its files are rewritten whole and the killed writer's temporary files swept.

On a cluster every node must see the photos, the model and the output folders at the paths this machine sees them
(a shared filesystem), and have carvana installed: docs/cluster.md.
"""

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carvana.core.errors import CarvanaError
from carvana.core.redact import redact, redact_text
from carvana.inference.engine import OnError, Outcome, predict
from carvana.inference.loading import ModelChoice
from carvana.inference.onnx_export import require
from carvana.inference.photos import Photo
from carvana.inference.refine import refinement
from carvana.inference.writers import Rle, Submission, Writer

CONNECT_TIMEOUT_S = 10
CHUNK_BATCHES = 4  # batches per task: enough for an actor's engine to overlap decoding, the model and writing


@dataclass(frozen=True)
class Cluster:
    address: str | None  # None: start a Ray on this machine for the run
    actors: int | None  # None: as many as the cluster's CPUs (or GPUs) hold
    cpus: float  # per actor: its torch threads and engine threads
    gpus: float  # per actor


def predict_on_ray(
    photos: Sequence[Photo], model: ModelChoice, writers: Sequence[Writer], on_error: OnError, cluster: Cluster
) -> Iterator[Outcome]:
    """Yield every photo's outcome in order, as carvana.inference.engine.predict does; the writers finish or abort."""
    try:
        yield from outcomes_on_ray(photos, model, writers, on_error, cluster)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()


def outcomes_on_ray(
    photos: Sequence[Photo], model: ModelChoice, writers: Sequence[Writer], on_error: OnError, cluster: Cluster
) -> Iterator[Outcome]:
    ray = connect(cluster.address)
    try:
        actors = cluster.actors or actors_held(ray.cluster_resources(), cluster)
        actor_writers = [on_workers(writer) for writer in writers]
        outcomes = chunks(ray, photos, model.batch_size * CHUNK_BATCHES).map_batches(
            SegmentChunk,
            batch_size=1,
            fn_constructor_kwargs={
                "model": model,
                "writers": actor_writers,
                "threads": max(1, int(cluster.cpus)),
                "folder": os.getcwd(),
            },
            compute=ray.data.ActorPoolStrategy(size=actors),  # Ray Data restarts a dead actor, reruns its chunks
            num_cpus=cluster.cpus,
            num_gpus=cluster.gpus,
        )
        for row in outcomes.iter_rows():
            photo, error = photos[row["index"]], row["error"] or None
            if error and on_error == "stop":
                raise CarvanaError(error)
            if error:
                yield Outcome(photo, error=error)
                continue
            for writer in writers:
                writer.collect(photo, row[writer.key])
            yield Outcome(photo, {writer.key: row[writer.key] for writer in writers})
    finally:
        ray.shutdown()


def connect(address: str | None) -> Any:
    """Ray, joined to the cluster at `address`, or started on this machine for this run."""
    ray = require("ray", extra="ray")
    require("ray.data", extra="ray")
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, logging_level="ERROR")
        else:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise CarvanaError(
            f"--ray {redact(address or '')}: no Ray cluster answers there ({redact_text(str(error))}); start one with "
            "`ray start --head` and give its address (host:6379), or give --ray alone for a Ray on this machine"
        ) from None
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the submission's rows in photo order, as they stream back
    context.enable_progress_bars = False  # predict shows its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": on purpose
    return ray


def check_reachable(address: str) -> None:
    """Refuse an address where nothing listens within seconds: ray.init would retry it for minutes, quietly."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ConnectionError(f"nothing answers at {host}:{port}: {error.strerror or error}") from None


def actors_held(resources: dict[str, float], cluster: Cluster) -> int:
    """As many actors as the cluster's CPUs hold (and its GPUs, when each actor takes some)."""
    count = resources.get("CPU", 0) // cluster.cpus
    if cluster.gpus:
        count = min(count, resources.get("GPU", 0) // cluster.gpus)
    if not count:
        raise CarvanaError(
            f"--ray-cpus {cluster.cpus:g} --ray-gpus {cluster.gpus:g}: the cluster ({resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs) holds no actor of that size; ask for fewer"
        )
    return int(count)


def chunks(ray: Any, photos: Sequence[Photo], size: int) -> Any:
    """A dataset of one row per `size` photos: where they start in the list, and the photos."""
    starts = range(0, len(photos), size)
    rows = [{"start": start, "photos": [fields(photo) for photo in photos[start : start + size]]} for start in starts]
    return ray.data.from_items(rows, override_num_blocks=len(rows))


def fields(photo: Photo) -> list[str]:
    return [photo.image_id, photo.name, str(photo.path), photo.member or ""]


def on_workers(writer: Writer) -> Writer:
    """What an actor runs of a writer: the submission's rows are collected here, so the actors only encode them."""
    return Rle() if isinstance(writer, Submission) else writer


class SegmentChunk:
    """A Ray actor: the model, loaded once, run by predict's engine on chunk after chunk of photos."""

    def __init__(self, model: ModelChoice, writers: list[Writer], threads: int, folder: str) -> None:
        try:
            os.chdir(folder)  # relative photos, models and outputs mean what they mean where predict was started
        except OSError as error:
            raise CarvanaError(
                f"{folder} is not on this node ({error}): a cluster run needs the photos, the model and the outputs "
                "on a filesystem every node shares at the same path"
            ) from None
        self.segmenter, self.settings = model.load()
        self.writers, self.threads, self.batch_size = writers, threads, model.batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        (start,), (rows,) = batch["start"], batch["photos"]
        photos = [Photo(image_id, name, Path(path), member or None) for image_id, name, path, member in rows]
        settings = self.settings
        outcomes = list(
            predict(
                photos,
                self.segmenter,
                self.writers,
                settings.threshold,
                self.batch_size,
                self.threads,
                "skip",
                refinement(settings, self.segmenter.edge_refiner),
            )
        )
        values = {writer.key: [outcome.values.get(writer.key) for outcome in outcomes] for writer in self.writers}
        return {
            "index": [start + i for i in range(len(outcomes))],
            "error": [outcome.error or "" for outcome in outcomes],
            **values,
        }
