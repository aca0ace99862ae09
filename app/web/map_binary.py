"""The latent map as bytes: the JSON form's numbers as typed arrays the browser views in place,
with no text to parse (static/map_binary.js reads it).

Layout of the body (little-endian throughout):

    0 .. 7        ASCII magic `LEMAP001`
    8 .. 11       uint32 H, the header's length in bytes
    12 .. 12+H    the header: UTF-8 JSON, padded with spaces so that 12 + H is a multiple of 8
    then          the arrays, each starting at a multiple of 8 bytes from the start

The header is the JSON form's object without its long lists (`points`, `indices`, `latents`,
`prior_z`, and each `colour_by[i].values`), plus `arrays`: name → {dtype, shape, offset}:

    points          float32 [n, 2]  x, y of each point: the JSON's numbers (4 decimals) in float32
    indices         uint32  [n]     each point's image index
    latents         float32 [n, D]  μ, 4 decimals, only where n ≤ LATENTS_UP_TO (else absent:
                                    a point's μ is one GET /api/models/{name}/encode?index= away)
    prior_z         float32 [n, D]  a prior map's draws
    colour:<name>   one per colour_by entry, named by its `array`: a categorical column's codes
                    as uint8 (255 = no value) where it has fewer than 255 categories, uint16
                    (65535 = no value) below 65,535, else int32 (−1); an ordered column's
                    values as float32 of the JSON's 6 decimals (NaN = no value), its `missing`
                    null.

So every number decodes to the JSON form's number exactly, in float32 where it is a float
(tests/test_map_binary.py). The body is served gzip-compressed where the browser accepts it:
all 737,280 dSprites points with their six factor columns are 13.3 MB as bytes, less over the
wire (docs/benchmarks.md)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np

MAGIC = b"LEMAP001"
MEDIA_TYPE = "application/vnd.latent-explorer.map"
LATENTS_UP_TO = 20_000  # points past this ship without their μ (10 latents: 40 bytes a point)
GZIP_LEVEL = 1  # a 13 MB map compresses in a fraction of a second at 1, for little less at 6
ALIGN = 8


def _codes(values: list[Any] | np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """A categorical column's codes (−1: no value) in the smallest type that holds them."""
    codes = np.asarray(values, dtype=np.int64)
    for dtype, missing in ((np.uint8, 255), (np.uint16, 65535)):
        if size < missing:
            return np.where(codes < 0, missing, codes).astype(dtype), missing
    return codes.astype(np.int32), -1


def _ordered(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def split_payload(
    payload: dict[str, Any], arrays: dict[str, np.ndarray]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the arrays of a map, from the JSON form's object without its long lists
    (`payload`) and those lists as arrays (`arrays`: points, indices, latents, prior_z, each
    colour column's values under `colour:<name>`)."""
    header = dict(payload)
    out: dict[str, np.ndarray] = {
        "points": np.asarray(arrays["points"], dtype=np.float32).reshape(-1, 2),
        "indices": np.asarray(arrays["indices"]).astype(np.uint32),
    }
    n = len(out["indices"])
    if arrays.get("latents") is not None and n <= LATENTS_UP_TO:  # μ as the JSON has them
        out["latents"] = np.round(arrays["latents"].astype(np.float64), 4).astype(np.float32)
    if arrays.get("prior_z") is not None:
        out["prior_z"] = np.asarray(arrays["prior_z"], dtype=np.float32)
    colours = []
    for entry in payload["colour_by"]:
        name = f"colour:{entry['name']}"
        values = arrays[name]
        if entry["kind"] == "ordered":
            out[name], missing = np.asarray(values, dtype=np.float32), None
        else:
            out[name], missing = _codes(values, int(entry["size"]))
        colours.append({**entry, "array": name, "missing": missing})
    header["colour_by"] = colours
    return header, out


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The body: magic, header length, header, arrays at 8-byte boundaries."""
    layout: dict[str, dict[str, Any]] = {}
    blobs: list[bytes] = []
    offset = 0  # from the first array; made absolute below
    for name, a in arrays.items():
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        layout[name] = {"dtype": a.dtype.name, "shape": list(a.shape), "offset": offset}
        pad = -len(data) % ALIGN
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    # the header's own length moves the arrays: settle it by padding to a fixed point
    text = b""
    start = 0
    for _ in range(4):
        absolute = {k: {**v, "offset": v["offset"] + start} for k, v in layout.items()}
        text = json.dumps(
            {**header, "arrays": absolute}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        needed = len(MAGIC) + 4 + len(text)
        needed += -needed % ALIGN
        if needed == start:
            break
        start = needed
    text += b" " * (start - len(MAGIC) - 4 - len(text))
    head = MAGIC + len(text).to_bytes(4, "little") + text
    return head + b"".join(blobs)


def decode(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a body (as the browser reads it; for scripts and tests)."""
    if body[: len(MAGIC)] != MAGIC:
        raise ValueError(f"not a latent map: the body starts {body[:8]!r}, not {MAGIC!r}")
    size = int.from_bytes(body[8:12], "little")
    header = json.loads(body[12 : 12 + size])
    arrays = {}
    for name, spec in header.pop("arrays").items():
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        arrays[name] = np.frombuffer(body, dtype=dtype, count=count, offset=spec["offset"]).reshape(
            spec["shape"]
        )
    return header, arrays


def compressed(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
