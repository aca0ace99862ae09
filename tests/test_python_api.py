"""`latent_explorer.serve`: the explorer from Python, on model objects and data sets held in
memory, served by a real uvicorn in a thread of this process on a free port and asked over real
HTTP (httpx)."""

from __future__ import annotations

import errno
import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from app.checkpoints import load_checkpoint
from app.models.interface import ModelDescription, NativeModel, Posterior, describe_config
from latent_explorer import ServeError, serve

SIDE, LATENTS = 16, 3


class TinyLinearVAE(nn.Module):
    """A small module kept behind the model interface as docs/plugins.md shows: 3 latents, one
    linear layer each way, 16×16 grey images."""

    name = "tiny-linear"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(SIDE * SIDE, 2 * LATENTS)
        self.decoder = nn.Linear(LATENTS, SIDE * SIDE)

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(latent_dim=LATENTS, channels=1, height=SIDE, width=SIDE)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=1)  # (B, 3) each
        return Posterior(mu, logvar)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, 1, SIDE, SIDE)  # (B, 1, 16, 16)


def write_image_folder(root, n=6):
    """A folder data set: two class sub-folders of small grey squares."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / ("light" if i % 2 else "dark")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 128, (16, 16)) + (127 if i % 2 else 0)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64) / 255


@pytest.fixture(scope="module")
def notebook_vae(trained):
    """Our own network as a notebook holds it after training: a VAE module in training mode,
    its parameters asking for gradients (not a folder)."""
    model = load_checkpoint(trained["tiny-vae"]).model.train()
    return model.requires_grad_(True)


@pytest.fixture(scope="module")
def explorer(notebook_vae, trained, tmp_path_factory):
    faces = write_image_folder(tmp_path_factory.mktemp("data") / "squares")
    models = [notebook_vae, TinyLinearVAE(), trained["tiny-ae"]]
    with serve(models=models, data={"squares": faces}) as running:
        yield running


@pytest.fixture(scope="module")
def http(explorer):
    with httpx.Client(base_url=explorer.url, timeout=30) as client:
        yield client


def test_the_models_given_are_listed_and_nothing_else(explorer, http):
    listed = {m["name"]: m for m in http.get("/api/models").json()}
    # the VAE object is named by its description, the module by its name, the folder by its name
    assert set(listed) == {"dsprites-vae", "tiny-linear", "tiny-ae"}
    assert explorer.models == ("dsprites-vae", "tiny-linear", "tiny-ae")
    assert (listed["tiny-linear"]["latent_dim"], listed["tiny-linear"]["height"]) == (3, 16)
    assert listed["tiny-linear"]["card"]["source"]["plugin"].startswith("python ")


def test_the_folder_data_set_is_listed_beside_the_built_ins(http):
    sets = {s["name"]: s for s in http.get("/api/datasets").json()}
    assert sets["squares"]["images"] == 6
    assert {"dsprites", "shapes3d", "fashion-mnist"} <= set(sets)


def test_decoding_z_gives_the_pixels_of_the_models_own_decoder(http, notebook_vae):
    z = torch.linspace(-1.5, 1.5, notebook_vae.config.latent_dim)[None]  # (1, D)
    r = http.get(
        "/api/models/dsprites-vae/decode.png", params={"z": ",".join(map(str, z[0].tolist()))}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with torch.no_grad():
        expected = NativeModel(notebook_vae, describe_config(notebook_vae.config)).decode(z)
    got = png_pixels(r.content)
    assert got.shape == expected.shape[2:]
    assert np.abs(got - expected[0, 0].numpy()).max() <= 1 / 255 + 1e-6  # the PNG's 8 bits
    blank = png_pixels(
        http.get(
            "/api/models/dsprites-vae/decode.png", params={"z": ",".join(["0"] * z.shape[1])}
        ).content
    )
    assert np.abs(blank - got).max() > 0.1  # another z, another picture


def test_decoding_z_gives_the_pixels_of_a_module_kept_behind_the_interface(http):
    z = [1.0, -0.5, 2.0]
    r = http.get("/api/models/tiny-linear/decode.png", params={"z": "1,-0.5,2"})
    with torch.no_grad():
        expected = TinyLinearVAE().decode(torch.tensor([z]))[0, 0].numpy()
    assert np.abs(png_pixels(r.content) - expected).max() <= 1 / 255 + 1e-6


def test_the_notebooks_own_module_is_left_as_it_was(explorer, notebook_vae):
    """What is served is a copy: the caller's model keeps training mode and gradients."""
    assert notebook_vae.training
    assert all(p.requires_grad for p in notebook_vae.parameters())


def test_training_on_after_serving_does_not_change_what_is_served():
    model = TinyLinearVAE()
    with serve(models=[model]) as explorer:
        url = f"{explorer.url}api/models/tiny-linear/decode.png?z=1,-0.5,2"
        before = httpx.get(url).content
        with torch.no_grad():
            model.decoder.bias += 3.0  # a step of training, after serve
        assert httpx.get(url, headers={"Cache-Control": "no-cache"}).content == before


