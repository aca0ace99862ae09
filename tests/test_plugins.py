"""`serve --plugin package.module:factory`: a person's own PyTorch model, served through the model
interface at its own size (the worked example: an MLP VAE on 28×28 images), and every way a
plugin can be wrong refused at start-up with what is wrong."""

from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import sync_playwright
from safetensors.numpy import load_file

from app.cli import main
from app.main import create_app
from app.plugins import PluginError, load_plugin
from app.registry import load_registry
from app.settings import Settings
from examples.mlp_vae.model import WEIGHTS
from tests.browser_server import (
    canvas_pixels,
    grab_and_drag,
    launch_chromium,
    live_server,
    wait_painted,
    wait_repainted,
)

EXAMPLE = "examples.mlp_vae:build"
NAME = "example-mlp-vae"


def mlp_decode(z: np.ndarray) -> np.ndarray:
    """The example's decoder written out in numpy from its weights file: (B, 6) → (B, 28, 28)."""
    w = load_file(str(WEIGHTS))
    h = np.maximum(z @ w["decoder.0.weight"].T + w["decoder.0.bias"], 0)
    h = np.maximum(h @ w["decoder.2.weight"].T + w["decoder.2.bias"], 0)
    logits = h @ w["decoder.4.weight"].T + w["decoder.4.bias"]
    return (1 / (1 + np.exp(-logits))).reshape(-1, 28, 28)


def mlp_encode_mean(x: np.ndarray) -> np.ndarray:
    """Its encoder's μ, likewise: (B, 28, 28) → (B, 6) (the first half of the last layer)."""
    w = load_file(str(WEIGHTS))
    h = np.maximum(x.reshape(len(x), -1) @ w["encoder.1.weight"].T + w["encoder.1.bias"], 0)
    h = np.maximum(h @ w["encoder.3.weight"].T + w["encoder.3.bias"], 0)
    return (h @ w["encoder.5.weight"].T + w["encoder.5.bias"])[:, :6]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-checkpoints")
    app = create_app(Settings(checkpoints_dir=empty, plugins=(EXAMPLE,)))
    with TestClient(app) as c:
        yield c


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64) / 255


def test_the_plugin_is_listed_at_its_own_size_with_its_source(client):
    (model,) = client.get("/api/models").json()
    assert model["name"] == NAME
    assert (model["height"], model["width"], model["channels"], model["latent_dim"]) == (
        28,
        28,
        1,
        6,
    )
    assert model["card"]["source"] == {"plugin": EXAMPLE}
    assert model["dataset_images"] is None  # 28×28 dSprites has no renderer here


def test_decoding_gives_the_plugins_own_pixels_at_28_by_28(client):
    z = np.array([0.5, -1.0, 0.0, 1.5, -0.3, 0.8])
    r = client.get(f"/api/models/{NAME}/decode.png", params={"z": ",".join(map(str, z))})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = png_pixels(r.content)
    assert got.shape == (28, 28)
    expected = mlp_decode(z[None].astype(np.float32))[0]
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6  # the PNG's 8-bit rounding
    other = png_pixels(
        client.get(f"/api/models/{NAME}/decode.png", params={"z": "0,0,0,0,0,0"}).content
    )
    assert np.abs(other - got).max() > 0.1  # another z, another picture


def test_an_upload_is_encoded_by_the_plugins_encoder(client):
    rng = np.random.default_rng(3)
    pixels = (rng.random((28, 28)) > 0.8).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    r = client.post(f"/api/models/{NAME}/encode", files={"file": ("x.png", buf.getvalue())})
    assert r.status_code == 200, r.text
    mu = np.array(r.json()["mu"])
    expected = mlp_encode_mean(pixels[None].astype(np.float32) / 255)[0]
    np.testing.assert_allclose(mu, expected, atol=1e-4)


