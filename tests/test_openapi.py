"""/openapi.json tells a client the truth: what it documents is what the server does. Checked
against what the schema is built from only where that cannot be helped; mostly against the
app's own route table, the checkpoint folders and the settings' defaults, and by sending the
requests it describes: a request just inside a bound it states is answered, one just past it
is refused."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections import defaultdict

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings

Z10 = ",".join(["0"] * 10)
DSPRITES_IMAGES = 3 * 6 * 40 * 32 * 32  # shapes × scales × orientations × x × y
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
FILLERS = {"name": "tiny-vae", "index": "3", "fmt": "png"}


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


def operations(spec):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def route_table(app) -> dict[str, set[str]]:
    """Path template → its methods, read from the app's routes (FastAPI keeps an included
    router's routes behind it; `iter_route_contexts` lists them with their prefix)."""
    try:
        from fastapi.routing import iter_route_contexts

        routes = [(r.path_format, r.methods) for r in iter_route_contexts(app.routes)]
    except ImportError:  # FastAPI before included routers stayed lazy
        routes = [(getattr(r, "path_format", None), getattr(r, "methods", None))
                  for r in app.routes]  # fmt: skip
    table: dict[str, set[str]] = defaultdict(set)
    for path, methods in routes:
        if path and methods:
            table[path] |= set(methods)
    return dict(table)


def concrete(path: str, **values: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: {**FILLERS, **values}.get(m[1], "x"), path)


def parameter(operation, name):
    return next(p for p in operation["parameters"] if p["name"] == name)


def test_every_api_route_is_in_the_schema_and_nothing_else(client, spec):
    routes = {
        (path, method)
        for path, methods in route_table(client.app).items()
        for method in methods
        if path.startswith("/api/")
    }
    assert {(path, method) for path, method, _ in operations(spec)} == routes


def test_a_405_lists_every_method_the_path_has(client):
    """GET and POST /api/models/{name}/encode are two routes: Starlette's own 405 named only
    the first one's method."""
    table = route_table(client.app)
    shared = [path for path, methods in table.items() if {"GET", "POST"} <= methods]
    assert "/api/models/{name}/encode" in shared and "/api/models/{name}/denoise" in shared
    for path, methods in table.items():
        other = next(m for m in ("PUT", "DELETE", "PATCH") if m not in methods)
        r = client.request(other, concrete(path))
        assert r.status_code == 405, (path, r.status_code)
        assert set(r.headers["allow"].split(", ")) == methods, path
        assert r.json() == {"detail": "Method Not Allowed"}


