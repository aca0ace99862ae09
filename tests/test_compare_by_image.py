"""/compare by one image: any two models side by side, each encoding the same picture fitted to its
own input, each its own sliders; the pair the person chose is the pair shown."""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import re

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from app.main import create_app
from app.settings import Settings
from tests.eight_latent_plugin import served_plugin


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The shipped checkpoints and an 8-latent plugin with no data set, and the plugin itself."""
    with served_plugin(tmp_path_factory.mktemp("plugin"), "compare_eight_latents") as (
        settings,
        model,
    ):
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            yield client, model, settings


def words(text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def encodings(page: str) -> list[list[float]]:
    """Each panel's encoding's μ, in page order."""
    return [
        json.loads(html.unescape(m))
        for m in re.findall(r'class="encoding" data-mu="([^"]+)"', page)
    ]


def fashion_test_image(settings: Settings, index: int) -> np.ndarray:
    """Fashion-MNIST's test image `index`, read from the idx file here (28×28 uint8)."""
    folder = settings.fashion_mnist_dir
    path = next(p for p in folder.iterdir() if p.name.startswith("t10k-images"))
    data = path.read_bytes()
    data = gzip.decompress(data) if path.suffix == ".gz" else data
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)[index]


def test_two_latent_counts_compare_by_image_and_keep_both_choices(served):
    client, _, _ = served
    page = client.get("/compare?a=my-conv-vae&b=fashion-vae")
    assert page.status_code == 200
    text = page.text
    # the picker shows the pair asked for, and each model has its own sliders
    assert re.search(r'<option value="my-conv-vae" selected>', text.split('id="model-b"')[0])
    assert re.search(r'<option value="fashion-vae" selected>', text.split('id="model-b"')[1])
    assert len(re.findall(r'type="range" id="a-z\d+"', text)) == 8
    assert len(re.findall(r'type="range" id="b-z\d+"', text)) == 10
    said = words(text)
    assert "my-conv-vae has 8 latents and fashion-vae has 10: one z cannot drive both" in said
    # asked for nothing it cannot do: no warning (only the hidden boxes for decode errors)
    assert re.findall(r'role="alert"[^>]*>(?!</p>)', text) == []
    # both scored over different pixels: the page says the −ELBOs are not to be set side by side
    assert "the −ELBOs are not comparable: my-conv-vae scores 64×64 grey pixels" in said


def test_asking_one_z_of_a_pair_it_cannot_drive_says_so_and_shows_them_by_image(served):
    client, _, _ = served
    text = client.get("/compare?a=my-conv-vae&b=fashion-vae&by=z").text
    assert ("my-conv-vae has 8 latents and fashion-vae has 10: one z cannot drive both; "
            "compared by one image instead") in words(text)  # fmt: skip
    assert 'data-model="my-conv-vae"' in text and 'data-model="fashion-vae"' in text
    # a pair one z can drive is offered it, and asked for, gets it
    same = client.get("/compare?a=fashion-vae&b=fashion-beta-vae&by=image").text
    assert 'href="/compare?a=fashion-vae&b=fashion-beta-vae&by=z"' in same
    by_z = client.get("/compare?a=fashion-vae&b=fashion-beta-vae&by=z").text
    assert len(re.findall(r'type="range" id="z\d+"', by_z)) == 10  # one set of sliders


def test_each_model_encodes_the_same_dataset_image_fitted_to_its_input(served):
    client, plugin, settings = served
    page = client.get("/compare?a=my-conv-vae&b=fashion-vae&source=fashion-vae&index=7").text
    assert "fashion-vae's Fashion-MNIST test image 7" in words(page)
    mu_plugin, mu_fashion = encodings(page)
    image = fashion_test_image(settings, 7)
    # the plugin sees the 28×28 garment area-resampled to its 64×64 (PIL's own fit)
    fitted = np.asarray(ImageOps.fit(Image.fromarray(image), (64, 64), Image.Resampling.BOX))
    x = torch.from_numpy(fitted.astype(np.float32) / 255.0)[None, None]
    with torch.no_grad():
        expected = plugin.encode(x).mean[0].numpy()
    np.testing.assert_allclose(mu_plugin, expected, atol=1e-5)
    # the slider of each latent starts at that μ (to its two decimals)
    for d in range(8):
        value = re.search(rf'id="a-z{d}"[^>]*value="([-\d.]+)"', page).group(1)
        assert float(value) == pytest.approx(np.clip(expected[d], -3, 3), abs=0.0051)
    # the input shown under the plugin is exactly that fitted image
    shown = re.findall(r'src="data:image/png;base64,([^"]+)" alt="the 64×64 input', page)[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(shown)))), fitted)
    # fashion-vae encodes the garment as it is: its own image, unchanged
    assert len(mu_fashion) == 10
    again = client.get("/ui/fashion-vae/encode-picture?source=fashion-vae&index=7").text
    np.testing.assert_allclose(encodings(again)[0], mu_fashion, atol=1e-6)
    assert "fitted from" not in words(again)
    said = words(client.get("/ui/my-conv-vae/encode-picture?source=fashion-vae&index=7").text)
    assert "fitted from 28×28 grey to 64×64 grey" in said