def test_the_explore_page_and_a_traversal_run_at_28_pixels(client):
    page = client.get("/", params={"model": NAME})
    assert page.status_code == 200 and page.text.count('type="range" id="z') == 6
    params = {"z": "0,0,0,0,0,0", "steps": 5}
    r = client.get(f"/api/models/{NAME}/traverse.png", params=params)
    assert r.status_code == 200
    grid = png_pixels(r.content)
    assert grid.shape[1] == 5 * 30 + 2 and grid.shape[0] % 30 == 2  # 28-pixel tiles, 2 apart
    first = grid[2:30, 2:30]  # the first tile: the most used latent at −3, the rest at 0
    z = np.zeros((1, 6), dtype=np.float32)
    z[0, int(np.argmax(json.loads(WEIGHTS.with_suffix(".json").read_text())["kl_per_dim"]))] = -3
    assert np.abs(first - mlp_decode(z)[0]).max() <= 1 / 255 + 1e-6


# --- plugins that are wrong ---------------------------------------------------------------------

GOOD = """
import torch
from app.models.interface import ModelDescription, Posterior

class Model:
    name = "{name}"
    description = ModelDescription(latent_dim=2, channels=1, height=16, width=16)
    def encode(self, x, labels=None):
        m = x.flatten(1)[:, :2]
        return {encode}
    def decode(self, z, labels=None):
        return {decode}

def build():
    return Model()

def broken():
    raise RuntimeError("weights file not found: w.safetensors")
"""
GOOD_ENCODE = "Posterior(m, torch.zeros_like(m))"
GOOD_DECODE = "torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 16, 16)"


def write_plugin(tmp_path, monkeypatch, module: str, **kw: str) -> str:
    src = GOOD.format(
        name=kw.get("name", module), encode=kw.get("encode", GOOD_ENCODE),
        decode=kw.get("decode", GOOD_DECODE),
    )  # fmt: skip
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(src))
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def test_a_small_plugin_written_here_is_served(tmp_path, monkeypatch):
    served = load_plugin(write_plugin(tmp_path, monkeypatch, "good_plugin") + ":build")
    assert served.name == "good_plugin" and served.description.shape == (1, 16, 16)
    assert served.card.to_json()["source"] == {"plugin": "good_plugin:build"}


WRONG = {
    "a spec without a factory": ("M", {}, "expected package.module:factory"),
    "a module that is not there": (
        "no_such_module_here:build",
        {},
        "no module 'no_such_module_here' in the working directory (",
    ),
    "a factory that is not there": ("M:make", {}, "has no function make"),
    "a factory that raises": ("M:broken", {}, "broken() failed: RuntimeError: weights"),
    "pixels of the wrong size": (
        "M:build",
        {"decode": "torch.zeros(len(z), 1, 28, 28)"},
        r"pixel means of shape (2, 1, 16, 16)",
    ),
    "logits, not pixel means": (
        "M:build",
        {"decode": "torch.full((len(z), 1, 16, 16), 3.0)"},
        "pixel means in [0, 1]",
    ),
    "a tuple, not a Posterior": (
        "M:build",
        {"encode": "(m, m)"},
        "must return an app.models.interface.Posterior(mean, logvar), got a tuple of 2 tensors "
        "(2, 2), (2, 2)",
    ),
    "no log variance for a VAE": (
        "M:build",
        {"encode": "Posterior(m)"},
        "logvar must be None for an AE",
    ),
    "a name that is not a URL segment": (
        "M:build",
        {"name": "my model/2"},
        "must be letters, digits",
    ),
}


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_plugin_is_refused_with_what_is_wrong(case, tmp_path, monkeypatch):
    spec, changes, message = WRONG[case]
    module = f"plugin_{list(WRONG).index(case)}"  # a fresh module each: imports are cached
    spec = spec.replace("M", module, 1) if spec.startswith("M") else spec
    write_plugin(tmp_path, monkeypatch, module, **changes)
    with pytest.raises(PluginError) as e:
        load_plugin(spec)
    assert message in str(e.value)


