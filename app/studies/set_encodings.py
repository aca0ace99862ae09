"""A served model's kept encoding of a served data set (app.encodings), as the pages ask for
it: found at once where it is kept, else started in this process's background and reported as
in progress, never computed while a request waits.

Encodings are kept in `Settings.cache_dir`/encodings, shared by every server process and kept
across restarts; a server without a cache folder keeps them in a folder of its own for as long as
it runs."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from app.checkpoints.served import ServedModel
from app.data.sets import ImageSet
from app.encodings.jobs import EncodingJobs, EncodingStatus
from app.encodings.record import DataEncoding

_jobs: dict[Path | None, EncodingJobs] = {}
_lock = threading.Lock()


def encoding_jobs(cache_dir: Path | None) -> EncodingJobs:
    """This process's background encoder for one cache folder (None: a temporary folder that
    lives as long as the process)."""
    with _lock:
        if cache_dir not in _jobs:
            folder = cache_dir or Path(tempfile.mkdtemp(prefix="latent-explorer-cache-"))
            _jobs[cache_dir] = EncodingJobs(folder)
        return _jobs[cache_dir]


def encoding_status(
    model: ServedModel, image_set: ImageSet, cache_dir: Path | None
) -> EncodingStatus:
    """Where the encoding of `model` on `image_set` stands, starting it where nobody has."""
    return encoding_jobs(cache_dir).request(model, image_set)


def kept_encoding(
    model: ServedModel, image_set: ImageSet, cache_dir: Path | None
) -> DataEncoding | None:
    """The finished encoding, or None (nothing is started)."""
    status = encoding_jobs(cache_dir).status(model, image_set)
    return status.encoding if status is not None else None


def progress_text(image_set: ImageSet, status: EncodingStatus) -> str:
    """Where an encoding stands, in a sentence for a page."""
    n = len(image_set)
    if status.state == "queued":
        return f"queued to encode the {n:,} images of data set {image_set.name}"
    where = " (in another server process)" if status.elsewhere else ""
    rate = f", {status.images_per_s:,.0f} images/s" if status.images_per_s > 0 else ""
    return (
        f"encoding the {n:,} images of data set {image_set.name}{where}: "
        f"{status.fraction:.0%} done{rate}"
    )

