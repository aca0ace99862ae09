"""The latent map as bytes (GET /api/models/{name}/map.bin): read here from its documented layout
with struct and numpy (not the server's own reader), and in Chromium by static/map_binary.js,
every number equals the JSON form's (in float32 where it is a float); the limits are 4xx that
say what was wrong."""

from __future__ import annotations

import gzip
import json
import shutil
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs
from tests.browser_server import live_server

SET = "tiles"
KINDS = ("round", "square", "")  # "": no value
N_IMAGES = 60


def tile(i: int) -> np.ndarray:
    img = np.zeros((64, 64), dtype=np.uint8)
    img[(i * 7) % 40 : (i * 7) % 40 + 20, (i * 3) % 44 : (i * 3) % 44 + 16] = 255
    return img


@pytest.fixture(scope="module")
def settings(trained, tmp_path_factory) -> Settings:
    """tiny-vae beside a folder set of 60 images, 40 of them test images, with a categorical
    column (one in three without a value) and an ordered one (one in five without)."""
    root = tmp_path_factory.mktemp("map-binary")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    folder = root / "datasets" / SET
    lines = ["file_name,kind,weight"]
    for i in range(N_IMAGES):
        split = "test" if i % 3 else "train"
        (folder / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(tile(i)).save(folder / split / f"{i:03d}.png")
        weight = "" if i % 5 == 0 else f"{0.1 + i / 7:.6f}"
        lines.append(f"{split}/{i:03d}.png,{KINDS[i % 3]},{weight}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return Settings(
        checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
        cache_dir=root / "cache", max_map_points=30, max_binary_map_points=45,
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        assert c.get(f"/api/models/tiny-vae/map?data={SET}").status_code == 202
        encoding_jobs(settings.cache_dir).join()
        yield c


def read(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The documented layout, read with struct: magic, uint32 header length, JSON, arrays."""
    magic, size = struct.unpack_from("<8sI", body, 0)
    assert magic == b"LEMAP001"
    assert (12 + size) % 8 == 0  # the arrays start aligned
    header = json.loads(body[12 : 12 + size].decode())
    arrays = {}
    for name, spec in header["arrays"].items():
        assert spec["offset"] % 8 == 0 and spec["offset"] >= 12 + size
        count = int(np.prod(spec["shape"]))
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        end = spec["offset"] + count * dtype.itemsize
        assert end <= len(body)
        arrays[name] = np.frombuffer(body[spec["offset"] : end], dtype=dtype).reshape(spec["shape"])
    return header, arrays


def assert_same_map(as_json: dict, header: dict, arrays: dict[str, np.ndarray]) -> None:
    n = as_json["n"]
    assert header["n"] == n and header["model"] == as_json["model"]
    assert "points" not in header and "latents" not in header
    np.testing.assert_array_equal(
        arrays["points"], np.asarray(as_json["points"], dtype=np.float32)
    )  # exactly: the JSON's numbers in float32
    assert arrays["indices"].dtype == np.uint32
    assert arrays["indices"].tolist() == as_json["indices"]
    if "latents" in arrays:
        np.testing.assert_array_equal(
            arrays["latents"], np.asarray(as_json["latents"], dtype=np.float32)
        )
    assert len(header["colour_by"]) == len(as_json["colour_by"]) > 0
    for entry, expected in zip(header["colour_by"], as_json["colour_by"], strict=True):
        assert "values" not in entry and entry["name"] == expected["name"]
        values = arrays[entry["array"]]
        assert values.shape == (n,)
        if entry["kind"] == "ordered":
            assert entry["missing"] is None
            want = np.array([np.nan if v is None else v for v in expected["values"]], np.float32)
            np.testing.assert_array_equal(values, want)  # NaN where the JSON has null
        else:
            codes = [entry["missing"] if v < 0 else v for v in expected["values"]]
            assert values.tolist() == codes


def test_a_data_set_map_in_bytes_holds_the_json_forms_numbers(client):
    as_json = client.get(f"/api/models/tiny-vae/map?data={SET}&n=30").json()
    kinds = {c["name"]: c for c in as_json["colour_by"]}
    assert -1 in kinds["kind"]["values"] and None in kinds["weight"]["values"]  # gaps to carry
    r = client.get(f"/api/models/tiny-vae/map.bin?data={SET}&n=30")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.latent-explorer.map"
    header, arrays = read(r.content)
    assert_same_map(as_json, header, arrays)
    kind = next(c for c in header["colour_by"] if c["name"] == "kind")
    assert arrays[kind["array"]].dtype == np.uint8 and kind["missing"] == 255
    assert kind["names"] == ["round", "square"]


def test_a_drawn_map_in_bytes_holds_the_json_forms_numbers(client):
    as_json = client.get("/api/models/tiny-vae/map?n=25&seed=3").json()
    header, arrays = read(client.get("/api/models/tiny-vae/map.bin?n=25&seed=3").content)
    assert_same_map(as_json, header, arrays)
    assert "latents" in arrays  # 25 points: their μ come along
    assert [c["name"] for c in header["colour_by"]][:2] == ["shape", "scale"]  # dSprites factors


def test_the_bytes_go_gzipped_to_a_client_that_accepts_it_and_revalidate(client):
    url = f"/api/models/tiny-vae/map.bin?data={SET}&n=40"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as zipped:
        wire = b"".join(zipped.iter_raw())
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(wire) == plain.content and len(wire) < len(plain.content)
    assert zipped.headers["etag"] != plain.headers["etag"]  # two bodies, two validators
    again = client.get(url, headers={"If-None-Match": plain.headers["etag"],
                                     "Accept-Encoding": "identity"})  # fmt: skip
    assert again.status_code == 304 and again.content == b""


def test_past_the_json_limit_only_the_bytes_and_past_theirs_nothing(client):
    # 40 of the set's 40 test images: more than the JSON form's 30, within the bytes' 45
    r = client.get(f"/api/models/tiny-vae/map?data={SET}&n=40")
    assert r.status_code == 422 and "n is 40, the limit is 30 (map.bin holds more)" in r.text
    header, arrays = read(client.get(f"/api/models/tiny-vae/map.bin?data={SET}&n=40").content)
    assert header["n"] == 40 == len(set(arrays["indices"].tolist()))
    r = client.get(f"/api/models/tiny-vae/map.bin?data={SET}&n=46")
    assert r.status_code == 422 and "n is 46, the limit is 45" in r.text
    # more than the set's 40 test images, within the limit: that set has no such sample
    r = client.get(f"/api/models/tiny-vae/map.bin?data={SET}&n=41")
    assert r.status_code == 404 and "at most 40" in r.text
    # a map of the model's own drawn images stays within the JSON form's limit
    r = client.get("/api/models/tiny-vae/map.bin?n=31")
    assert r.status_code == 404 and "holds at most 30" in r.text and "data=NAME" in r.text


def test_past_twenty_thousand_points_the_bytes_leave_the_latents_out(monkeypatch, client):
    from app.web import map_binary  # noqa: PLC0415

    monkeypatch.setattr(map_binary, "LATENTS_UP_TO", 10)
    header, arrays = read(client.get(f"/api/models/tiny-vae/map.bin?data={SET}&n=11").content)
    assert "latents" not in arrays and "latents" not in header["arrays"]
    assert arrays["points"].shape == (11, 2)


def test_chromium_reads_the_bytes_as_the_json_forms_numbers(settings, client, browser):
    """static/map_binary.js in the browser: views on the body, compared number by number with
    the JSON form parsed by the browser (Math.fround: the JSON's number in float32)."""
    with live_server(settings) as url:
        page = browser.new_page(base_url=url)
        page.goto("/static/map_binary.js")  # any page of ours; the script is added below
        page.add_script_tag(url="/static/map_binary.js")
        result = page.evaluate(
            """async (q) => {
              const json = await (await fetch(`/api/models/tiny-vae/map?${q}`)).json();
              const buf = await (await fetch(`/api/models/tiny-vae/map.bin?${q}`)).arrayBuffer();
              const { header, arrays } = window.latentMapBinary.decode(buf);
              const bad = [];
              json.points.forEach(([x, y], i) => {
                const p = arrays.points;
                if (p[2 * i] !== Math.fround(x) || p[2 * i + 1] !== Math.fround(y)) {
                  bad.push(`point ${i}`);
                }
              });
              json.indices.forEach((v, i) => {
                if (arrays.indices[i] !== v) bad.push(`index ${i}`);
              });
              json.colour_by.forEach((c, k) => {
                const e = header.colour_by[k]; const a = arrays[e.array];
                c.values.forEach((v, i) => {
                  const ok = e.kind === "ordered"
                    ? (v === null ? Number.isNaN(a[i]) : a[i] === Math.fround(v))
                    : a[i] === (v < 0 ? e.missing : v);
                  if (!ok) bad.push(`${c.name} ${i}`);
                });
              });
              const kinds = header.colour_by.map((e) => arrays[e.array].constructor.name);
              return { n: header.n, kinds, bad };
            }""",
            f"data={SET}&n=30",
        )
        page.close()
    assert result["bad"] == [] and result["n"] == 30
    assert result["kinds"] == ["Uint8Array", "Float32Array"]