def test_serving_leaves_the_callers_torch_threads_alone(trained):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with serve(models=[trained["tiny-vae"]]):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_stop_frees_the_port():
    explorer = serve(models=[TinyLinearVAE()])
    port = explorer.port
    assert httpx.get(f"{explorer.url}api/models").status_code == 200
    explorer.stop()
    assert not explorer.running
    assert refused(port)
    with socket.socket() as s:  # the port can be bound again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_wait_returns_once_another_thread_stops_it():
    explorer = serve(models=[TinyLinearVAE()])
    threading.Thread(target=explorer.stop).start()
    assert explorer.wait(timeout=30)


BLOCKING_SCRIPT = """
from examples.mlp_vae import build
from latent_explorer import serve
serve(models=[build()], block=True)
print("serve returned", flush=True)
"""


def test_block_serves_until_ctrl_c_then_returns():
    """A script's `serve(..., block=True)`: says where it serves on stderr, answers there,
    and on Ctrl-C (SIGINT) stops, frees its port and returns."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_SCRIPT],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        while url is None:  # its stderr, line by line, until the line that says where
            ready, _, _ = select.select([proc.stderr], [], [], 120)
            line = proc.stderr.readline() if ready else ""
            assert line, "the script ended or said nothing for 2 minutes"
            found = re.search(r"latent-explorer serving on (http://\S+)", line)
            url = found and found[1]
        assert httpx.get(f"{url}api/models").json()[0]["name"] == "example-mlp-vae"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out == "serve returned\n" and "Traceback" not in err
    assert refused(int(url.rsplit(":", 1)[1].strip("/")))


def test_a_notebook_shows_the_explorer_inline_and_a_link_to_it():
    with serve(models={"mine": TinyLinearVAE()}) as explorer:
        shown = explorer._repr_html_()
        assert f'<iframe src="{explorer.url}?model=mine"' in shown
        assert f'href="{explorer.url}"' in shown and f'href="{explorer.url}?model=mine"' in shown
        r = httpx.get(f"{explorer.url}api/models")
        assert r.json()[0]["name"] == "mine"
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'self' http://localhost:* http://127.0.0.1:*" in policy
        assert "x-frame-options" not in r.headers
    with serve(models={"mine": TinyLinearVAE()}, frame_ancestors=()) as closed:
        assert "<iframe" not in closed._repr_html_()
        r = httpx.get(f"{closed.url}api/models")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"


def test_a_frame_ancestor_that_is_no_origin_is_refused_in_one_line():
    with pytest.raises(ServeError, match=r"^frame_ancestors: 'http://a; script-src \*' is no"):
        serve(models={"mine": TinyLinearVAE()}, frame_ancestors=["http://a; script-src *"])


class _Notebook(threading.Thread):
    """A page on another port of this machine, as Jupyter's output is, holding `html`."""

    def __init__(self, html: str) -> None:
        super().__init__(daemon=True)
        body = html.encode()

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://localhost:{self.server.server_address[1]}/"

    def run(self) -> None:
        self.server.serve_forever()


@pytest.mark.parametrize("framed", [True, False])
def test_chromium_shows_the_explorer_in_a_notebooks_page_only_where_allowed(browser, framed):
    extra = {} if framed else {"frame_ancestors": ()}
    with serve(models={"mine": TinyLinearVAE()}, **extra) as explorer:
        forced = f'<iframe id="forced" src="{explorer.url}"></iframe>'  # a frame made anyway
        notebook = _Notebook(f"<html><body>{explorer._repr_html_()}{forced}</body></html>")
        notebook.start()
        try:
            page = browser.new_page()
            page.goto(notebook.url)
            page.wait_for_load_state("load")
            children = page.frames[1:]
            shown = [f.url.startswith(explorer.url) for f in children]
            titles = [f.evaluate("document.title") for f in children]
            page.close()
        finally:
            notebook.server.shutdown()
    if framed:  # the handle's frame and the forced one both show the explorer's page
        assert shown == [True, True] and all("latent-explorer" in t for t in titles), titles
    else:  # the handle makes no frame; Chromium refuses to show the forced one
        assert len(shown) == 1 and not shown[0] and "latent-explorer" not in titles[0], titles


def test_two_models_with_one_name_are_refused_naming_it(trained):
    with pytest.raises(ServeError, match=r"models\[1\].*'tiny-linear' is already served") as e:
        serve(models=[TinyLinearVAE(), TinyLinearVAE()])
    assert "\n" not in str(e.value)
    # a name given in a dict, against a folder of the checkpoints served whole
    folder = trained["tiny-vae"].parent
    with pytest.raises(ServeError, match=r"models\['tiny-vae'\].*'tiny-vae' is already served"):
        serve(models={"tiny-vae": TinyLinearVAE()}, checkpoints=folder)


def test_a_data_path_that_is_not_a_data_set_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ServeError) as e:
        serve(models=[TinyLinearVAE()], data={"notes": tmp_path})
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"data['notes']='{tmp_path}'") and "holds no images" in message
    with pytest.raises(ServeError, match="neither a folder nor a built-in"):
        serve(models=[TinyLinearVAE()], data={"gone": tmp_path / "nothing"})


def test_an_object_that_does_not_keep_the_interface_is_refused_by_the_plugins_probe():
    with pytest.raises(ServeError, match=r"models\[0\] \(Linear\): Linear does not keep the model"):
        serve(models=[nn.Linear(2, 2)])
