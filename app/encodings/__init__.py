"""What a model makes of a data set, computed once and kept: per image μ, log σ², the KL per
latent and −log p(x | z = μ), and whether the image could be read, as one Parquet file keyed by
the weights, the set's content, the fitting and the format (cache.py); computed in resumable
chunks with the images read ahead of the model (run.py), by several processes under torchrun
(distributed.py), or in a server's background (jobs.py).

    find_encoding(served, data, cache_dir)    a finished one or None; never computes
    encode_set(served, data, cache_dir, ...)  find it, else compute it (CLI, bench, tests)
    EncodingJobs(cache_dir).request(...)      a server's background runner: where it stands
    class_labels(served, data)                 a CVAE's class per image, from the set's column
"""

from app.encodings.cache import EncodingPlan, class_labels, find_encoding, plan_encoding
from app.encodings.jobs import EncodingJobs, EncodingStatus
from app.encodings.record import (
    ENCODING_FORMAT,
    DataEncoding,
    EncodingBusy,
    EncodingError,
    EncodingMeta,
)
from app.encodings.run import BATCH, CHUNK, Progress, RunSettings, encode_batch, encode_set

__all__ = [
    "BATCH",
    "CHUNK",
    "ENCODING_FORMAT",
    "DataEncoding",
    "EncodingBusy",
    "EncodingError",
    "EncodingJobs",
    "EncodingMeta",
    "EncodingPlan",
    "EncodingStatus",
    "Progress",
    "RunSettings",
    "class_labels",
    "encode_batch",
    "encode_set",
    "find_encoding",
    "plan_encoding",
]
