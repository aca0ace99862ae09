"""The VAE vs GAN view: gradient energy is what its docstring says, the numbers are those of the
images returned, the same z gives the same pictures, and every bad request is named."""

from __future__ import annotations

import base64
import io
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image

from app import inference
from app.checkpoints import ModelCard
from app.data.ground_truth import DSPRITES
from app.main import create_app
from app.settings import Settings
from app.studies.quality import QualityError, gradient_energy
from app.training import train
from app.web.sharpness import default_pair
from tests.conftest import tiny_args

# --- the measure ----------------------------------------------------------------------------


def test_a_flat_image_has_no_gradient_energy():
    assert gradient_energy(torch.full((2, 3, 64, 64), 0.7)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("block", "amplitude"), [(1, 1.0), (1, 0.5), (8, 1.0), (16, 0.25)])
def test_a_checkerboard_has_its_closed_form(block, amplitude):
    n = 64
    i = torch.arange(n) // block
    board = amplitude * ((i[:, None] + i[None, :]) % 2).double()  # (64, 64)
    # each of the (n−1)² pixels measured has a horizontal jump in (n/block − 1) of its n−1
    # columns and a vertical one in as many rows: both add amplitude² to |∇|²
    expected = 2 * amplitude**2 * (n / block - 1) / (n - 1)
    got = gradient_energy(board[None, None]).item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert gradient_energy(torch.ones(1, 1, 2, 2).double() - torch.eye(2)[None, None]).item() == 2


def test_blurring_lowers_it_and_channels_are_averaged():
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert (gradient_energy(blurred) < 0.5 * gradient_energy(x)).all()
    grey = x[:, :1]
    assert gradient_energy(grey.repeat(1, 3, 1, 1)).tolist() == pytest.approx(
        gradient_energy(grey).tolist(), rel=1e-12
    )


def test_it_refuses_what_it_cannot_measure():
    with pytest.raises(QualityError, match="at least 2×2 px"):
        gradient_energy(torch.zeros(1, 1, 1, 64))
    with pytest.raises(QualityError, match=r"shape \(64, 64\)"):
        gradient_energy(torch.zeros(64, 64))


# --- the API and the page -------------------------------------------------------------------


@pytest.fixture(scope="module")
def gan_client(trained, tmp_path_factory):
    """The tiny models plus a tiny VAE-GAN trained for 20 steps."""
    root = tmp_path_factory.mktemp("sharpness")
    args = tiny_args(root / "run" / "tiny-vaegan", kind="vaegan", steps=20, eval_images=64)
    assert train(args) == 0
    served = root / "served"
    shutil.copytree(args.out, served / "tiny-vaegan")
    for name, folder in trained.items():
        shutil.copytree(folder, served / name)
    with TestClient(create_app(Settings(checkpoints_dir=served))) as c:
        yield c


def pixels(data_url: str) -> torch.Tensor:
    png = base64.b64decode(data_url.split(",", 1)[1])
    arr = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64) / 255
    return torch.from_numpy(arr)[None, None]  # (1, 1, 64, 64): the tiny models are grey


Z = ",".join(["0.5", "-1", "0", "2", "0", "0", "1.5", "0", "-0.3", "0"])


def test_the_number_is_that_of_the_returned_image(gan_client):
    for name in ("tiny-vaegan", "tiny-vae"):
        r = gan_client.get(f"/api/models/{name}/sharpness", params={"z": Z})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["z"] == pytest.approx([float(v) for v in Z.split(",")])
        image = pixels(body["image_png"])
        assert image.shape == (1, 1, 64, 64)
        assert body["gradient_energy"] == pytest.approx(gradient_energy(image).item(), rel=1e-12)


def test_a_dataset_image_comes_with_its_own_energy_as_the_reference(gan_client):
    r = gan_client.get("/api/models/tiny-vaegan/sharpness/4242")
    assert r.status_code == 200, r.text
    body = r.json()
    original = pixels(body["input_png"])
    assert np.array_equal(original[0, 0].numpy(), DSPRITES.image(4242)[0])
    assert body["input_gradient_energy"] == pytest.approx(gradient_energy(original).item())
    assert body["input_gradient_energy"] > 0  # a sprite has edges
    recon = pixels(body["image_png"])
    assert body["gradient_energy"] == pytest.approx(gradient_energy(recon).item(), rel=1e-12)


def test_the_same_z_gives_the_same_images_and_the_page_agrees(gan_client):
    def get(params):
        r = gan_client.get("/api/models/tiny-vaegan/sharpness", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    assert get({"z": Z}) == get({"z": Z})
    seed = 7
    z = inference.sample_prior(10, 1, seed)[0]
    text = ",".join(repr(v) for v in z.tolist())
    from_api = get({"z": text})
    page = gan_client.get("/sharpness", params={"seed": seed}).text
    assert f'src="{from_api["image_png"]}"' in page
    other = gan_client.get("/sharpness", params={"seed": seed + 1}).text
    assert f'src="{from_api["image_png"]}"' not in other


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"z": "1,2,3"}, "z must have 10 values for model tiny-vaegan, got 3"),
        ({"z": Z.replace("2", "200")}, "z values must lie within ±10"),
        ({"z": Z.replace("2", "x")}, "z[3] is 'x', not a number"),
        ({"z": Z, "label": 3}, "tiny-vaegan is a vae: it takes no label"),
    ],
)
def test_bad_requests_name_the_problem(gan_client, params, message):
    r = gan_client.get("/api/models/tiny-vaegan/sharpness", params=params)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


