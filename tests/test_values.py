"""The explorer's answers checked for value, not shape: interpolation against closed forms,
traversal rows and columns against decodes of the latents they should hold, prior samples
against N(0, I), a model's JSON against its own files, and dataset images against the sprite
geometry. Each expected value is computed here, independently of the code under test."""

from __future__ import annotations

import html
import io
import json
import math
import re
import shutil
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from scipy import stats

from app.inference import interpolate_latents, traversal_latents
from app.main import create_app
from app.settings import Settings

TILE, PAD = 64, 2  # a grid's tiles and the gap around them (pixels)
# Known latent order of the "tiny-ranked" copy: its card's KL per latent, chosen here.
RANKED_KL = [0.5, 3.0, 0.1, 2.0, 0.0, 1.0, 0.2, 4.0, 0.3, 0.05]
RANKED_ORDER = [7, 1, 3, 5, 0, 8, 6, 2, 9, 4]  # by KL, largest first


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("values-served")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    # the CVAE's weights (its decoder responds to every latent) with a card whose KL ranks the
    # latents in an order known here
    shutil.copytree(trained["tiny-cvae"], root / "tiny-ranked")
    card = json.loads((root / "tiny-ranked" / "card.json").read_text())
    card["kl_per_dim"] = RANKED_KL
    (root / "tiny-ranked" / "card.json").write_text(json.dumps(card))
    return root


@pytest.fixture(scope="module")
def api(served):
    with TestClient(create_app(Settings(checkpoints_dir=served))) as c:
        yield c


def text(z) -> str:
    """A latent as the API reads it: every digit of the float64, parsed to float32 there."""
    return ",".join(repr(float(v)) for v in z)


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(resp.content))).astype(np.int16)


def tile(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    y, x = PAD + row * (TILE + PAD), PAD + col * (TILE + PAD)
    return grid[y : y + TILE, x : x + TILE]


def decoded(api, model: str, z, label: int | None = None) -> np.ndarray:
    params: dict = {"z": text(z)}
    if label is not None:
        params["label"] = label
    return png(api.get(f"/api/models/{model}/decode.png", params=params))


# --- interpolation: closed forms ---------------------------------------------------------------


def great_circle(z0: np.ndarray, z1: np.ndarray, t: float) -> np.ndarray:
    """The point a fraction t of the way along the great circle from z0 to z1, for |z0| = |z1|.
    In the orthonormal basis (e1, e2) of their plane, z0 = r·e1 and
    z(t) = r(cos tΩ e1 + sin tΩ e2)."""
    r = np.linalg.norm(z0)
    e1 = z0 / r
    w = z1 - (z1 @ e1) * e1  # Gram–Schmidt: the part of z1 orthogonal to z0
    e2 = w / np.linalg.norm(w)
    omega = math.atan2(z1 @ e2, z1 @ e1)
    return r * (math.cos(t * omega) * e1 + math.sin(t * omega) * e2)


def test_linear_interpolation_is_the_straight_line_at_every_step():
    z0 = np.array([1.5, -2.0, 0.25, 3.0])
    z1 = np.array([-0.5, 1.0, 2.25, -1.0])
    path = interpolate_latents(torch.tensor(z0), torch.tensor(z1), 5, "linear").numpy()
    assert path.shape == (5, 4)
    for k, t in enumerate([0, 0.25, 0.5, 0.75, 1]):
        np.testing.assert_allclose(path[k], z0 + t * (z1 - z0), atol=1e-5)


def test_slerp_follows_the_great_circle_at_interior_points():
    rng = np.random.default_rng(3)
    for d in (2, 3, 10):
        z0 = rng.normal(size=d)
        z1 = rng.normal(size=d)
        z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)  # equal norms: the path is on one sphere
        path = interpolate_latents(torch.tensor(z0), torch.tensor(z1), 7, "slerp").numpy()
        for k in range(7):
            np.testing.assert_allclose(path[k], great_circle(z0, z1, k / 6), atol=1e-5)
            # the norm never shrinks, as a straight line's does in the middle
            assert np.linalg.norm(path[k]) == pytest.approx(np.linalg.norm(z0), rel=1e-6)


