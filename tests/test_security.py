"""Every response carries the security headers; pages run only our own scripts and styles (no
inline script or style to need an exception in the policy); the API docs work offline."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from app.web.security import CONTENT_SECURITY_POLICY

PAGES = [
    "/",
    "/?model=tiny-cvae",
    "/compare?a=tiny-vae&b=tiny-ae",
    "/models/tiny-vae",
    "/interpolate?model=tiny-vae",
    "/denoise?index=5",
    "/compress?model=tiny-vae",
    "/sharpness?seed=3",
    "/docs",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_the_policy_and_hold_no_inline_script_or_style(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    html = r.text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in s for s in scripts), scripts  # no inline script
    bodies = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert all(b.strip() == "" for b in bodies)  # nor a script with a body
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    for src in re.findall(r'<script[^>]* src="([^"]+)"', html):
        url = urlparse(src)
        assert url.netloc in ("", "testserver") and url.path.startswith("/static/"), src


def test_api_errors_and_images_carry_the_headers_too(client):
    r = client.get("/api/models/nope")
    assert r.status_code == 404 and "unknown model" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"
    img = client.get("/api/models/tiny-vae/decode.png", params={"z": ",".join(["0"] * 10)})
    assert img.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_docs_use_our_own_swagger_ui(client):
    html = client.get("/docs").text
    assert "/static/vendor/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/static/vendor/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/docs.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # it would need a CDN


def test_no_directory_listing_under_static(client):
    for path in ("/static/", "/static", "/static/vendor/"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "htmx.min.js" not in r.text


@pytest.mark.parametrize(
    "path",
    ["/api/models/..%2F..%2Fetc/decode.png", "/api/models/../checkpoints", "/models/..%2Fapp"],
)
def test_path_like_model_names_are_just_unknown(client, path):
    r = client.get(path, params={"z": ",".join(["0"] * 10)})
    assert r.status_code == 404 and "detail" in r.json()


def test_an_internal_error_answers_500_without_a_stack_trace(trained, tmp_path, monkeypatch):
    import shutil

    from fastapi.testclient import TestClient

    from app import inference
    from app.main import create_app
    from app.settings import Settings

    shutil.copytree(trained["tiny-vae"], tmp_path / "tiny-vae")

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail at /srv/app/inference.py")

    monkeypatch.setattr(inference, "interpolate_latents", broken)
    app = create_app(Settings(checkpoints_dir=tmp_path))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(
            "/api/models/tiny-vae/interpolate.png",
            params={"z0": ",".join(["0"] * 10), "z1": ",".join(["1"] * 10)},
        )
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text and ".py" not in r.text
    # the error page goes out through the same headers as every other response
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