def test_the_picture_route_says_what_is_wrong_in_one_line(served):
    client, _, _ = served
    unknown = client.get("/ui/fashion-vae/encode-picture?source=nobody&index=3")
    assert unknown.status_code == 422
    assert words(unknown.text) == "unknown model 'nobody' to take the image from"
    past = client.get("/ui/fashion-vae/encode-picture?source=fashion-vae&index=10000")
    assert past.status_code == 422 and "must be in 0..9999" in words(past.text)
    none = client.get("/ui/fashion-vae/encode-picture?source=my-conv-vae")
    assert none.status_code == 422 and "no dataset images" in words(none.text)
    assert client.get("/ui/nobody/encode-picture?source=fashion-vae").status_code == 404
    # a random one when no index is named: an encoding, not an error
    assert encodings(client.get("/ui/fashion-vae/encode-picture?source=dsprites-vae").text)
    # an index past the images on the page itself: a line, and the typical image instead
    page = client.get("/compare?a=my-conv-vae&b=fashion-vae&source=fashion-vae&index=99999")
    assert page.status_code == 200
    assert "index 99999 is past" in words(page.text) and len(encodings(page.text)) == 2


def test_a_spatial_model_compares_by_image_with_its_channels(served):
    client, _, _ = served
    url = (
        "/compare?a=shapes-autoencoder-kl&b=dsprites-beta-vae&source=shapes-autoencoder-kl&index=5"
    )
    page = client.get(url).text
    said = words(page)
    assert "shapes-autoencoder-kl's latent is 4 channels over 8×8 cells" in said
    assert 'data-shape="4,8,8"' in page and 'id="a-channel0"' in page
    assert len(re.findall(r'type="range" id="b-z\d+"', page)) == 10
    # its encoding, a row per channel: mean μ, mean σ and KL(q ‖ N(0, I)) of its 64 cells summed,
    # against the API's μ and σ of the same image
    table = page.split('class="encode-channels"')[1].split("</table>")[0]
    number = r"<td>([-\d.]+)</td>"
    rows = re.findall(rf"<tr><td>(\d)</td>{number}{number}.*?</svg> ([-\d.]+)</td>", table, re.S)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3]
    api = client.get("/api/models/shapes-autoencoder-kl/encode?index=5").json()
    mu, sigma = np.array(api["mu"]).reshape(4, 64), np.array(api["sigma"]).reshape(4, 64)
    kl = 0.5 * (mu**2 + sigma**2 - 1 - np.log(sigma**2)).sum(axis=1)
    for (_, m, s, k), c in zip(rows, range(4), strict=True):
        assert float(m) == pytest.approx(mu[c].mean(), abs=0.0051)
        assert float(s) == pytest.approx(sigma[c].mean(), abs=0.0051)
        assert float(k) == pytest.approx(kl[c], abs=0.051, rel=1e-3)
    # the same spatial model on both sides: two explorers, ids apart
    both = client.get("/compare?a=shapes-autoencoder-kl&b=shapes-autoencoder-kl").text
    assert 'id="a-channel0"' in both and 'id="b-channel0"' in both


def test_a_direction_one_model_cannot_have_is_a_note_and_one_z_offers_by_image(served):
    client, _, _ = served
    r = client.get(
        "/ui/compare/direction?a=disvae-btcvae-mnist&b=fashion-vae&from=T-shirt/top&to=Trouser"
    )
    mnist = r.text.split('data-model="disvae-btcvae-mnist"')[1].split("</article>")[0]
    assert "Not for this model: from: model disvae-btcvae-mnist has no class" in words(mnist)
    assert 'role="alert"' not in mnist
    assert "direction-bar" in r.text.split('data-model="fashion-vae"')[1]
    page = client.get("/compare?a=disvae-btcvae-mnist&b=fashion-vae").text
    assert 'href="/compare?a=disvae-btcvae-mnist&b=fashion-vae&by=image"' in page