def test_slerp_with_unequal_norms_is_shoemakes_in_the_plane():
    """z0 = (a, 0), z1 = b(cos Ω, sin Ω): z(t) = (a sin((1−t)Ω) + b sin(tΩ) cos Ω, b sin(tΩ)
    sin Ω) / sin Ω, written out by hand; at a right angle (sin Ω = 1, cos Ω = 0) simply
    (a cos tΩ, b sin tΩ)."""
    a, b = 2.0, 0.5
    z0, z1 = np.array([a, 0.0]), np.array([0.0, b])  # Ω = π/2
    path = interpolate_latents(torch.tensor(z0), torch.tensor(z1), 3, "slerp").numpy()
    c = math.cos(math.pi / 4)
    np.testing.assert_allclose(path[1], [a * c, b * c], atol=1e-5)
    omega = 2.0  # radians, obtuse
    z1 = b * np.array([math.cos(omega), math.sin(omega)])
    path = interpolate_latents(torch.tensor(z0), torch.tensor(z1), 5, "slerp").numpy()
    for k, t in enumerate([0, 0.25, 0.5, 0.75, 1]):
        s = math.sin(omega)
        want = [
            (a * math.sin((1 - t) * omega) + b * math.sin(t * omega) * math.cos(omega)) / s,
            b * math.sin(t * omega),
        ]
        np.testing.assert_allclose(path[k], want, atol=1e-5)


def test_interpolation_ends_are_exactly_the_two_codes():
    z0 = torch.tensor([0.3, -1.7, 2.2], dtype=torch.float32)
    z1 = torch.tensor([-2.9, 0.4, 1.1], dtype=torch.float32)
    for method in ("linear", "slerp"):
        for steps in (2, 3, 8):
            path = interpolate_latents(z0, z1, steps, method)
            assert path.shape == (steps, 3)
            torch.testing.assert_close(path[0], z0, rtol=0, atol=1e-6)
            torch.testing.assert_close(path[-1], z1, rtol=0, atol=1e-6)


def test_slerp_between_opposite_or_parallel_codes_is_the_straight_line():
    """No unique great circle: the documented fallback is the line (through the origin)."""
    z0 = np.array([1.0, 2.0, -1.0])
    for z1 in (-z0, 3 * z0):
        path = interpolate_latents(torch.tensor(z0), torch.tensor(z1), 5, "slerp").numpy()
        for k, t in enumerate([0, 0.25, 0.5, 0.75, 1]):
            np.testing.assert_allclose(path[k], z0 + t * (z1 - z0), atol=1e-5)


# --- interpolation through the API and the page -----------------------------------------------

# two codes of equal norm, 120° apart in the plane of the model's first two latents, plus a
# shared part: the straight line's middle is much shorter than the great circle's
Z0 = np.array([2.4, 0.0, 0.5, -0.5, 0.3, 0.0, 0.2, -0.2, 0.1, 0.4])
Z1 = np.array([2.4 * math.cos(2.1), 2.4 * math.sin(2.1), 0.5, -0.5, 0.3, 0.0, 0.2, -0.2, 0.1, 0.4])


def strip_tiles(img: np.ndarray, steps: int) -> list[np.ndarray]:
    assert img.shape == (TILE + 2 * PAD, steps * (TILE + PAD) + PAD)
    return [tile(img, 0, k) for k in range(steps)]


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_strip_tiles_are_the_decodes_of_the_closed_form_path(api, method):
    steps = 5
    q = {"z0": text(Z0), "z1": text(Z1), "steps": steps, "method": method, "label": 1}
    tiles = strip_tiles(png(api.get("/api/models/tiny-cvae/interpolate.png", params=q)), steps)
    z0f, z1f = Z0.astype(np.float32).astype(np.float64), Z1.astype(np.float32).astype(np.float64)
    for k in range(steps):
        t = k / (steps - 1)
        line = z0f + t * (z1f - z0f)
        if method == "linear":
            want, other = line, None
        else:
            # |Z0| = |Z1| only up to float32 rounding of the parsed values: the great circle of
            # their common norm is exact to ~1e-7, far below what moves a pixel
            want, other = great_circle(z0f, z1f, t), line
        expected = decoded(api, "tiny-cvae", want, 1)
        assert np.abs(tiles[k] - expected).max() <= 1, (method, k)  # float32 rounding of z
        if other is not None and 0 < k < steps - 1:
            # the test can tell the two paths apart: a slerp that was secretly linear fails
            wrong = decoded(api, "tiny-cvae", other, 1)
            assert np.abs(tiles[k] - wrong).mean() > 1.0, k


