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