def test_an_unknown_model_is_a_404(gan_client):
    r = gan_client.get("/api/models/nope/sharpness", params={"z": Z})
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]


def test_the_page_puts_the_plain_vae_beside_the_vaegan(gan_client):
    page = gan_client.get("/sharpness", params={"index": 11})
    assert page.status_code == 200, page.text
    html = page.text
    assert '<option value="tiny-vae" selected>' in html
    assert '<option value="tiny-vaegan" selected>' in html
    panels = re.findall(r'class="sharpness-panel([^"]*)" data-model="([^"]+)"', html)
    assert panels == [("", "tiny-vae"), (" gan", "tiny-vaegan")] * 2  # samples, reconstructions
    assert html.count('class="sharpness-panel reference"') == 1
    assert "gradient energy: the mean over pixels and channels of |∇x|²" in html
    assert 'href="/sharpness?a=tiny-vae&amp;b=tiny-vaegan&amp;seed=1&amp;index=11"' in html
    assert "<html" in html and 'href="/sharpness">VAE vs GAN</a>' in html


def test_htmx_gets_the_fragment_and_errors_are_shown_there(gan_client):
    headers = {"HX-Request": "true"}
    r = gan_client.get("/sharpness", params={"a": "tiny-ae", "b": "tiny-vaegan", "seed": 3},
                       headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert "<html" not in r.text and 'id="sharpness-form"' in r.text
    assert 'data-model="tiny-ae"' in r.text
    r = gan_client.get("/sharpness", params={"a": "nope"}, headers=headers)
    assert r.status_code == 404 and 'class="error"' in r.text
    assert "unknown model &#39;nope&#39;" in r.text
    r = gan_client.get("/sharpness", params={"index": 10**7}, headers=headers)
    assert r.status_code == 422 and "dSprites index must be in 0..737279" in r.text


def test_the_default_pair_is_a_plain_vae_of_the_same_data_beside_the_vaegan():
    def ckpt(kind="vae", beta=1.0, objective="beta", dataset="shapes3d", latents=10, card=None):
        config = SimpleNamespace(kind=kind, beta=beta, objective=objective, dataset=dataset,
                                 latent_dim=latents, channels=3 if dataset == "shapes3d" else 1,
                                 image_size=64)  # fmt: skip
        return SimpleNamespace(description=config, card=ModelCard.from_json(card or {}), digest="")

    registry = {
        "ae": ckpt("ae"),
        "dsprites-vae": ckpt(dataset="dsprites"),
        "dae": ckpt(card={"denoising": {}}),
        "beta": ckpt(beta=4.0),
        "wide": ckpt(latents=32),
        "gan": ckpt(objective="vaegan"),
    }
    assert default_pair(registry) == ("beta", "gan")
    registry["vae"] = ckpt()
    assert default_pair(registry) == ("vae", "gan")
    recipe_only = {"old": ckpt(card={"recipe": "VAE-GAN (Larsen et al. 2016), γ=0.01"}),
                   "vae": ckpt()}  # fmt: skip
    assert default_pair(recipe_only) == ("vae", "old")
    # the VAE-GAN's own parent, when that exact model is served, whatever the other rules say
    gan = registry["gan"]
    gan.card = gan.card.updated(initialised_from={"name": "beta", "digest": "d-beta"})
    assert default_pair(registry) == ("vae", "gan")  # not served: "beta" is another model now
    registry["beta"].digest = "d-beta"
    assert default_pair(registry) == ("beta", "gan")
    del registry["gan"]
    # no GAN: the first plain VAE that another model can share a z and an image with, and that
    # model ("dsprites-vae" has none: the others take colour images; "wide" has 32 latents)
    assert default_pair(registry) == ("vae", "ae")
    assert default_pair({"solo": ckpt()}) == ("solo", "solo")
    apart = {"beta": registry["beta"], "dsprites-vae": registry["dsprites-vae"]}
    assert default_pair(apart) == ("dsprites-vae", "dsprites-vae")  # none pair: β=1 first


@pytest.fixture(scope="module")
def no_vaegan(colour_beside_tiny):
    """The tiny dSprites models beside a colour VAE: no VAE-GAN is served, and no other model
    takes the plain VAE's z."""
    with TestClient(create_app(Settings(checkpoints_dir=colour_beside_tiny))) as c:
        yield c


def test_without_a_vaegan_the_page_opens_on_two_models_that_share_a_z(no_vaegan):
    r = no_vaegan.get("/sharpness")
    assert r.status_code == 200, r.text
    assert 'class="error"' not in r.text
    assert "No VAE-GAN is served" in r.text
    selected = re.findall(r'<option value="([^"]+)" selected>\1</option>', r.text)
    assert selected == ["tiny-vae", "tiny-ae"]
    # the same page as naming that pair
    named = no_vaegan.get("/sharpness", params={"a": "tiny-vae", "b": "tiny-ae"})
    assert named.status_code == 200 and named.text == r.text
    panels = re.findall(r'class="sharpness-panel[^"]*" data-model="([^"]+)"', r.text)
    assert panels == ["tiny-vae", "tiny-ae"] * 2  # samples, reconstructions