def test_every_operation_naming_a_model_documents_and_answers_404(client, spec):
    named = [(path, method, op) for path, method, op in operations(spec) if "{name}" in path]
    assert len(named) >= 20
    for path, method, operation in named:
        documented = operation["responses"]["404"]["content"]["application/json"]["schema"]
        assert documented == ERROR_BODY, path
        r = client.request(method, concrete(path, name="nope"))
        assert r.status_code == 404, (path, r.text)
        known = "tiny-ae, tiny-cvae, tiny-vae"
        assert r.json() == {"detail": f"unknown model 'nope'; available: {known}"}
    assert spec["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["type"] == "string"


def test_a_dataset_image_that_does_not_exist_is_a_documented_404(client, spec):
    operation = spec["paths"]["/api/dsprites/{index}.png"]["get"]
    assert operation["responses"]["404"]["content"]["application/json"]["schema"] == ERROR_BODY
    assert parameter(operation, "index")["schema"]["maximum"] == DSPRITES_IMAGES - 1
    assert client.get(f"/api/dsprites/{DSPRITES_IMAGES - 1}.png").status_code == 200
    r = client.get(f"/api/dsprites/{DSPRITES_IMAGES}.png")
    assert r.status_code == 404 and "dSprites index must be in 0..737279" in r.json()["detail"]


def test_every_operation_with_a_body_documents_and_answers_400_and_413(trained, tmp_path, spec):
    with_body = [(path, op) for path, method, op in operations(spec) if "requestBody" in op]
    assert {path for path, _ in with_body} == {
        f"/api/models/{{name}}/{p}"
        for p in ("decode", "encode", "compress", "denoise", "selections")
    } | {"/api/datasets/{dataset}/layouts"}
    shutil.copytree(trained["tiny-vae"], tmp_path / "tiny-vae")
    small = Settings(checkpoints_dir=tmp_path, max_upload_bytes=1000)
    with TestClient(create_app(small)) as c:
        for path, operation in with_body:
            for status in ("400", "413"):
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == ERROR_BODY, (path, status)
            url = concrete(path)
            media = next(iter(operation["requestBody"]["content"]))
            r = c.post(url, content=b"\xef\x50", headers={"content-type": media})
            assert r.status_code == 400, (path, r.text)  # not UTF-8, or no multipart boundary
            # over the limit plus the room for the multipart framing (errors.MULTIPART_SLACK)
            big = b"x" * (1000 + 64 * 1024 + 1)
            r = c.post(url, content=big, headers={"content-type": media})
            assert r.status_code == 413 and "upload limit of 1,000 bytes" in r.json()["detail"]


def test_a_model_name_is_an_enum_of_the_served_models(client, spec, trained):
    served = {m["name"] for m in client.get("/api/models").json()}
    assert served == set(trained)  # the checkpoint folders the fixture copied
    for path, _, operation in operations(spec):
        if "{name}" in path:
            assert set(parameter(operation, "name")["schema"]["enum"]) == served, path
    # any other name still reaches the route, which answers 404 (not FastAPI's 422)
    assert client.get("/api/models/elsewhere").status_code == 404


def test_bounds_come_from_the_settings_and_the_served_models(spec, trained):
    """The schema's numbers, each from an independent source: the settings' documented
    defaults, the checkpoints' own config.json, the size of dSprites."""
    configs = [json.loads((folder / "config.json").read_text()) for folder in trained.values()]
    dims = {c["latent_dim"] for c in configs}
    labels = max(len(c.get("label_names") or []) for c in configs)
    assert dims == {10} and labels == 3  # tiny-cvae: square, ellipse, heart
    paths = spec["paths"]
    decode = paths["/api/models/{name}/decode.png"]["get"]
    z = parameter(decode, "z")
    assert (z["style"], z["explode"]) == ("form", False)  # z=0.1,-2,...
    assert z["schema"]["minItems"] == z["schema"]["maxItems"] == 10
    # an AE is served: its codes may reach ±100 (MAX_ABS_CODE), the widest any model takes
    assert z["schema"]["items"] == {"type": "number", "minimum": -100.0, "maximum": 100.0}
    assert parameter(decode, "label")["schema"]["maximum"] == labels - 1
    assert parameter(decode, "scale")["schema"]["maximum"] == 8  # MAX_IMAGE_SCALE
    traverse = paths["/api/models/{name}/traverse.png"]["get"]
    assert parameter(traverse, "steps")["schema"]["maximum"] == 15  # MAX_TRAVERSE_STEPS
    interpolate = paths["/api/models/{name}/interpolate.{fmt}"]["get"]
    assert parameter(interpolate, "steps")["schema"]["maximum"] == 64  # MAX_INTERPOLATE_STEPS
    sample = paths["/api/models/{name}/sample"]["get"]
    assert parameter(sample, "n")["schema"]["maximum"] == 256  # MAX_BATCH
    sweep = paths["/api/models/{name}/sweep.png"]["get"]
    assert parameter(sweep, "dim")["schema"]["maximum"] == 9
    encode = paths["/api/models/{name}/encode"]["get"]
    assert parameter(encode, "index")["schema"]["maximum"] == DSPRITES_IMAGES - 1
    batch = spec["components"]["schemas"]["BatchDecode"]["properties"]["z"]
    assert batch["maxItems"] == 256 and batch["items"]["minItems"] == 10


@pytest.mark.parametrize(
    ("url", "inside", "past"),
    [
        ("/api/models/tiny-vae/decode.png", {"z": Z10, "scale": 8}, {"z": Z10, "scale": 9}),
        ("/api/models/tiny-ae/decode.png", {"z": "100" + ",0" * 9}, {"z": "100.01" + ",0" * 9}),
        ("/api/models/tiny-ae/decode.png", {"z": Z10}, {"z": Z10 + ",0"}),
        ("/api/models/tiny-cvae/decode.png", {"z": Z10, "label": 2}, {"z": Z10, "label": 3}),
        ("/api/models/tiny-vae/traverse.png", {"z": Z10, "steps": 15}, {"z": Z10, "steps": 16}),
        ("/api/models/tiny-vae/sweep.png", {"z": Z10, "dim": 9}, {"z": Z10, "dim": 10}),
        ("/api/models/tiny-vae/sample", {"n": 256}, {"n": 257}),
        ("/api/models/tiny-vae/encode", {"index": 737279}, {"index": 737280}),
        ("/api/models/tiny-vae/compress", {"index": 0, "bits": 8}, {"index": 0, "bits": 9}),
    ],
)
def test_a_request_inside_a_stated_bound_is_answered_and_one_past_it_refused(
    client, url, inside, past
):
    assert client.get(url, params=inside).status_code == 200, client.get(url, params=inside).text
    r = client.get(url, params=past)
    assert r.status_code == 422 and isinstance(r.json()["detail"], str | list), r.text


@pytest.mark.parametrize(
    ("url", "params", "message"),
    [
        # valid requests (another served model takes them) that this model cannot answer
        ("/api/models/tiny-vae/decode.png", {"z": Z10, "label": 1}, "it takes no label"),
        ("/api/models/tiny-vae/decode.png", {"z": "50" + ",0" * 9}, "lie within ±10, got 50"),
        ("/api/models/tiny-vae/encode", {"index": 5, "label": 0}, "it takes no label"),
    ],
)
def test_a_valid_request_the_named_model_cannot_answer_is_its_404(client, url, params, message):
    r = client.get(url, params=params)
    assert r.status_code == 404 and message in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("decode.png", {"z": Z10}),
        ("traverse.png", {"z": Z10}),
        ("sweep.png", {"z": Z10, "dim": 0}),
        ("interpolate.{fmt}", {"z0": Z10, "z1": Z10}),
        ("figure2.svg", {}),
        ("rate-distortion.svg", {}),
    ],
)
def test_etag_routes_document_the_304_they_answer(client, spec, path, params):
    url = concrete(f"/api/models/{{name}}/{path}")
    first = client.get(url, params=params)
    again = client.get(url, params=params, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert "304" in spec["paths"][f"/api/models/{{name}}/{path}"]["get"]["responses"]


def test_uploads_are_parts_of_the_image_types_the_server_decodes(client, spec):
    for path in ("encode", "compress", "denoise"):
        content = spec["paths"][f"/api/models/{{name}}/{path}"]["post"]["requestBody"]["content"]
        types = content["multipart/form-data"]["encoding"]["file"]["contentType"].split(", ")
        assert types == ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"]
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), np.uint8)
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP"):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        files = {"file": (f"x.{fmt.lower()}", buf.getvalue(), f"image/{fmt.lower()}")}
        r = client.post("/api/models/tiny-vae/encode", files=files)
        assert r.status_code == 200 and r.json()["notes"]["format"] == fmt, r.text