def test_the_interpolate_page_strips_run_between_the_encodings_of_the_two_images(api):
    a, b = 123_456, 654_321  # dSprites indices
    r = api.post("/ui/tiny-ae/interpolate", data={"index_a": a, "index_b": b, "steps": 4})
    assert r.status_code == 200, r.text
    state = parse_qs(urlsplit(r.headers["HX-Replace-Url"]).query)
    encode = "/api/models/tiny-ae/encode"
    mu = {i: api.get(encode, params={"index": i}).json()["mu"] for i in (a, b)}
    z0 = [float(v) for v in state["z0"][0].split(",")]
    z1 = [float(v) for v in state["z1"][0].split(",")]
    np.testing.assert_allclose(z0, mu[a], atol=6e-4)  # written with three decimals
    np.testing.assert_allclose(z1, mu[b], atol=6e-4)
    assert not np.allclose(z0, z1, atol=1e-2)  # two different images, two different codes
    for method in ("linear", "slerp"):
        src = re.search(rf'id="strip-{method}" src="([^"]+)"', r.text)
        assert src, method
        url = html.unescape(src.group(1))
        params = parse_qs(urlsplit(url).query)
        assert params["method"] == [method] and params["steps"] == ["4"]
        scale = int(params.get("scale", ["1"])[0])
        strip = png(api.get(url))[::scale, ::scale]
        tiles = strip_tiles(strip, 4)
        z0a, z1a = (np.array(z, np.float32).astype(np.float64) for z in (z0, z1))  # as parsed
        for k, t in enumerate([0, 1 / 3, 2 / 3, 1]):
            if method == "linear":
                want = z0a + t * (z1a - z0a)
            else:
                omega = math.acos(z0a @ z1a / np.linalg.norm(z0a) / np.linalg.norm(z1a))
                s = math.sin(omega)
                want = math.sin((1 - t) * omega) / s * z0a + math.sin(t * omega) / s * z1a
            assert np.abs(tiles[k] - decoded(api, "tiny-ae", want)).max() <= 1, (method, k)


# --- traversal ----------------------------------------------------------------------------------


def test_traversal_latents_sweep_the_rows_own_latent_over_the_values():
    z = torch.tensor([0.1, -0.2, 0.3, -0.4])
    dims, values = [2, 0, 3], torch.tensor([-1.0, 0.5, 2.0])
    out = traversal_latents(z, dims, values)
    assert out.shape == (9, 4)
    for r, d in enumerate(dims):
        for k, v in enumerate(values.tolist()):
            want = z.clone()
            want[d] = v
            assert torch.equal(out[r * 3 + k], want), (r, k)


def test_traverse_png_rows_are_latents_by_kl_and_columns_the_swept_values(api):
    """Every tile equals decode.png of the latent it should show: row r sweeps the r-th latent
    by the card's KL, column k holds it at −span + k·2·span/(steps − 1), the rest at z."""
    z = [0.3, -0.2, 0.1, 0.4, -0.5, 0.2, -0.1, 0.35, -0.25, 0.15]
    steps, span = 5, 2.0
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]
    grid = png(
        api.get(
            "/api/models/tiny-ranked/traverse.png",
            params={"z": text(z), "steps": steps, "span": span, "label": 1},
        )
    )
    assert grid.shape == (10 * (TILE + PAD) + PAD, steps * (TILE + PAD) + PAD)
    for r, dim in enumerate(RANKED_ORDER):
        for k, v in enumerate(values):
            at = list(z)
            at[dim] = v
            assert np.array_equal(tile(grid, r, k), decoded(api, "tiny-ranked", at, 1)), (r, k)
    # each row is its own latent's: no two rows show the same first column
    firsts = [tile(grid, r, 0) for r in range(10)]
    assert all(not np.array_equal(firsts[i], firsts[j]) for i in range(10) for j in range(i))


