"""The direction slider's strip (GET /api/models/{name}/path.png): tile k is the image decode.png
gives at z + t·v for t = lo + k·step, z rounded to hundredths as the page writes it."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from app.web.path_strip import js_round, path_latents, to_fixed_2

Z = [0.37, -1.2, 0, 0, 2, 0, 0, 0, 0, 0.25]
# six significant digits, as the direction API writes a vector
V = [0.812345, -0.0731, 1.5, 0, -0.333333, 0.004, 0, 2.25, -1.1, 0.0999999]


def text(values) -> str:
    return ",".join(repr(float(v)) for v in values)


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(resp.content)))


def tiles_of(client, model="tiny-vae", **params) -> list[np.ndarray]:
    q = {"z": text(Z), "v": text(V), **params}
    strip = png(client.get(f"/api/models/{model}/path.png", params=q))
    size = strip.shape[0]
    assert strip.shape[1] % size == 0
    return [strip[:, k : k + size] for k in range(0, strip.shape[1], size)]


def page_z(t: float, lo: float, hi: float) -> str:
    """What the page writes into a decode URL at t: Math.round(z·100)/100 (halves toward +∞,
    so 0 + −0.23 · 1.5 = −0.345 is −0.34 where Python's format says −0.35), then lo..hi."""
    rounded = (math.floor((a + t * b) * 100 + 0.5) / 100 for a, b in zip(Z, V, strict=True))
    return ",".join(f"{min(hi, max(lo, r)):.2f}" for r in rounded)


def single(client, t: float, lo: float = -10, hi: float = 10, **params) -> np.ndarray:
    """decode.png at the z the page asks for at t."""
    z = page_z(t, lo, hi)
    return png(client.get("/api/models/tiny-vae/decode.png", params={"z": z, **params}))


def test_each_tile_is_the_single_decode_at_the_rounded_z(client):
    tiles = tiles_of(client)
    assert len(tiles) == 201  # t = −1, −0.99, …, 1
    assert page_z(-0.23, -10, 10).split(",")[2] == "-0.34"  # a half, among those below
    for k in (0, 13, 77, 100, 163, 200):
        t = (-100 + k) / 100
        assert np.array_equal(tiles[k], single(client, t)), k
    assert not np.array_equal(tiles[0], tiles[-1])  # z really moves along v


def test_tiles_are_held_within_lower_and_upper(client):
    lower, upper = [-1.5] * 10, [1.25] * 10
    tiles = tiles_of(client, lo=-2, hi=2, step=0.5, lower=text(lower), upper=text(upper))
    assert len(tiles) == 9
    for k in (0, 4, 8):
        assert np.array_equal(tiles[k], single(client, -2 + 0.5 * k, -1.5, 1.25)), k


def test_a_strip_runs_from_lo_toward_hi_and_stops_at_the_tile_limit(client):
    down = tiles_of(client, lo=1, hi=-1, step=0.5)
    up = tiles_of(client, lo=-1, hi=1, step=0.5)
    assert len(down) == 5 and all(np.array_equal(a, b) for a, b in zip(down, up[::-1], strict=True))
    assert len(tiles_of(client, lo=-10, hi=10, step=0.01)) == 241  # MAX_SWEEP_POSITIONS


def test_a_cvae_strip_follows_its_label(client):
    a = tiles_of(client, "tiny-cvae", step=0.5, label=0)
    b = tiles_of(client, "tiny-cvae", step=0.5, label=2)
    assert len(a) == len(b) == 5 and not np.array_equal(a[0], b[0])


def test_a_strip_has_an_etag_and_answers_304(client):
    q = {"z": text(Z), "v": text(V), "step": 0.5}
    first = client.get("/api/models/tiny-vae/path.png", params=q)
    again = client.get(
        "/api/models/tiny-vae/path.png", params=q, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and "max-age" in first.headers["cache-control"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"v": None}, "v"),
        ({"v": "1,2"}, "v must have 10 values"),
        ({"v": text([float("nan")] + V[1:])}, "v must be finite"),
        ({"v": text([1e6] + V[1:])}, "v values must lie within"),
        ({"z": "a" + text(Z)}, "z[0]"),
        ({"lo": 0.005}, "lo must be a multiple of 0.01"),
        ({"hi": 11}, "hi"),
        ({"step": 0}, "step"),
        ({"step": 0.123}, "step must be a multiple of 0.01"),
        ({"lower": "1,2,3"}, "lower must have 10 values"),
        ({"upper": text([float("inf")] * 10)}, "upper must be finite"),
        ({"label": 99}, "label"),
    ],
)
def test_bad_strip_inputs_are_422s_naming_the_parameter(client, params, named):
    q = {"z": text(Z), "v": text(V), **params}
    q = {k: v for k, v in q.items() if v is not None}
    resp = client.get("/api/models/tiny-vae/path.png", params=q)
    assert resp.status_code == 422, resp.text
    assert named in str(resp.json()["detail"])


def test_the_rounding_is_javascripts():
    # Math.round: halves toward +∞, and 0.49999999999999994 stays 0 (floor(x + 0.5) gives 1)
    assert js_round(np.array([0.49999999999999994, 2.5, -2.5, -0.5])).tolist() == [0, 3, -2, 0]
    # toFixed(2): the double's exact value, halves away from 0, no −0
    fixed = to_fixed_2(np.array([1.005, 0.125, -0.125, -0.001]))
    assert fixed.tolist() == [1.0, 0.13, -0.13, 0.0] and str(fixed[-1]) == "0.0"
    z = path_latents(np.array([0.1]), np.array([0.3]), [0.07], np.array([-3.0]), np.array([3.0]))
    assert z.tolist() == [[np.float32(0.12)]]  # 0.1 + 0.021 = 0.121 → 0.12
