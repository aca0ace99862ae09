"""The VAE as a codec against JPEG: the quality metrics against closed forms and an independent
implementation, the quantiser and the bytes, JPEG's closest size and payload, the
rate–distortion study, and the API, SVG and page of the compression view."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import shutil
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from scipy import ndimage

from app.checkpoints import ModelCard, load_checkpoint, save_checkpoint
from app.inference import InferenceError
from app.main import create_app
from app.models import VAE, ModelConfig
from app.models.interface import describe_config
from app.settings import Settings
from app.studies import compression
from app.studies.compression import (
    BITS,
    Codec,
    CompressionError,
    Study,
)
from app.studies.quality import PSNR_CAP, QualityError, ms_ssim, ms_ssim_scales, psnr, ssim, to_8bit
from app.web.compress import get_study

SMALL = Study(n_images=16, qualities=(1, 10, 50, 90))  # a second or two per model
NS = "{http://www.w3.org/2000/svg}"
C1, C2 = 0.01**2, 0.03**2


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sprites(n: int = 8, seed: int = 3) -> torch.Tensor:
    x, _ = compression.study_images(describe_config(ModelConfig()), n, seed)
    return x


# --- metrics --------------------------------------------------------------------------------


def test_identical_images_score_ssim_1_ms_ssim_1_and_psnr_at_the_stated_cap():
    x = rand(3, 1, 64, 64)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ms_ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert (psnr(x, x) == PSNR_CAP).all()
    # the cap is above any real 8-bit difference on 64×64: one pixel off by one level
    y = x.clone()
    y[0, 0, 0, 0] += 1 / 255
    assert 80 < psnr(x[:1], y[:1]).item() < PSNR_CAP


def test_psnr_of_a_constant_error_is_its_closed_form():
    x = torch.zeros(1, 1, 64, 64)
    for err in (0.1, 0.01, 0.5):
        assert psnr(x, x + err).item() == pytest.approx(-20 * math.log10(err))


def test_ssim_of_flat_images_is_the_luminance_term():
    """No variance, so the contrast-structure term is 1 and SSIM = (2ab + C1)/(a² + b² + C1)."""
    for a, b in ((0.0, 0.1), (0.5, 0.6), (0.2, 0.9)):
        x, y = torch.full((1, 1, 32, 32), a), torch.full((1, 1, 32, 32), b)
        assert ssim(x, y).item() == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1))


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004, written independently with scipy: an 11-tap Gaussian (σ = 1.5,
    truncated at 3.5σ = radius 5), averaged over the positions where it fits whole."""

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, 1.5, truncate=3.5)[5:-5, 5:-5]

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    return float(s.mean())


def test_ssim_matches_an_independent_implementation():
    x = sprites(4).double()
    noisy = (x + 0.2 * rand(4, 1, 64, 64, seed=1)).clamp(0, 1)
    ours = ssim(x, noisy)
    for i in range(4):
        expected = reference_ssim(x[i, 0].numpy(), noisy[i, 0].numpy())
        assert ours[i].item() == pytest.approx(expected, abs=1e-9)


def test_ssim_and_ms_ssim_fall_as_noise_grows_and_are_symmetric():
    x = sprites(4).double()
    noise = rand(4, 1, 64, 64, seed=2) - 0.5
    last_s, last_m, last_p = 1.0, 1.0, PSNR_CAP
    for level in (0.05, 0.2, 0.5, 1.0):
        y = (x + level * noise).clamp(0, 1)
        s, m, p = ssim(x, y).mean().item(), ms_ssim(x, y).mean().item(), psnr(x, y).mean().item()
        assert s < last_s and m < last_m and p < last_p
        last_s, last_m, last_p = s, m, p
        assert torch.allclose(ssim(x, y), ssim(y, x))
        assert torch.allclose(ms_ssim(x, y), ms_ssim(y, x))
        assert torch.allclose(psnr(x, y), psnr(y, x))


