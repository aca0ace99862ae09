"""diffusers' AutoencoderKL served with its latent kept spatial: a folder that diffusers'
`save_pretrained` wrote, loaded from the checkpoints folder; μ, log σ² and pixels through the
explorer against diffusers' own `encode().latent_dist` and `decode().sample`, scaled as its
pipelines scale them; configs with absurd sizes and weights that do not fit refused in one line
naming the file; the channel sweep's tiles equal single decodes; one built to Stable Diffusion's
published VAE config decoding a 256×256 image."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file, save_file

from app.checkpoints import CheckpointError
from app.checkpoints.diffusers_folder import load_autoencoder_kl
from app.main import create_app
from app.models.autoencoder_kl import SD_VAE_CONFIG as SD_CONFIG
from app.models.autoencoder_kl import (
    AutoencoderKLConfig,
    AutoencoderKLConfigError,
    AutoencoderKLModel,
    build_network,
)
from app.models.interface import ModelDescription
from app.settings import Settings

diffusers = pytest.importorskip("diffusers")

SMALL = {  # 16×16 images → 4 channels over 4×4 cells
    "block_out_channels": [8, 16, 16], "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3, "layers_per_block": 1, "latent_channels": 4,
    "norm_num_groups": 4, "sample_size": 16,
}  # fmt: skip
MEAN, STD, SHIFT, SCALE = [0.5, -0.2, 0.1, 0.0], [2.0, 0.5, 1.0, 4.0], 0.3, 0.7


def saved(folder: Path, seed: int = 0, **config) -> tuple[Path, object]:
    """A randomly initialised AutoencoderKL written by diffusers' own save_pretrained."""
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(**{**SMALL, **config}).eval()
    vae.save_pretrained(str(folder))
    return folder, vae


@pytest.mark.parametrize(
    "scaling",
    [{}, {"scaling_factor": SCALE, "shift_factor": SHIFT, "latents_mean": MEAN,
          "latents_std": STD}],
    ids=["sd-style", "mean-std-shift"],
)  # fmt: skip
def test_encode_and_decode_equal_diffusers_own_scaled_as_its_pipelines_scale(tmp_path, scaling):
    folder, vae = saved(tmp_path / "kl", **scaling)
    served = load_autoencoder_kl(folder)
    model = served.model
    assert served.description.latent_shape == (4, 4, 4) and served.description.latent_dim == 64
    sf = scaling.get("scaling_factor", 0.18215)
    mean = torch.tensor(scaling.get("latents_mean", [0.0] * 4)).view(1, 4, 1, 1)
    std = torch.tensor(scaling.get("latents_std", [1.0] * 4)).view(1, 4, 1, 1)
    shift = scaling.get("shift_factor", 0.0)
    torch.manual_seed(1)
    x = torch.rand(3, 3, 16, 16)
    with torch.inference_mode():
        dist = vae.encode(x * 2 - 1).latent_dist
        posterior = model.encode(x)
        # the pipelines' z: (latent − shift − mean) · scaling_factor / std
        expected = ((dist.mean - shift - mean) * sf / std).flatten(1)
        torch.testing.assert_close(posterior.mean, expected, atol=1e-5, rtol=1e-5)
        expected_logvar = (dist.logvar + 2 * torch.log(sf / std).expand_as(dist.logvar)).flatten(1)
        torch.testing.assert_close(posterior.logvar, expected_logvar, atol=1e-5, rtol=1e-5)
        z = torch.randn(3, 64)
        latents = z.view(3, 4, 4, 4) * std / sf + mean + shift
        pixels = (vae.decode(latents).sample / 2 + 0.5).clamp(0, 1)
        torch.testing.assert_close(model.decode(z), pixels, atol=1e-5, rtol=0)
        assert torch.equal(model.decode(z[1:2]), model.decode(z)[1:2])  # batch-invariant


