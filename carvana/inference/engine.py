"""The prediction engine: photos in, one call of every writer per photo out, the cores kept busy.

Three kinds of work overlap: worker threads decode photos straight to the model's size (libjpeg's DCT scaling),
the caller's thread runs the model on batches, and worker threads upsample each probability map to its photo's
size, threshold it and hand it to the writers (GIF, RLE, PNG encoding). Decoding, the model, OpenCV's resize and
the encoders all release the GIL, so threads share the cores without copying photos between processes. At most a
few batches are in flight, so memory stays flat whatever the number of photos.
"""

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

import numpy as np

from carvana.core.errors import CarvanaError
from carvana.data.resize import load_photo_sized
from carvana.inference.photos import AnyPhoto
from carvana.inference.refine import Refinement
from carvana.inference.segmenter import Segmenter, upsample
from carvana.inference.writers import Prediction, Writer

AHEAD = 2  # batches decoding ahead of the model, and batches being written behind it
OnError = Literal["stop", "skip"]


@dataclass
class Outcome:
    photo: AnyPhoto
    values: dict[str, Any] = field(default_factory=dict)  # what each writer returned, by the writer's key
    error: str | None = None


def predict(
    photos: Iterable[AnyPhoto],
    segmenter: Segmenter,
    writers: Sequence[Writer],
    threshold: float = 0.5,
    batch_size: int = 16,
    threads: int = 2,
    on_error: OnError = "stop",
    refinement: Refinement | None = None,
) -> Iterator[Outcome]:
    """Yield every photo's outcome, in order. A photo that fails (CarvanaError) stops the run, or with
    on_error="skip" is reported and left out; either way the writers finish or abort cleanly. The upsampled
    probabilities go through `refinement` (carvana.inference.refine) when there is one."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="predict")
    remaining = iter(photos)
    batches = iter(lambda: list(islice(remaining, batch_size)), [])
    decoding: deque[list[tuple[AnyPhoto, Future]]] = deque()
    writing: deque[list[tuple[AnyPhoto, Future]]] = deque()

    def decode_next() -> None:
        batch = next(batches, None)
        if batch:
            decoding.append([(photo, pool.submit(decode, photo, segmenter.size)) for photo in batch])

    def finish(batch: list[tuple[AnyPhoto, Future]]) -> Iterator[Outcome]:
        for photo, future in batch:
            values, error = result_or_error(future, on_error)
            if error is None:
                for writer in writers:
                    writer.collect(photo, values[writer.key])
            yield Outcome(photo, values or {}, error)

    try:
        for _ in range(AHEAD):
            decode_next()
        while decoding:
            batch = decoding.popleft()
            decode_next()
            ready = []
            for photo, future in batch:
                decoded, error = result_or_error(future, on_error)
                if error is None:
                    ready.append((photo, *decoded))
                else:
                    yield Outcome(photo, error=error)
            if ready:
                probabilities = segmenter.probabilities(np.stack([image for _, _, image in ready]))
                writing.append(
                    [
                        (photo, pool.submit(write, photo, size, probability, threshold, refinement, writers))
                        for (photo, size, _), probability in zip(ready, probabilities)
                    ]
                )
            while len(writing) > AHEAD:
                yield from finish(writing.popleft())
        while writing:
            yield from finish(writing.popleft())
    except BaseException:
        pool.shutdown(cancel_futures=True)  # running tasks finish their files; queued ones never start
        for writer in writers:
            writer.abort()
        raise
    pool.shutdown()
    for writer in writers:
        writer.close()


def decode(photo: AnyPhoto, size: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray]:
    return load_photo_sized(photo.open(), size, name=photo.name)


def write(
    photo: AnyPhoto,
    size: tuple[int, int],
    probability: np.ndarray,
    threshold: float,
    refinement: Refinement | None,
    writers: Sequence[Writer],
) -> dict[str, Any]:
    for writer in writers:
        writer.check(photo, size[1], size[0])
    prediction = Prediction(photo, upsample(probability, size), threshold)
    if refinement:
        prediction.probability = refinement(prediction.probability, prediction.rgb)
    return {writer.key: writer.write(prediction) for writer in writers}


def result_or_error(future: Future, on_error: OnError) -> tuple[Any, str | None]:
    """A task's result; a CarvanaError stops the run or, when skipping, is returned as the photo's error."""
    try:
        return future.result(), None
    except CarvanaError as error:
        if on_error == "stop":
            raise
        return None, str(error)