def test_ms_ssim_stays_in_0_1_even_for_inverted_images_and_uses_3_scales_on_64_px():
    x = sprites(4).double()
    for y in (1 - x, torch.zeros_like(x), rand(4, 1, 64, 64, seed=5)):
        m = ms_ssim(x, y)
        assert ((m >= 0) & (m <= 1)).all(), m
    assert ms_ssim_scales(64) == 3
    assert ms_ssim_scales(128) == 4 and ms_ssim_scales(16) == 1
    with pytest.raises(QualityError, match="at least 11×11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_colour_images_are_scored_per_channel_then_averaged():
    x = rand(2, 3, 64, 64, seed=6)
    y = x.clone()
    y[:, 0] = (y[:, 0] + 0.3 * rand(2, 64, 64, seed=7)).clamp(0, 1)  # only red differs
    red = ssim(x[:, :1], y[:, :1])
    assert torch.allclose(ssim(x, y), (red + 2) / 3)
    assert torch.allclose(ms_ssim(x, y), (ms_ssim(x[:, :1], y[:, :1]) + 2) / 3)


# --- the quantiser and the bytes ------------------------------------------------------------


def test_decoding_a_quantised_latent_lands_within_half_a_bin_and_more_bits_err_less():
    codec = Codec(latent_dim=6, kept=(1, 2, 4), loc=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0))
    mu = torch.randn(2000, 6, generator=torch.Generator().manual_seed(0)) * 1.5
    errors = []
    for k in BITS:
        z = compression.dequantise(compression.quantise(mu, codec, k), codec, k)
        kept = list(codec.kept)
        u, u_hat = torch.special.ndtr(mu[:, kept].double()), torch.special.ndtr(z[:, kept].double())
        assert ((u - u_hat).abs() <= 0.5 / 2**k + 1e-6).all()  # half a bin, in Φ's units
        assert (z[:, [0, 3, 5]] == 0).all()  # the latents the code does not carry decode at 0
        errors.append((z[:, kept] - mu[:, kept]).abs().mean().item())
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors


def test_the_code_is_ceil_of_kept_times_bits_over_8_bytes_and_unpacks_to_itself():
    gen = torch.Generator().manual_seed(1)
    for n_kept in (1, 3, 4, 10):
        for label_bits in (0, 2):
            codec = Codec(10, tuple(range(n_kept)), (0.0,) * n_kept, (1.0,) * n_kept, label_bits)
            for k in BITS:
                q = torch.randint(0, 2**k, (n_kept,), generator=gen)
                label = 3 if label_bits else 0
                code = compression.pack_code(q, k, label, label_bits)
                assert len(code) == math.ceil((label_bits + n_kept * k) / 8) == codec.n_bytes(k)
                back, back_label = compression.unpack_code(code, codec, k)
                assert torch.equal(back, q) and back_label == label
    with pytest.raises(CompressionError, match="is 4 bytes, got 3"):
        compression.unpack_code(b"abc", Codec(10, (0, 1, 2, 3), (0.0,) * 4, (1.0,) * 4), 8)
    with pytest.raises(CompressionError, match="bits must be in 1..8"):
        compression.check_bits(9)


# --- JPEG -----------------------------------------------------------------------------------


def test_jpeg_closest_picks_the_quality_whose_file_size_is_nearest():
    x = sprites(1)[0]
    sizes = {q: len(compression.jpeg_encode(x, q)) for q in compression.JPEG_QUALITIES}
    for target in (0, 4, 230, 300, 400, 10_000):
        chosen = compression.jpeg_closest(x, target)
        best = min(abs(s - target) for s in sizes.values())
        assert abs(chosen.file_bytes - target) == best
        assert chosen.file_bytes == sizes[chosen.quality]
    assert compression.jpeg_closest(x, 0).quality == min(sizes, key=lambda q: sizes[q])


def test_jpeg_payload_is_the_scan_data_between_the_sos_header_and_eoi():
    for x in (sprites(1)[0], rand(3, 64, 64).float()):
        for quality in (1, 50, 95):
            data = compression.jpeg_encode(x, quality)
            sos = data.index(b"\xff\xda")
            header = int.from_bytes(data[sos + 2 : sos + 4], "big")
            assert data.endswith(b"\xff\xd9")
            assert compression.jpeg_scan_bytes(data) == len(data) - 2 - (sos + 2 + header)
            assert Image.open(io.BytesIO(data)).mode == ("L" if x.shape[0] == 1 else "RGB")
    with pytest.raises(CompressionError, match="not a JPEG"):
        compression.jpeg_scan_bytes(b"\x89PNG")