def test_the_folder_serves_and_its_channel_sweep_tiles_are_single_decodes(tmp_path):
    folder, _ = saved(tmp_path / "checkpoints" / "kl")
    settings = Settings(checkpoints_dir=folder.parent, cache_dir=tmp_path / "cache")
    rng = np.random.default_rng(0)
    z = [round(float(v), 2) for v in rng.normal(size=64)]
    text = ",".join(f"{v:.2f}" for v in z)
    mask = "f0f0"  # cells 0-3 and 8-11 of the 4×4 grid: the first and third rows
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        info = client.get("/api/models/kl").json()
        assert info["latent_dim"] == 64 and info["latent_shape"] == [4, 4, 4]
        page = client.get("/?model=kl")
        assert page.status_code == 200 and 'data-shape="4,4,4"' in page.text
        # one set of sliders is for flat latents: a spatial model compares by image, each side
        # its own channel explorer
        compare = client.get("/compare?a=kl&b=kl", follow_redirects=False)
        assert compare.status_code == 200 and compare.text.count('data-shape="4,4,4"') == 2
        mapped = " ".join(client.get("/map?model=kl").text.split())
        assert "(its whole latent of 4 channels over 4×4 cells, flattened: 64 values)" in mapped
        strip = client.get(
            "/api/models/kl/channel-sweep.png",
            params={"z": text, "channel": 2, "mask": mask, "lo": -1, "hi": 1, "step": 0.5},
        )
        assert strip.status_code == 200
        tiles = np.asarray(Image.open(io.BytesIO(strip.content)).convert("RGB"))
        assert tiles.shape == (16, 5 * 16, 3)
        for k, t in enumerate((-1.0, -0.5, 0.0, 0.5, 1.0)):
            moved = list(z)
            for cell in (0, 1, 2, 3, 8, 9, 10, 11):  # an independent reading of "f0f0"
                moved[2 * 16 + cell] = round(moved[2 * 16 + cell] + t, 2)
            single = client.get(
                "/api/models/kl/decode.png", params={"z": ",".join(f"{v:.2f}" for v in moved)}
            )
            one = np.asarray(Image.open(io.BytesIO(single.content)).convert("RGB"))
            assert np.array_equal(tiles[:, 16 * k : 16 * (k + 1)], one), k
        assert not np.array_equal(tiles[:, :16], tiles[:, -16:])  # the channel changes the image
        grid = client.get("/api/models/kl/channel-traverse.png", params={"z": text})
        assert grid.status_code == 200
        assert Image.open(io.BytesIO(grid.content)).size == (7 * 18 + 2, 4 * 18 + 2)
        for params, status, words in (
            ({"z": text, "channel": 4}, 404, "has 4 latent channels: no channel 4"),
            ({"z": text, "channel": 0, "mask": "f"}, 422, "mask must be 4 hexadecimal digits"),
        ):
            r = client.get("/api/models/kl/channel-sweep.png", params=params)
            assert r.status_code == status and words in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"block_out_channels": [4096]}, "each of block_out_channels must be in 1..1,024"),
        ({"layers_per_block": 100}, "layers_per_block must be in 1..4"),
        ({"latent_channels": 10**6}, "latent_channels must be in 1..64"),
        ({"sample_size": 10**9}, "sample_size must be in 4..512"),
        ({"sample_size": 18}, "sample_size 18 is not a multiple of 4"),
        ({"block_out_channels": [8, 16, 18]}, "18 is not a multiple of norm_num_groups 4"),
        ({"down_block_types": ["AttnDownEncoderBlock2D"] * 3}, "down_block_types must be 3 ×"),
        ({"_class_name": "UNet2DModel"}, "_class_name is 'UNet2DModel', not 'AutoencoderKL'"),
        ({"latents_std": [1.0, 1.0]}, "latents_std must give one value per latent channel (4)"),
        ({"in_channels": 4}, "in_channels and out_channels must both be 1 or both be 3"),
        ({"blocks": 3}, "unknown fields: blocks"),
        ({"scaling_factor": "0.18"}, "scaling_factor must be a finite number"),
        ({"block_out_channels": [1024] * 6, "layers_per_block": 4, "norm_num_groups": 32,
          "down_block_types": ["DownEncoderBlock2D"] * 6,
          "up_block_types": ["UpDecoderBlock2D"] * 6, "sample_size": 512},
         "parameters; the limit is 268,435,456"),
    ],
)  # fmt: skip
def test_a_config_with_absurd_sizes_is_refused_before_building_naming_the_file(
    tmp_path, change, words, monkeypatch
):
    folder, _ = saved(tmp_path / "kl")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    built = []
    real = diffusers.AutoencoderKL.__init__

    def counting(self, *a, **k):  # noqa: ANN001, ANN202
        built.append(torch.empty(0).device.type)  # the device it is built on
        real(self, *a, **k)

    monkeypatch.setattr(diffusers.AutoencoderKL, "__init__", counting)
    with pytest.raises(CheckpointError, match="config.json") as caught:
        load_autoencoder_kl(folder)
    message = str(caught.value)
    assert words in message and str(folder) in message and "\n" not in message
    assert all(device == "meta" for device in built)  # at most counted, never allocated


def test_weights_that_do_not_fit_the_config_are_refused_naming_the_tensor(tmp_path):
    folder, _ = saved(tmp_path / "kl")
    weights = folder / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors["encoder.extra.weight"] = torch.zeros(2)
    del tensors[first]
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError) as caught:
        load_autoencoder_kl(folder)
    message = str(caught.value)
    assert (
        f"missing {first}" in message and "not in config.json's network: encoder.extra" in message
    )
    tensors = load_file(str(weights))
    key = "decoder.conv_out.weight"
    tensors[key] = torch.zeros(3, 16, 3, 2)
    tensors[first] = torch.zeros(1)
    del tensors["encoder.extra.weight"]
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=r"decoder\.conv_out\.weight is \(3, 16, 3, 2\) but"):
        load_autoencoder_kl(folder)