def test_denoise_states_each_noises_own_level_range_and_the_drawn_mask(client, spec):
    operation = spec["paths"]["/api/models/{name}/denoise"]["get"]
    query = parameter(operation, "query")
    assert (query["style"], query["explode"]) == ("form", True)  # plain name=value pairs
    cases = {c["properties"]["noise"]["const"]: c for c in query["schema"]["oneOf"]}
    url = "/api/models/tiny-ae/denoise"
    # the data layer's training ranges (app/data/corruption.py), written out
    for noise, most in {"gaussian": 0.5, "salt_pepper": 0.3, "mask": 0.4}.items():
        assert cases[noise]["properties"]["level"] == {"minimum": 0, "maximum": most}
        at_most = {"index": 1, "noise": noise, "level": most}
        assert client.get(url, params=at_most).status_code == 200
        r = client.get(url, params={"index": 1, "noise": noise, "level": most + 0.01})
        assert r.status_code == 422 and f"{noise} level must be in 0..{most:g}" in r.text
    assert "mask" in cases["drawn"]["required"]
    assert client.get(url, params={"index": 1, "noise": "drawn"}).status_code == 422
    mask = "f" * (64 * 64 // 4)
    assert re.fullmatch(query["schema"]["properties"]["mask"]["pattern"], mask)
    assert client.get(url, params={"index": 1, "noise": "drawn", "mask": mask}).status_code == 200
    r = client.get(url, params={"index": 1, "noise": "drawn", "mask": " " + mask})
    assert r.status_code == 422  # what the pattern refuses, the server refuses


def test_sharpness_of_a_decode_and_of_a_reconstruction_are_two_operations(client, spec):
    """`z` or `index`, not both and not neither, is no rule a schema's parameters can state:
    each is its own operation, each field required."""
    decode = spec["paths"]["/api/models/{name}/sharpness"]["get"]
    assert parameter(decode, "z")["required"]
    assert "index" not in {p["name"] for p in decode["parameters"]}
    recon = spec["paths"]["/api/models/{name}/sharpness/{index}"]["get"]
    assert parameter(recon, "index")["in"] == "path"
    a = client.get("/api/models/tiny-vae/sharpness", params={"z": Z10}).json()
    b = client.get("/api/models/tiny-vae/sharpness/4242").json()
    assert a["gradient_energy"] >= 0 and b["index"] == 4242 and b["input_gradient_energy"] > 0


def test_an_empty_form_field_is_refused_not_read_as_absent(client):
    """No field's schema has the empty string among its values; FastAPI alone would hand the
    handler the field's default for it (here noise='' would have been gaussian noise)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    files = {"file": ("x.png", buf.getvalue(), "image/png")}
    for path, field in (("denoise", "noise"), ("compress", "bits"), ("encode", "label")):
        r = client.post(f"/api/models/tiny-vae/{path}", files=files, data={field: ""})
        assert r.status_code == 422 and f"form field '{field}' is empty" in r.json()["detail"]
    # a field the route does not take may be anything, empty too (the schema allows more keys)
    ok = client.post("/api/models/tiny-vae/denoise", files=files, data={"other": ""})
    assert ok.status_code == 200
