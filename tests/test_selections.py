"""Selections on the latent map (POST /api/models/{name}/selections, GET .../{id}, the direction
between two, the CSV): what a selection holds is checked against the model's own encoder and
decoder run here on the pixels written, the set's columns as written, and dSprites' published
index layout; two selections of exactly two classes give the class direction."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from app.studies.set_encodings import encoding_jobs

SET = "patches"
KINDS = ("round", "square")
N_IMAGES = 48  # 32 test images, 16 training images


def patch(i: int) -> np.ndarray:
    img = np.zeros((64, 64), dtype=np.uint8)
    if i % 2:  # "square": a block on the right; "round": a disc on the left
        img[10 + i % 20 : 40 + i % 20, 30:60] = 255
    else:
        yy, xx = np.mgrid[:64, :64]
        img[(yy - 20 - i % 24) ** 2 + (xx - 18) ** 2 < 144] = 255
    return img


def weight(i: int) -> float | None:
    return None if i % 7 == 0 else round(0.5 + i / 10, 6)


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("selections")
    shutil.copytree(trained["tiny-vae"], root / "checkpoints" / "tiny-vae")
    folder = root / "datasets" / SET
    lines = ["file_name,kind,weight"]
    for i in range(N_IMAGES):
        split = "train" if i % 3 == 0 else "test"
        (folder / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(patch(i)).save(folder / split / f"{i:03d}.png")
        w = weight(i)
        lines.append(f"{split}/{i:03d}.png,{KINDS[i % 2]},{'' if w is None else w}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    settings = Settings(
        checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
        cache_dir=root / "cache",
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/models/tiny-vae/map?data={SET}").status_code == 202
        encoding_jobs(settings.cache_dir).join()
        yield client, settings


def file_number(client, index: int) -> int:
    """Which patch image `index` of the set is: the set lists its files by path."""
    files = sorted(f"{'train' if i % 3 == 0 else 'test'}/{i:03d}.png" for i in range(N_IMAGES))
    return int(files[index].split("/")[1][:3])


def model(client):
    return client.app.state.registry["tiny-vae"].model


def mu_here(client, numbers: list[int]) -> np.ndarray:
    x = torch.from_numpy(np.stack([patch(i) for i in numbers]).astype(np.float32) / 255)[:, None]
    with torch.inference_mode():
        return model(client).encode(x, None).mean.double().numpy()


def the_map(client) -> dict:
    r = client.get(f"/api/models/tiny-vae/map?data={SET}")
    assert r.status_code == 200, r.text
    return r.json()


def by_kind(m: dict, kind: str) -> list[int]:
    column = next(c for c in m["colour_by"] if c["name"] == "kind")
    code = column["names"].index(kind)
    return [i for i, v in zip(m["indices"], column["values"], strict=True) if v == code]


def test_a_selection_says_what_its_images_have_in_common(served):
    client, _ = served
    m = the_map(client)
    chosen = by_kind(m, "round")
    r = client.post(f"/api/models/tiny-vae/selections?data={SET}", json={"indices": chosen})
    assert r.status_code == 201, r.text
    s = r.json()
    numbers = [file_number(client, i) for i in chosen]
    assert s["count"] == len(chosen) == 16 and s["images"] == SET
    np.testing.assert_allclose(s["mean_mu"], mu_here(client, numbers).mean(axis=0), atol=1e-5)
    kind = next(c for c in s["columns"] if c["name"] == "kind")
    assert kind["counts"] == [{"value": "round", "count": 16}] and kind["missing"] == 0
    w = next(c for c in s["columns"] if c["name"] == "weight")
    known = [weight(i) for i in numbers if weight(i) is not None]
    assert w["missing"] == len(numbers) - len(known) > 0
    assert w["mean"] == pytest.approx(np.mean(known)) and w["low"] == min(known)
    # the mean reconstruction: each image decoded from its own μ, averaged, as PNG
    with torch.inference_mode():
        mean = model(client).decode(torch.from_numpy(mu_here(client, numbers)).float(), None)
    want = np.round(mean.mean(dim=0)[0].numpy() * 255)
    png = base64.b64decode(s["mean_reconstruction"].split(",", 1)[1])
    got = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64)
    assert s["reconstructed"] == 16 and np.abs(got - want).max() <= 1
    assert set(s["shown"]) <= set(chosen) and len(s["shown"]) == 16
    # kept by id: the same answer again, and the indices as CSV
    again = client.get(f"/api/models/tiny-vae/selections/{s['id']}?data={SET}")
    assert again.status_code == 200 and again.json()["mean_mu"] == s["mean_mu"]
    csv = client.get(s["csv"])
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["index", *map(str, sorted(chosen))]


def test_two_selections_of_exactly_two_classes_make_the_class_direction(served):
    client, _ = served
    m = the_map(client)
    rounds, squares = by_kind(m, "round"), by_kind(m, "square")
    ids = [
        client.post(f"/api/models/tiny-vae/selections?data={SET}", json={"indices": chosen}).json()[
            "id"
        ]
        for chosen in (rounds, squares)
    ]
    r = client.get(
        f"/api/models/tiny-vae/selections/direction?data={SET}&source={ids[0]}&target={ids[1]}"
    )
    assert r.status_code == 200, r.text
    d = r.json()
    # the mean μ of the squares minus the rounds', from the map's own μ
    latents = {i: np.array(v) for i, v in zip(m["indices"], m["latents"], strict=True)}
    want = np.mean([latents[i] for i in squares], 0) - np.mean([latents[i] for i in rounds], 0)
    np.testing.assert_allclose(d["vector"], want, atol=2e-4)
    assert d["source_count"] == 16 and d["target_count"] == 16 and d["shared"] == 0
    # the class direction the direction slider offers for the column: read on 80% of the
    # same test images, so the same way to within a few degrees
    cls = client.get(f"/api/models/tiny-vae/direction?data={SET}&from=round&to=square").json()
    v, c = np.array(d["vector"]), np.array(cls["vector"])
    assert v @ c / np.linalg.norm(v) / np.linalg.norm(c) > 0.98


def test_a_selection_of_drawn_dsprites_images_reads_their_factors(trained, tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(trained["tiny-vae"], root / "tiny-vae")
    with TestClient(create_app(Settings(checkpoints_dir=root, cache_dir=tmp_path / "c"))) as c:
        # dSprites' index: ((((colour·3 + shape)·6 + scale)·40 + orientation)·32 + x)·32 + y
        per_scale = 40 * 32 * 32
        per_shape = 6 * per_scale
        chosen = [0, 5, per_shape + 3 * per_scale + 7, 2 * per_shape + 5 * per_scale + 9,
                  2 * per_shape + 40_000]  # fmt: skip
        s = c.post("/api/models/tiny-vae/selections", json={"indices": chosen + [5]}).json()
        assert s["count"] == 5 and s["images"] == "dSprites"
        shape = next(col for col in s["columns"] if col["name"] == "shape")
        assert sorted((v["value"], v["count"]) for v in shape["counts"]) == [
            ("ellipse", 1), ("heart", 2), ("square", 2)
        ]  # fmt: skip
        scale = next(col for col in s["columns"] if col["name"] == "scale")  # 0, 0, 3, 5, 0
        assert (scale["low"], scale["mean"], scale["high"]) == (0, pytest.approx(1.6), 5)
        r = c.post("/api/models/tiny-vae/selections", json={"indices": [737_280]})
        assert r.status_code == 404 and "737,280 is not a dSprites image" in r.text


def test_bad_selections_are_refused_and_nothing_is_kept(served):
    client, settings = served
    kept = settings.cache_dir / "selections"
    before = sorted(kept.glob("*")) if kept.exists() else []
    r = client.post(f"/api/models/tiny-vae/selections?data={SET}", json={"indices": [3, 48]})
    assert r.status_code == 404 and "image 48 is not a patches image: indices run 0..47" in r.text
    for body in ({"indices": []}, {"indices": [True]}, {"indices": [2.5]}, {"indices": [-1]}):
        r = client.post(f"/api/models/tiny-vae/selections?data={SET}", json=body)
        assert r.status_code == 422, body
    r = client.post(f"/api/models/tiny-vae/selections?data={SET}", json={"indices": [1, False]})
    assert "an image index is a whole number, not true or false" in r.text
    assert (sorted(kept.glob("*")) if kept.exists() else []) == before
    r = client.get(f"/api/models/tiny-vae/selections/{'0' * 16}?data={SET}")
    assert r.status_code == 404 and "no selection 0000000000000000" in r.text
    assert client.get(f"/api/selections/{'0' * 16}.csv").status_code == 404
    # a selection of the set's images, asked of the model's own dSprites images
    ident = client.post(f"/api/models/tiny-vae/selections?data={SET}",
                        json={"indices": [1, 2]}).json()["id"]  # fmt: skip
    r = client.get(f"/api/models/tiny-vae/selections/{ident}")
    assert r.status_code == 404 and f"selection {ident} is of {SET} images" in r.text


def test_a_kept_selection_outlives_a_restart_and_a_tampered_file_is_refused(served, trained):
    client, settings = served
    ident = client.post(f"/api/models/tiny-vae/selections?data={SET}",
                        json={"indices": [4, 2, 9]}).json()["id"]  # fmt: skip
    path = settings.cache_dir / "selections" / f"{ident}.npz"
    assert path.is_file()
    from app.studies.selection_store import SelectionStore  # noqa: PLC0415

    fresh = SelectionStore(settings.cache_dir)  # a new process: nothing in memory
    assert fresh.get(ident).indices.tolist() == [2, 4, 9]
    with np.load(path) as z:
        arrays = dict(z)
    arrays["indices"] = np.array([2, 4, 10], dtype="<u4")
    with path.open("wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(LookupError, match=f"selection {ident} cannot be read"):
        SelectionStore(settings.cache_dir).get(ident)


def test_compare_reads_each_models_own_direction_of_the_same_selections(trained, tmp_path):
    """/compare's direction section with two selections: each model's vector is its own mean μ
    of B's images minus A's, as its selections API answers, and the strip runs along it."""
    root = tmp_path / "checkpoints"
    for name in ("tiny-vae", "tiny-ae"):
        shutil.copytree(trained[name], root / name)
    with TestClient(create_app(Settings(checkpoints_dir=root))) as c:
        per_shape = 6 * 40 * 32 * 32
        ids = [
            c.post(
                "/api/models/tiny-vae/selections", json={"indices": list(range(s, s + 600, 7))}
            ).json()["id"]
            for s in (0, 2 * per_shape)
        ]
        r = c.get(f"/ui/compare/direction?a=tiny-vae&b=tiny-ae&sel_a={ids[0]}&sel_b={ids[1]}")
        assert r.status_code == 200, r.text
        assert 'id="direction-selections"' in r.text
        for name in ("tiny-vae", "tiny-ae"):
            api = c.get(f"/api/models/{name}/selections/direction?source={ids[0]}&target={ids[1]}")
            want = np.array(api.json()["vector"])
            vector = r.text.split(f'data-name="{name}" data-vector="')[1].split('"')[0]
            np.testing.assert_allclose(np.array(vector.split(","), float), want, atol=1e-5)
            strip = r.text.split(f"/api/models/{name}/path.png?")[1].split('"')[0]
            assert (
                c.get(f"/api/models/{name}/path.png?{strip.replace('&amp;', '&')}").status_code
                == 200
            )
        # the page's placeholder carries the selections to the section it loads
        page = c.get(f"/compare?a=tiny-vae&b=tiny-ae&sel_a={ids[0]}&sel_b={ids[1]}").text
        assert f"sel_a={ids[0]}&amp;sel_b={ids[1]}" in page