def test_float16_weights_widen_exactly(tmp_path):
    folder, vae = saved(tmp_path / "kl")
    weights = folder / "diffusion_pytorch_model.safetensors"
    half = {k: v.half() for k, v in load_file(str(weights)).items()}
    save_file(half, str(weights))
    network = load_autoencoder_kl(folder).model.network
    for key, value in network.state_dict().items():
        assert torch.equal(value, half[key].float()), key


def test_a_stable_diffusion_shaped_vae_decodes_a_256_image():
    """SD's published VAE config, random weights: 83.7 M parameters built and one 256×256 image
    decoded from a 4×32×32 latent (bench/autoencoder_kl_speed.py times it)."""
    config = AutoencoderKLConfig.from_json(SD_CONFIG)
    torch.manual_seed(0)
    network = build_network(config).eval()
    assert sum(p.numel() for p in network.parameters()) == 83_653_863
    shape = config.latent_shape(256)
    description = ModelDescription(latent_dim=math.prod(shape), channels=3, height=256,
                                   width=256, latent_shape=shape)  # fmt: skip
    model = AutoencoderKLModel(network, config, description)
    z = torch.randn(1, 4 * 32 * 32)
    with torch.inference_mode():
        image = model.decode(z)
        expected = (network.decode(z.view(1, 4, 32, 32) / 0.18215).sample / 2 + 0.5).clamp(0, 1)
    assert image.shape == (1, 3, 256, 256)
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_config_limits_hold_for_the_published_sd_config():
    config = AutoencoderKLConfig.from_json(SD_CONFIG)
    assert config.downsampling == 8 and config.latent_shape(512) == (4, 64, 64)
    with pytest.raises(AutoencoderKLConfigError, match="norm_num_groups"):
        AutoencoderKLConfig.from_json(SD_CONFIG | {"norm_num_groups": 48})


def test_an_autoencoder_kl_object_is_served_from_python_as_its_folder_is(tmp_path):
    from latent_explorer import serve

    torch.manual_seed(3)
    vae = diffusers.AutoencoderKL(**SMALL).train()
    z = np.round(np.random.default_rng(1).normal(size=64), 2)
    with torch.inference_mode():
        latents = torch.tensor(z, dtype=torch.float32).view(1, 4, 4, 4) / 0.18215
        expected = (vae.eval().decode(latents).sample / 2 + 0.5).clamp(0, 1)[0]
    vae.train()
    with serve(models={"from-python": vae}) as explorer:
        import httpx

        info = httpx.get(f"{explorer.url}api/models/from-python", timeout=30).json()
        assert info["latent_shape"] == [4, 4, 4]
        r = httpx.get(f"{explorer.url}api/models/from-python/decode.png",
                      params={"z": ",".join(f"{v:.2f}" for v in z)}, timeout=30)  # fmt: skip
        shown = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), dtype=np.float64)
        np.testing.assert_allclose(
            shown / 255, expected.permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6
        )  # an 8-bit PNG of the same pixels
    assert vae.training  # the caller's model left as it was


def test_compare_with_the_shipped_autoencoder_kl_is_by_image_and_says_why(tmp_path):
    import html

    settings = Settings(cache_dir=tmp_path / "cache")  # the shipped checkpoints
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        page = client.get("/compare?a=shapes-autoencoder-kl&b=dsprites-beta-vae")
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert ("shapes-autoencoder-kl's latent is 4 channels over 8×8 cells, not one slider per "
                "latent: one z cannot drive both") in text  # fmt: skip
        assert 'data-model="dsprites-beta-vae"' in text
        assert 'data-model="shapes-autoencoder-kl"' in text and 'data-shape="4,8,8"' in text


def test_train_kl_writes_a_folder_diffusers_loads_and_the_explorer_serves(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "checkpoints" / "tiny-kl"
    argv = ["train-kl", "--out", str(out), "--steps", "3", "--images", "16", "--batch-size", "4",
            "--eval-images", "8", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "held-out −ELBO" in capsys.readouterr().out
    assert main(argv) == 2  # never replaces a folder
    assert "exists: refusing to replace it" in capsys.readouterr().err
    vae = diffusers.AutoencoderKL.from_pretrained(str(out))  # diffusers' own loader
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 3 and card["segments"][0]["to_step"] == 3
    assert card["command"].startswith(f"latent-explorer train-kl --out {out} --steps 3")
    assert card["eval"]["eval_images"] == 8 and len(card["kl_per_dim"]) == 4 * 8 * 8
    # the scaling factor: one over the std of μ over (up to 1,024 of) the training scenes
    from app.data.shapes3d import ProceduralShapes3D

    images = ProceduralShapes3D().sample(np.random.default_rng(0), 16).images
    x = torch.from_numpy(images).float() / 255
    with torch.inference_mode():
        mean = vae.encode(x * 2 - 1).latent_dist.mean
    assert vae.config.scaling_factor == pytest.approx(1 / float(mean.std()), rel=1e-4)
    assert (out / "README.md").read_text().startswith("---\nlibrary_name: diffusers")
    served = load_autoencoder_kl(out)
    assert served.description.latent_shape == (4, 8, 8) and served.card.dataset == "shapes3d"