def test_model_json_orders_latents_by_the_cards_kl(api, served):
    assert api.get("/api/models/tiny-ranked").json()["latent_order"] == RANKED_ORDER
    kl = json.loads((served / "tiny-cvae" / "card.json").read_text())["kl_per_dim"]
    want = sorted(range(10), key=lambda i: -kl[i])
    assert api.get("/api/models/tiny-cvae").json()["latent_order"] == want


# --- prior samples -------------------------------------------------------------------------------


def test_prior_samples_have_the_moments_of_a_standard_normal(api):
    """4 × 256 draws of 10 latents: mean 0, variance 1 and excess kurtosis 0 per latent, no
    correlation between latents, and a standard normal's distribution (KS). A uniform of the
    same variance has excess kurtosis −1.2, a KS distance of ~0.06 at this size."""
    draws = [
        api.get("/api/models/tiny-vae/sample", params={"n": 256, "seed": s}).json()["z"]
        for s in range(4)
    ]
    z = np.concatenate([np.asarray(d) for d in draws])
    assert z.shape == (1024, 10)
    n = len(z)
    # standard errors at n = 1,024 draws per latent: mean 0.031, variance 0.044, kurtosis 0.15
    assert np.abs(z.mean(axis=0)).max() < 5 / math.sqrt(n)
    assert np.abs(z.var(axis=0) - 1).max() < 5 * math.sqrt(2 / n)
    assert np.abs(stats.kurtosis(z.ravel())) < 5 * math.sqrt(24 / z.size)
    assert np.abs(stats.kurtosis(z, axis=0)).max() < 5 * math.sqrt(24 / n)
    corr = np.corrcoef(z.T)
    assert np.abs(corr - np.eye(10)).max() < 5 / math.sqrt(n)
    ks = stats.kstest(z.ravel(), "norm")
    assert ks.statistic < 1.63 / math.sqrt(z.size)  # the 1% critical value
    # the four seeds drew four different sets, not one set four times
    assert len({tuple(np.round(z[i * 256], 6)) for i in range(4)}) == 4


def test_a_sample_of_n_has_n_independent_rows(api):
    z = np.asarray(api.get("/api/models/tiny-ae/sample", params={"n": 200, "seed": 11}).json()["z"])
    assert z.shape == (200, 10)
    assert len(np.unique(z.round(6), axis=0)) == 200
    # consecutive draws are uncorrelated (a stream that repeated or drifted would not be)
    lag = np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]
    assert abs(lag) < 5 / math.sqrt(z.size)


# --- a model's JSON -------------------------------------------------------------------------------


def test_get_model_returns_the_checkpoints_own_config_and_card(api, served):
    for name in ("tiny-ae", "tiny-vae", "tiny-cvae"):
        config = json.loads((served / name / "config.json").read_text())
        card = json.loads((served / name / "card.json").read_text())
        r = api.get(f"/api/models/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["name"] == name
        assert body["kind"] == config["kind"]
        assert body["beta"] == config["beta"]
        assert body["objective"] == config["objective"]
        assert body["latent_dim"] == config["latent_dim"]
        assert body["labels"] == config["label_names"]
        assert body["image_size"] == config["image_size"]
        assert body["channels"] == config["channels"]
        assert body["dataset"] == config["dataset"]
        assert body["factors"] == config["factor_names"]
        assert body["dataset_images"] == 3 * 6 * 40 * 32 * 32
        assert body["card"] == card
    assert api.get("/api/models/tiny-cvae").json()["labels"] == ["square", "ellipse", "heart"]
    assert api.get("/api/models/tiny-vae").json()["beta"] == 4.0


# --- dataset images -----------------------------------------------------------------------------

SIZES = (3, 6, 40, 32, 32)  # shape, scale, orientation, pos_x, pos_y (the official file's order)


def flat_index(classes) -> int:
    """Mixed radix, last factor fastest: the official file's row order."""
    i = 0
    for c, n in zip(classes, SIZES, strict=True):
        i = i * n + c
    return i


def heart_polygon() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 4001)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y], axis=1)


