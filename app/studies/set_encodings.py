"""A served model's kept encoding of a served data set (app.encodings), as the pages ask for
it: found at once where it is kept, else started in this process's background and reported as
in progress, never computed while a request waits.

Encodings are kept in `Settings.cache_dir`/encodings, shared by every server process and kept
across restarts; a server without a cache folder keeps them in a folder of its own for as long as
it runs."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from app.checkpoints.served import DataKl, ServedModel
from app.data.sets import DataSets, ImageSet
from app.encodings.cache import class_labels
from app.encodings.jobs import EncodingJobs, EncodingStatus
from app.encodings.record import DataEncoding, EncodingError
from app.inference import NoClassColumn

log = logging.getLogger(__name__)
# a model's KL is measured at start-up only on a set this small (Fashion-MNIST's 70,000 take
# about a minute on 2 cores); all of dSprites, 737,280, would hold a core for many minutes
MAX_KL_IMAGES = 70_000

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
    """Where the encoding of `model` on `image_set` stands, starting it where nobody has.
    NoClassesInSet where the pair cannot be encoded at all (a CVAE, a set without its
    classes)."""
    require_classes(model, image_set)
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


def measure_missing_kl(
    models: Mapping[str, ServedModel], sets: DataSets, cache_dir: Path | None
) -> threading.Thread | None:
    """For each model whose card records no KL per latent (a plugin, an import without its
    training log) and whose own data is a served set (`DataSets.default_for`), its mean KL per
    latent over that set's images, from the set's kept encoding, computed in the background:
    `ServedModel.data_kl` is set when it is known, and the KL bars and latent order use it from
    then on. Returns the thread that waits for them (None when none is needed)."""
    wanted: list[tuple[ServedModel, ImageSet]] = []
    for model in models.values():
        if model.card.kl or model.description.kind == "ae" or model.data_kl is not None:
            continue
        image_set = sets.default_for(model.description.dataset)
        if image_set is not None and len(image_set) <= MAX_KL_IMAGES:
            wanted.append((model, image_set))
    if not wanted:
        return None
    jobs = encoding_jobs(cache_dir)

    def fill() -> None:
        for model, image_set in wanted:
            try:
                status = jobs.request(model, image_set)
                if status.encoding is None:
                    jobs.join()
                    status = jobs.request(model, image_set)
            except Exception as e:  # noqa: BLE001 (a set that cannot be read: no bars, logged)
                log.warning("no KL for %s on %s: %s", model.name, image_set.name, e)
                continue
            encoding = status.encoding
            if encoding is None or not encoding.ok.any():
                log.warning("no KL for %s on %s: %s", model.name, image_set.name,
                            status.reason or "no image could be encoded")  # fmt: skip
                continue
            model.data_kl = DataKl(
                tuple(round(float(v), 4) for v in encoding.mean_kl()),
                image_set.name,
                int(encoding.ok.sum()),
            )

    thread = threading.Thread(target=fill, name="measure-kl", daemon=True)
    thread.start()
    return thread


class NoClassesInSet(NoClassColumn):
    """A CVAE viewed on a set with no column of its classes: nothing of that pair can be
    encoded (the web layer's 404: the schema cannot know a set's columns)."""


def require_classes(model: ServedModel, image_set: ImageSet) -> None:
    """NoClassesInSet, naming what the CVAE needs, where `image_set` has no column of its
    classes; nothing for other models."""
    if model.description.kind != "cvae":
        return
    try:
        class_labels(model, image_set)
    except EncodingError as e:
        raise NoClassesInSet(str(e)) from None