def test_the_errors_say_what_to_do_and_never_dump_tensors(tmp_path, monkeypatch, caplog):
    import logging
    import os

    with pytest.raises(PluginError) as e:
        load_plugin("myplugin_not_here:build")
    assert f"working directory ({os.getcwd()})" in str(e.value) and "PYTHONPATH" in str(e.value)
    # a module that is there but imports one that is not: its own error, not the path advice
    (tmp_path / "needs_a_dependency.py").write_text("import a_dependency_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="No module named 'a_dependency_not_installed'") as e:
        load_plugin("needs_a_dependency:build")
    assert "PYTHONPATH" not in str(e.value)
    module = write_plugin(tmp_path, monkeypatch, "tuple_encoder", encode="(m, m)")
    with pytest.raises(PluginError) as e:
        load_plugin(f"{module}:build")
    assert "tensor(" not in str(e.value)  # shapes, not contents
    # a PyTorch file in the checkpoints folder, loose or in a folder of its own
    root = tmp_path / "checkpoints"
    (root / "my-conv-vae").mkdir(parents=True)
    (root / "my-conv-vae" / "model.pt").write_bytes(b"not read")
    (root / "weights.pth").write_bytes(b"not read")
    with caplog.at_level(logging.ERROR):
        assert list(load_registry(root)) == []
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("skipping checkpoint my-conv-vae: it holds model.pt but no "
                               "config.json") and "--plugin" in line
               and "latent-explorer import" in line for line in lines), lines  # fmt: skip
    assert any(line.startswith("ignoring weights.pth: a PyTorch file is not a checkpoint")
               for line in lines), lines  # fmt: skip


def test_two_models_under_one_name_are_refused(tmp_path, monkeypatch):
    write_plugin(tmp_path, monkeypatch, "clash", name="twice")
    with pytest.raises(PluginError, match="a model named 'twice' is already served"):
        load_registry(tmp_path / "no-folders", ("clash:build", "clash:build"))


def test_serve_refuses_a_bad_plugin_before_starting(capsys):
    assert main(["serve", "--plugin", "no_such_module_here:build", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_module_here:build: no module 'no_such_module_here' in the working" in err


# --- in the browser -----------------------------------------------------------------------------


def test_dragging_a_slider_of_the_plugin_changes_its_picture(tmp_path):
    with live_server(Settings(checkpoints_dir=tmp_path, plugins=(EXAMPLE,))) as url:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(base_url=url, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"/?model={NAME}")
            shown = wait_painted(page, NAME)
            before = canvas_pixels(page, NAME)
            size = page.eval_on_selector(
                f'canvas.decoded[data-model="{NAME}"]', "c => [c.width, c.height]"
            )
            grab_and_drag(page, page.locator(".latent input[type=range]").first, 0.45)
            wait_repainted(page, NAME, shown)
            after = canvas_pixels(page, NAME)
            page.mouse.up()
            browser.close()
    assert size[0] % 28 == 0 and size[0] == size[1]  # the plugin's 28×28, scaled up whole
    assert after != before
    assert errors == []


def test_the_pages_of_a_plugin_without_data_say_what_is_true_of_it(tmp_path, monkeypatch):
    import html
    import re

    module = write_plugin(tmp_path, monkeypatch, "no_data_plugin")
    settings = Settings(plugins=(f"{module}:build",), cache_dir=tmp_path / "cache")

    def words(page: str) -> str:
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())

    with TestClient(create_app(settings), base_url="http://localhost") as client:
        explore = words(client.get(f"/?model={module}").text)
        assert "2 latents · latents in use not measured (no KL per latent" in explore
        mapped = words(client.get(f"/map?model={module}").text)
        assert (f"{module} has no images here, so each point is its encoder mean μ of one of its "
                "own decodings of a z drawn from N(0, I)") in mapped  # fmt: skip
        assert "held-out image" not in mapped
        card = client.get(f"/models/{module}").text
        assert "served by" in words(card) and f"plugin {module}:build" in words(card)
        for unsaid in ("imported not recorded", "commit not recorded", "trained on ,"):
            assert unsaid not in words(card), unsaid
        assert "No KL per latent: not on its card, and it has no data set here" in words(card)
        assert "Served from a plugin's own code" in words(card)
        # Figure 2 is for models of data with known factors: a note here, never a request
        assert f"/ui/{module}/figure2" not in card
        assert "Not for this model: Figure 2 plots latents against the factors" in words(card)
        compare = client.get("/compare?a=fashion-vae&b=dsprites-vae").text
        assert 'hx-get="/ui/dsprites-vae/figure2"' in compare
        assert "/ui/fashion-vae/figure2" not in compare
        assert "its data set, fashion-mnist, has no such factors here" in words(compare)