def inside_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even–odd rule on a ray to +x, for every point (x, y)."""
    x0, y0 = poly[:-1, 0], poly[:-1, 1]
    x1, y1 = poly[1:, 0], poly[1:, 1]
    xs, ys = x.ravel()[:, None], y.ravel()[:, None]
    crosses = (y0 > ys) != (y1 > ys)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (xs < xc)).sum(axis=1) % 2 == 1).reshape(x.shape)


def sprite(shape: int, scale: int, orientation: int, pos_x: int, pos_y: int) -> np.ndarray:
    """dSprites' geometry, in float64: scale 0.5…1 in six steps, orientation 0…2π in forty
    (both ends included), centre at 16 + 32·pos/31 px (x the column, y the row), turned
    counter-clockwise as displayed; a pixel is on when its centre is inside. Square of side
    19.2·s; ellipse of semi-axes 12.7·s × 7.2·s; heart x = 16 sin³t, y = 13 cos t − 5 cos 2t −
    2 cos 3t − cos 4t at 0.6·s × 0.648·s px per unit, raised 1.5·s px."""
    s = 0.5 + 0.1 * scale
    theta = 2 * np.pi * orientation / 39
    cx, cy = 16 + 32 * pos_x / 31, 16 + 32 * pos_y / 31
    cols, rows = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5)
    dx, dy = cols - cx, cy - rows  # y up
    u = math.cos(theta) * dx + math.sin(theta) * dy  # the pixel in the sprite's own frame
    v = -math.sin(theta) * dx + math.cos(theta) * dy
    if shape == 0:
        on = np.maximum(np.abs(u), np.abs(v)) <= 9.6 * s
    elif shape == 1:
        on = (u / (12.7 * s)) ** 2 + (v / (7.2 * s)) ** 2 <= 1
    else:
        on = inside_polygon(u / (0.6 * s), (v - 1.5 * s) / (0.648 * s), heart_polygon())
    return on.astype(np.int16) * 255


@pytest.mark.parametrize(
    "classes",
    [
        (0, 0, 0, 0, 0),  # index 0: the smallest square, top left
        (0, 5, 0, 4, 26),
        (0, 2, 5, 31, 0),  # turned 46°
        (1, 3, 7, 20, 11),
        (1, 5, 20, 16, 16),  # turned ~185°
        (2, 4, 0, 10, 21),
        (2, 1, 13, 28, 5),
        (2, 5, 39, 31, 31),  # the last index
    ],
)
def test_dsprites_png_is_the_sprite_its_index_names(api, classes):
    i = flat_index(classes)
    img = png(api.get(f"/api/dsprites/{i}.png"))
    assert img.shape == (64, 64) and set(np.unique(img)) <= {0, 255}
    want = sprite(*classes)
    # the app renders in float32: a pixel centre on an edge may fall either way
    assert (img != want).sum() <= 4, (i, int((img != want).sum()))
    assert want.sum() > 0
    big = png(api.get(f"/api/dsprites/{i}.png", params={"scale": 3}))
    assert np.array_equal(big[::3, ::3], img) and big.shape == (192, 192)


def test_dsprites_index_strides_are_the_official_files():
    assert flat_index((0, 0, 0, 0, 1)) == 1
    assert flat_index((0, 0, 0, 1, 0)) == 32
    assert flat_index((0, 0, 1, 0, 0)) == 1024
    assert flat_index((0, 1, 0, 0, 0)) == 40_960
    assert flat_index((1, 0, 0, 0, 0)) == 245_760
    assert flat_index((2, 5, 39, 31, 31)) == 737_279


def test_neighbouring_indices_draw_different_sprites(api):
    """The comparison above has the power to see an off-by-one index: pos_y moves by a pixel."""
    classes = (1, 3, 7, 20, 11)
    img = png(api.get(f"/api/dsprites/{flat_index(classes) + 1}.png"))
    assert (img != sprite(*classes)).sum() > 10
