"""Layouts of a data set computed elsewhere: POST /api/datasets/{dataset}/layouts takes a
Parquet or CSV of index, x, y; every bad file is refused in one line naming the problem, with
nothing written; a good one is listed, and the map draws it with method=loaded. The files and
the positions expected back are written here."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs

SET = "dots"
TEST, TRAIN = 8, 4  # the set's order is its files by path: test/ (0..7) before train/ (8..11)
SIZE = TEST + TRAIN


def dot(i: int) -> np.ndarray:
    img = np.zeros((64, 64), dtype=np.uint8)
    img[4 + 4 * i : 20 + 4 * i, 40 - 3 * i : 60 - 3 * i] = 255
    return img


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("layout-files")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    folder = root / "datasets" / SET
    lines = ["file_name,kind"]
    for i in range(SIZE):
        split = "test" if i < TEST else "train"
        (folder / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(dot(i)).save(folder / split / f"{i:02d}.png")
        lines.append(f"{split}/{i:02d}.png,{'a' if i % 2 else 'b'}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    settings = Settings(checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
                        cache_dir=root / "cache")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client, settings


def positions(n: int = SIZE) -> np.ndarray:
    """A layout of our own: image i at (i, i²/10)."""
    i = np.arange(n, dtype=np.float64)
    return np.stack([i, i**2 / 10], axis=1)


def csv_of(rows) -> bytes:
    return ("index,x,y\n" + "".join(f"{i},{x},{y}\n" for i, x, y in rows)).encode()


def good_rows(n: int = SIZE) -> list[tuple]:
    return [(i, x, y) for i, (x, y) in enumerate(positions(n))]


def upload(client, body: bytes, name: str, filename: str = "layout.csv", **form):
    return client.post(
        f"/api/datasets/{SET}/layouts", files={"file": (filename, body)},
        data={"name": name, **{k: str(v).lower() for k, v in form.items()}},
    )  # fmt: skip


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def parquet_of(table: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(table), buf)
    return buf.getvalue()


BAD: dict[str, tuple[bytes, str]] = {
    "not a table": (b"\xff\xfe\x00\x81 not text", "neither Parquet nor CSV"),
    "a Parquet cut short": (
        parquet_of({"index": [0], "x": [0.0], "y": [0.0]})[:40],
        "not Parquet that can be read",
    ),  # fmt: skip
    "a column missing": (
        b"index,x\n" + b"".join(b"%d,1\n" % i for i in range(SIZE)),
        "no column y",
    ),  # fmt: skip
    "a column too many": (
        b"index,x,y,z\n" + b"".join(b"%d,1,2,3\n" % i for i in range(SIZE)),
        "columns it should not: z",
    ),
    "an index not a number": (csv_of([("a", 1, 2)] + good_rows()[1:]), "must hold numbers"),
    "an index past the set": (csv_of(good_rows() + [(SIZE, 0, 0)]), f"index {SIZE} out of range"),
    "a negative index": (csv_of([(-1, 0, 0)] + good_rows()), "index -1 out of range"),
    "an index twice": (csv_of(good_rows() + [(3, 0, 0)]), "index 3 appears more than once"),
    "a NaN": (csv_of([(0, "nan", 1)] + good_rows()[1:]), "not a finite number"),
    "an infinity": (csv_of([(0, 1, "inf")] + good_rows()[1:]), "not a finite number"),
    "an empty x": (csv_of([(0, "", 1)] + good_rows()[1:]), "not a finite number"),
    "test images missing": (
        csv_of([r for r in good_rows() if r[0] not in (2, 5)]),
        "no position for 2 of the 8 images the map can show (the test split of data set dots): "
        "index 2, 5",
    ),
    "no rows": (b"index,x,y\n", "no rows"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_layout_file_is_refused_in_one_line_naming_it_and_nothing_is_written(served, case):
    client, settings = served
    body, named = BAD[case]
    before = files_under(settings.cache_dir) if settings.cache_dir.exists() else []
    r = upload(client, body, f"bad-{len(case)}")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert named in detail and "\n" not in detail
    after = files_under(settings.cache_dir) if settings.cache_dir.exists() else []
    assert after == before


def test_a_name_outside_its_pattern_is_refused(served):
    client, _ = served
    r = upload(client, csv_of(good_rows()), "Not Allowed")
    assert r.status_code == 422 and "name" in str(r.json()["detail"])


def test_a_good_layout_is_kept_listed_and_its_name_taken(served):
    client, settings = served
    r = upload(client, csv_of(good_rows()), "spiral")
    assert r.status_code == 201, r.text
    summary = r.json()
    assert summary["name"] == "spiral" and summary["images"] == SIZE == summary["set_images"]
    assert summary["covers"] == "the test split" and summary["kept"] == "disk"
    assert summary["x_range"] == [0, SIZE - 1] and summary["y_range"] == [0, (SIZE - 1) ** 2 / 10]
    kept = list((settings.cache_dir / "layouts").glob("*/spiral.parquet"))
    assert len(kept) == 1
    table = pq.read_table(kept[0])
    assert table.column_names == ["index", "x", "y"]
    np.testing.assert_array_equal(table.column("x").to_numpy(), positions()[:, 0])
    listed = client.get(f"/api/datasets/{SET}/layouts").json()
    assert [s["name"] for s in listed] == ["spiral"]
    again = upload(client, csv_of(good_rows()), "spiral")
    assert again.status_code == 409 and "replace=true" in again.json()["detail"]
    assert files_under(settings.cache_dir / "layouts") == [str(kept[0].relative_to(
        settings.cache_dir / "layouts"))]  # fmt: skip


def test_the_map_draws_a_loaded_layout_and_places_z_by_the_nearest_neighbours(served):
    client, settings = served
    # Parquet, the test split only (all a map shows), the rows in any order
    order = np.random.default_rng(0).permutation(TEST)
    xy = positions(TEST) * 3 + 1
    body = parquet_of({"index": order, "x": xy[order, 0], "y": xy[order, 1]})
    r = upload(client, body, "tested", filename="layout.parquet")
    assert r.status_code == 201, r.text
    query = {"data": SET, "method": "loaded", "layout": "tested"}
    if client.get("/api/models/tiny-vae/map", params=query).status_code == 202:
        encoding_jobs(settings.cache_dir).join()
    r = client.get("/api/models/tiny-vae/map", params=query)
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["method"] == "loaded" and m["indices"] == list(range(TEST))
    np.testing.assert_allclose(m["points"], xy, atol=1e-4)
    assert m["marker"]["kind"] == "nearest" and "layout=tested" in m["marker"]["place"]
    # the marker: the 1/distance-weighted mean of the 10 (here all 8) nearest points by μ
    mu = np.array(m["latents"])
    z = mu[3] + 0.05
    placed = client.get(m["marker"]["place"] + "&z=" + ",".join(f"{v:.6f}" for v in z)).json()
    d = np.linalg.norm(mu - z, axis=1)
    w = 1 / (d + 1e-6)
    expected = (w[:, None] * xy).sum(axis=0) / w.sum()
    assert placed["how"] == "nearest"
    np.testing.assert_allclose([placed["x"], placed["y"]], expected, atol=1e-3)


def test_replace_true_replaces_a_layout_and_the_map_follows(served):
    client, settings = served
    assert upload(client, csv_of(good_rows()), "moving").status_code == 201
    query = {"data": SET, "method": "loaded", "layout": "moving"}
    encoding_jobs(settings.cache_dir).join()
    first = client.get("/api/models/tiny-vae/map", params=query).json()["points"]
    moved = [(i, -x, y) for i, x, y in good_rows()]
    assert upload(client, csv_of(moved), "moving", replace=True).status_code == 201
    second = client.get("/api/models/tiny-vae/map", params=query).json()["points"]
    np.testing.assert_allclose(second, -np.array(first) * [1, -1], atol=1e-4)


def test_an_unknown_layout_or_data_set_is_a_404(served):
    client, settings = served
    query = {"data": SET, "method": "loaded", "layout": "nope"}
    # before the set's encoding too (this test alone has none yet): a wrong name starts nothing
    r = client.get("/api/models/tiny-vae/map", params=query)
    assert r.status_code == 404 and "no layout named 'nope'" in r.json()["detail"]
    d = client.get("/api/models/tiny-vae").json()["latent_dim"]
    r = client.get("/api/models/tiny-vae/map/place", params={**query, "z": ",".join(["0"] * d)})
    assert r.status_code == 404 and "no layout named 'nope'" in r.json()["detail"]
    assert client.get("/api/datasets/nope/layouts").status_code == 404


def test_without_a_cache_folder_a_layout_is_kept_in_memory_only(trained, tmp_path):
    shutil.copytree(trained["tiny-vae"], tmp_path / "checkpoints" / "tiny-vae")
    folder = tmp_path / "datasets" / SET
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(dot(i)).save(folder / f"{i}.png")
    settings = Settings(checkpoints_dir=tmp_path / "checkpoints",
                        datasets_dir=tmp_path / "datasets")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        r = upload(client, csv_of(good_rows(3)), "here")
        assert r.status_code == 201 and r.json()["kept"] == "memory"
        assert r.json()["covers"] == "all images"
        assert [s["name"] for s in client.get(f"/api/datasets/{SET}/layouts").json()] == ["here"]
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written anywhere