# --- on the tiny trained models -------------------------------------------------------------


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    """The tiny models, and an untrained colour model of an image folder (uploads only)."""
    root = tmp_path_factory.mktemp("compress-served")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    colour = ModelConfig(channels=3, likelihood="gaussian", dataset="folder:pics")
    torch.manual_seed(0)
    save_checkpoint(root / "tiny-colour", VAE(colour), ModelCard.from_json({"name": "tiny-colour",
                                                        "kl_per_dim": [1.0, 0.0] * 5}))  # fmt: skip
    save_checkpoint(root / "tiny-no-kl", VAE(colour), ModelCard(name="tiny-no-kl"))
    return root


@pytest.fixture(scope="module")
def models(served):
    return {p.name: load_checkpoint(p).served() for p in served.iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def client(served):
    app = create_app(Settings(checkpoints_dir=served))
    app.dependency_overrides[get_study] = lambda: SMALL
    with TestClient(app) as c:
        yield c


def test_the_code_keeps_the_active_latents_all_of_the_aes_and_a_cvaes_class(models):
    for name in ("tiny-cvae", "tiny-vae"):
        kl = models[name].card.to_json()["kl_per_dim"]
        codec = compression.codec_for(models[name])
        assert codec.kept == tuple(i for i, v in enumerate(kl) if v > 0.1)
        assert codec.loc == (0.0,) * len(codec.kept) and codec.scale == (1.0,) * len(codec.kept)
    assert compression.codec_for(models["tiny-cvae"]).kept  # 150 steps: one latent in use
    assert compression.codec_for(models["tiny-cvae"]).label_bits == 2  # 3 shapes
    assert compression.codec_for(models["tiny-vae"]).label_bits == 0
    ae = compression.codec_for(models["tiny-ae"])
    assert ae.kept == tuple(range(10)) and all(s > 0 for s in ae.scale)  # fitted to data


def test_a_model_that_uses_no_latent_has_an_empty_code(models, client):
    """The tiny β=4 VAE has collapsed after 150 steps (every latent under 0.1 nats): every image
    gets the same, empty code, and the views say so instead of failing."""
    ckpt = models["tiny-vae"]
    assert compression.codec_for(ckpt).kept == ()
    x = sprites(2, seed=14)
    a, b = (compression.compress_image(ckpt, im, 8) for im in x)
    assert a.code == b.code == b"" and a.bpp == 0
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert a.jpeg.quality == compression.jpeg_closest(x[0], 0).quality
    r = client.get("/api/models/tiny-vae/compress", params={"index": 5})
    assert r.status_code == 200 and r.json()["code"] == {"hex": "", "bytes": 0, "bits": 0,
                                                         "bpp": 0.0}  # fmt: skip
    assert "(empty)" in client.get("/compress", params={"model": "tiny-vae"}).text
    svg = client.get("/api/models/tiny-vae/rate-distortion.svg")
    assert svg.status_code == 200
    ET.fromstring(svg.text)
    part = client.get("/ui/tiny-vae/rate-distortion")
    assert part.status_code == 200 and "uses none of its latents" in part.text


@pytest.mark.parametrize("name", ["tiny-vae", "tiny-ae", "tiny-cvae"])
def test_the_bytes_alone_decode_to_the_reconstruction(models, name):
    ckpt = models[name]
    x = sprites(1, seed=11)[0]
    for k in (1, 4, 8):
        c = compression.compress_image(ckpt, x, k)
        assert len(c.code) == compression.codec_for(ckpt).n_bytes(k)
        decoded = to_8bit(compression.decode_code(ckpt, c.code, k))
        assert torch.equal(decoded, c.reconstruction)
        assert c.jpeg.file_bytes > c.jpeg.payload_bytes > 0


def test_more_bits_change_the_reconstruction_and_do_not_make_it_worse(models):
    for name, slack in (("tiny-ae", 1.0), ("tiny-cvae", 1.02)):
        ckpt = models[name]
        x, labels = compression.study_images(ckpt.description, 16, 12)
        label = [None] * 16 if labels is None else labels.tolist()
        pairs = list(zip(x, label, strict=True))
        recons = [torch.stack([compression.compress_image(ckpt, im, k, lab).reconstruction
                               for im, lab in pairs]) for k in BITS]  # fmt: skip
        assert not torch.equal(recons[0], recons[-1])
        mse = [(r - x).pow(2).mean().item() for r in recons]
        # the AE (10 latents in use) gains clearly; the tiny CVAE's one latent carries 0.2 nats,
        # so its code barely matters: it must at least not get worse on average
        assert mse[-1] < mse[0] * slack, (name, mse)
        assert all(b <= a * 1.05 for a, b in zip(mse, mse[1:], strict=False)), (name, mse)


def test_a_cvae_without_a_label_tries_every_class_and_keeps_the_best(models):
    ckpt = models["tiny-cvae"]
    x = sprites(1, seed=13)[0]
    chosen = compression.compress_image(ckpt, x, 6)
    each = [compression.compress_image(ckpt, x, 6, label) for label in range(3)]
    assert chosen.vae.psnr == pytest.approx(max(c.vae.psnr for c in each))
    assert chosen.label == max(range(3), key=lambda i: each[i].vae.psnr)
    with pytest.raises(InferenceError, match="label must be in 0..2"):
        compression.compress_image(ckpt, x, 6, label=5)


def test_the_rate_distortion_study_has_a_point_per_setting_and_rising_rates(models):
    rd = compression.compute_rate_distortion(models["tiny-ae"], SMALL)
    assert [p.setting for p in rd.vae] == list(BITS)
    assert [p.setting for p in rd.jpeg_file] == list(SMALL.qualities)
    assert [p.setting for p in rd.jpeg_payload] == list(SMALL.qualities)
    vae_bpp = [p.bpp for p in rd.vae]
    assert vae_bpp == sorted(vae_bpp) and vae_bpp[-1] == 8 * len(rd.kept) / 4096
    assert all(p.bpp < f.bpp for p, f in zip(rd.jpeg_payload, rd.jpeg_file, strict=True))
    assert [p.bpp for p in rd.jpeg_file] == sorted(p.bpp for p in rd.jpeg_file)
    assert rd.jpeg_file[-1].psnr > rd.jpeg_file[0].psnr
    for p in rd.vae + rd.jpeg_file + [rd.unquantised]:
        assert 0 <= p.ssim <= 1 and 0 <= p.ms_ssim <= 1 and 0 < p.psnr <= PSNR_CAP
    assert rd.vae[-1].psnr > rd.vae[0].psnr
    assert rd.dataset == "dSprites" and rd.pixels == 64 * 64


def test_a_model_whose_dataset_cannot_be_drawn_has_no_study(models):
    with pytest.raises(CompressionError, match="folder:pics cannot be drawn"):
        compression.rate_distortion(models["tiny-colour"], SMALL)


def test_concurrent_first_studies_compute_once(models, monkeypatch):
    calls = []
    compute = compression.compute_rate_distortion

    def slow(ckpt, study):
        calls.append(ckpt.digest)
        time.sleep(0.2)  # long enough for every thread to arrive while it runs
        return compute(ckpt, study)

    monkeypatch.setattr(compression, "compute_rate_distortion", slow)
    ckpt = dataclasses.replace(models["tiny-ae"], digest="compress-concurrency-test")
    results: list[compression.RateDistortion] = []
    threads = [
        threading.Thread(target=lambda: results.append(compression.rate_distortion(ckpt, SMALL)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["compress-concurrency-test"] and len(results) == 4
    assert all(r is results[0] for r in results)


# --- the API --------------------------------------------------------------------------------


def png(x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((x[0].numpy() * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_compress_a_dataset_image(client, models):
    r = client.get("/api/models/tiny-ae/compress", params={"index": 1234, "bits": 5})
    assert r.status_code == 200, r.text
    d = r.json()
    n_kept = len(compression.codec_for(models["tiny-ae"]).kept)
    assert d["kept_latents"] and len(d["kept_latents"]) == n_kept and d["bits"] == 5
    assert d["code"]["bytes"] == math.ceil(n_kept * 5 / 8) == len(bytes.fromhex(d["code"]["hex"]))
    assert d["code"]["bpp"] == pytest.approx(8 * d["code"]["bytes"] / 4096)
    assert d["reconstruction_png"].startswith("data:image/png;base64,")
    assert d["jpeg"]["image"].startswith("data:image/jpeg;base64,")
    assert 1 <= d["jpeg"]["quality"] <= 95
    assert d["jpeg"]["file_bytes"] > d["jpeg"]["payload_bytes"] > 0
    for part in (d["vae"], d["jpeg"], d["unquantised"]):
        assert set(part) >= {"psnr", "ssim", "ms_ssim"}
    assert "not counted" in d["shared_state"] and d["index"] == 1234
    other = client.get("/api/models/tiny-ae/compress", params={"index": 1234, "bits": 1}).json()
    assert other["code"]["hex"] != d["code"]["hex"]


def test_compress_an_upload_grey_and_colour(client):
    x = sprites(1, seed=21)[0]
    r = client.post("/api/models/tiny-ae/compress", files={"file": ("s.png", png(x))},
                    data={"bits": "3"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["code"]["bytes"] == math.ceil(10 * 3 / 8)  # the AE keeps all 10 latents
    assert r.json()["notes"]["format"] == "PNG"
    buf = io.BytesIO()
    Image.fromarray((rand(64, 64, 3).numpy() * 255).astype(np.uint8)).save(buf, format="PNG")
    r = client.post("/api/models/tiny-colour/compress", files={"file": ("c.png", buf.getvalue())})
    assert r.status_code == 200, r.text
    assert r.json()["kept_latents"] == [0, 2, 4, 6, 8]
    jpeg = r.json()["jpeg"]["image"].split(",", 1)[1]
    import base64

    assert Image.open(io.BytesIO(base64.b64decode(jpeg))).mode == "RGB"
    r = client.post("/api/models/tiny-cvae/compress", files={"file": ("s.png", png(x))})
    assert r.status_code == 200 and r.json()["label_name"] in ("square", "ellipse", "heart")
    assert r.json()["code"]["bits"] == 2 + len(r.json()["kept_latents"]) * 6


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"index": 1, "bits": 0}, 422, "bits"),
        ({"index": 1, "bits": 9}, 422, "bits"),
        ({"index": -1}, 422, "index"),
        ({"index": 10**7}, 422, "dSprites index must be in 0..737279, got 10000000"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(client, params, status, message):
    r = client.get("/api/models/tiny-vae/compress", params=params)
    assert r.status_code == status
    assert message in json.dumps(r.json()["detail"])


def test_unknown_models_bad_uploads_and_datasets_without_images_are_refused(client):
    r = client.get("/api/models/nope/compress", params={"index": 1})
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]
    r = client.post("/api/models/tiny-vae/compress", files={"file": ("x.png", b"hello")})
    assert r.status_code == 422 and "not an image" in r.json()["detail"]
    r = client.post("/api/models/tiny-vae/compress", files={"file": ("x.png", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    # valid requests (the other models have image 1 and a study) that this model cannot answer
    r = client.get("/api/models/tiny-colour/compress", params={"index": 1})
    assert r.status_code == 404 and "folder:pics cannot be drawn" in r.json()["detail"]
    r = client.get("/api/models/tiny-colour/rate-distortion.svg")
    assert r.status_code == 404 and "folder:pics" in r.json()["detail"]


def test_a_model_whose_card_has_no_kl_per_latent_has_no_code_to_make_a_404(client):
    buf = io.BytesIO()
    Image.fromarray((rand(64, 64, 3).numpy() * 255).astype(np.uint8)).save(buf, format="PNG")
    r = client.post("/api/models/tiny-no-kl/compress", files={"file": ("c.png", buf.getvalue())})
    assert r.status_code == 404
    assert "tiny-no-kl's card has no kl_per_dim" in r.json()["detail"]
    page = client.post("/ui/tiny-no-kl/compress", data={"source": "upload"},
                       files={"file": ("c.png", buf.getvalue())})  # fmt: skip
    assert page.status_code == 422 and "has no kl_per_dim" in page.text  # in place of a result


def test_uploads_over_the_limit_are_413(trained, tmp_path):
    shutil.copytree(trained["tiny-vae"], tmp_path / "tiny-vae")
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path, max_upload_bytes=1000))) as c:
        r = c.post("/api/models/tiny-vae/compress", files={"file": ("x.png", b"\0" * 2000)})
    assert r.status_code == 413 and "upload limit of 1,000 bytes" in r.json()["detail"]


def test_the_svg_parses_and_draws_one_line_per_series(client):
    for metric in ("psnr", "ssim", "ms_ssim"):
        r = client.get("/api/models/tiny-ae/rate-distortion.svg", params={"metric": metric})
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(r.text)
        lines = [p for p in root.iter(f"{NS}polyline") if "series" in p.get("class", "")]
        assert sorted(p.get("data-series") for p in lines) == ["jpeg-file", "jpeg-payload", "vae"]
        vae = next(p for p in lines if p.get("data-series") == "vae")
        assert len(vae.get("points").split()) == 8
        texts = "".join(root.itertext())
        assert "bits per pixel (log scale)" in texts and "VAE code" in texts and "JPEG" in texts
        assert "<style" not in r.text and " style=" not in r.text
    again = client.get("/api/models/tiny-ae/rate-distortion.svg", params={"metric": metric},
                       headers={"If-None-Match": r.headers["etag"]})  # fmt: skip
    assert again.status_code == 304
    assert client.get("/api/models/tiny-ae/rate-distortion.svg?metric=bpp").status_code == 422
    numbers = client.get("/api/models/tiny-ae/rate-distortion").json()
    assert len(numbers["vae"]) == 8 and numbers["images"] == SMALL.n_images


# --- the page -------------------------------------------------------------------------------


def no_inline_script_or_style(html: str) -> None:
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)  # no script with a body
    assert not re.search(r"\son[a-z]+=", html)


def test_the_page_shows_both_codecs_and_loads_the_study_after(client):
    r = client.get("/compress", params={"model": "tiny-ae", "index": 777, "bits": 3})
    assert r.status_code == 200, r.text
    html = r.text
    assert 'value="3" checked' in html and 'value="777"' in html
    assert "VAE code:" in html and "JPEG, quality" in html and "dSprites #777" in html
    assert 'hx-get="/ui/tiny-ae/rate-distortion" hx-trigger="load"' in html
    assert 'href="/compress">Compress</a>' in html  # in the nav
    no_inline_script_or_style(html)
    part = client.get("/ui/tiny-ae/rate-distortion", headers={"HX-Request": "true"})
    assert part.status_code == 200 and part.text.count("<svg xmlns") == 3
    assert "Where the VAE wins" in part.text and "Where JPEG wins" in part.text
    ET.fromstring(re.search(r"<svg.*?</svg>", part.text, re.S).group(0))
    no_inline_script_or_style(part.text)


def test_the_partial_swaps_in_and_puts_the_state_in_the_url(client):
    r = client.post("/ui/tiny-ae/compress", data={"source": "dataset", "index": "42",
                                                   "bits": "7"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["hx-replace-url"] == "/compress?model=tiny-ae&index=42&bits=7"
    assert "<html" not in r.text and 'id="compress-source"' in r.text
    x = sprites(1, seed=31)[0]
    r = client.post("/ui/tiny-ae/compress", data={"source": "upload", "bits": "2"},
                    files={"file": ("s.png", png(x))})  # fmt: skip
    assert r.status_code == 200 and "your upload" in r.text
    assert r.headers["hx-replace-url"] == "/compress?model=tiny-ae&bits=2"
    assert 'value="upload" hx-swap-oob="true"' in r.text
    for data, message in (
        ({"source": "dataset", "index": "1", "bits": "0"}, "bits must be in 1..8"),
        ({"source": "dataset", "index": "x", "bits": "3"}, "must be a whole number"),
        ({"source": "upload", "bits": "3"}, "choose an image file"),
    ):
        r = client.post("/ui/tiny-ae/compress", data=data)
        assert r.status_code == 422 and message in r.text and 'class="error"' in r.text


def test_the_page_of_a_model_without_dataset_images_offers_uploads_only(client):
    html = client.get("/compress", params={"model": "tiny-colour"}).text
    assert 'name="file"' in html and 'name="index"' not in html
    assert "unknown model" in client.get("/compress", params={"model": "nope"}).text
