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


# --- the Host header --------------------------------------------------------------------------


@pytest.fixture
def loopback_only(tmp_path):
    """An app with the default trusted hosts (whatever the environment of this test run says)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    default = Settings.model_fields["allowed_hosts"].default
    app = create_app(Settings(checkpoints_dir=tmp_path, allowed_hosts=default))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "LocalHost", "127.0.0.1:8000", "[::1]", "[::1]:8000"]
)
def test_loopback_names_are_trusted_by_default(loopback_only, host):
    assert loopback_only.get("/api/models", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:8000", "localhost.attacker.example", "127.0.0.2",
     "[::2]", "testserver", "", "localhost:80:80", "[::1"],
)  # fmt: skip
def test_any_other_host_is_refused_with_one_line_naming_it(loopback_only, host):
    r = loopback_only.get("/api/models", headers={"host": host})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "\n" not in detail and "LATENT_EXPLORER_ALLOWED_HOSTS" in detail
    assert repr(host) in detail
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert loopback_only.get("/", headers={"host": host}).status_code == 400  # pages too


def test_a_very_long_host_is_cut_in_the_reason(loopback_only):
    host = "a" * 100_000
    r = loopback_only.get("/api/models", headers={"host": host})
    assert r.status_code == 400 and len(r.content) < 400
    assert f"'{'a' * 60}…'" in r.json()["detail"]


def test_the_setting_names_hosts_wildcards_and_any(trained, tmp_path):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    def status(allowed: tuple[str, ...], host: str) -> int:
        app = create_app(Settings(checkpoints_dir=tmp_path, allowed_hosts=allowed))
        with TestClient(app) as c:
            return c.get("/api/models", headers={"host": host}).status_code

    assert status(("explorer.example.org",), "Explorer.Example.org:443") == 200
    assert status(("explorer.example.org",), "localhost") == 400  # exactly those named
    assert status(("*.example.org",), "a.b.example.org") == 200
    assert status(("*.example.org",), "example.org") == 400
    assert status(("*.example.org",), "badexample.org") == 400
    assert status(("::1",), "[::1]:8000") == 200  # an IPv6 address bare or in brackets
    assert status(("*",), "anything.at.all") == 200


# --- names quoted back are cut ----------------------------------------------------------------


def test_an_unknown_model_name_of_any_length_comes_back_cut(client):
    name = "m" * 60_000  # under the test client's URL limit
    zero = ",".join(["0"] * 10)
    for path in (f"/api/models/{name}", f"/api/models/{name}/decode.png?z={zero}",
                 f"/api/models/{name}/denoise?index=1"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 404
        detail = r.json()["detail"]
        assert f"unknown model '{'m' * 60}…';" in detail, detail[:200]
        assert len(detail) < 300
    for page in ("/denoise", "/sharpness"):
        r = client.get(page, params={"a": name})
        assert r.status_code == 404
        (error,) = re.findall(r'<p class="error"[^>]*>(.*?)</p>', r.text, flags=re.S)
        assert f"unknown model &#39;{'m' * 60}…&#39;;" in error and len(error) < 300
    # a name of ordinary length is quoted whole
    assert "unknown model 'nope';" in client.get("/api/models/nope").json()["detail"]


def test_every_page_and_route_that_names_a_clients_text_back_cuts_it(client):
    """Pages that fall back to a default say which name they did not know, routes that refuse a
    factor or class name it: each quotes at most 60 characters of it."""
    long = "q" * 20_000
    cut = f"{'q' * 60}…"
    pages = [("/", {"model": long}), ("/map", {"model": long}), ("/map", {"method": long}),
             ("/compare", {"a": long}), ("/compress", {"model": long})]  # fmt: skip
    for path, params in pages:
        r = client.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code)
        assert cut in r.text.replace("&#39;", "'") and long[:61] not in r.text, path
    routes = [
        ("/api/models/tiny-vae/direction", {"factor": long}),
        ("/api/models/tiny-vae/direction", {"from": long, "to": "heart"}),
        ("/ui/compare/direction", {"a": long, "b": "tiny-vae", "factor": "scale"}),
    ]
    for path, params in routes:
        r = client.get(path, params=params)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert cut in r.text.replace("&#39;", "'") and long[:61] not in r.text, path
        assert len(r.text) < 20_000
