"""Concurrent decode requests share forward passes, and batching never changes a byte."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from fastapi.testclient import TestClient

from app.checkpoints import load_checkpoint
from app.inference import decode_latents, prepare_for_serving
from app.main import create_app
from app.models.vae import overlap_add_conv_transpose
from app.settings import Settings


def test_decoding_is_batch_invariant_bit_for_bit(trained):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server runs it (Settings.torch_threads)
    try:
        ckpt = prepare_for_serving(
            load_checkpoint(trained["tiny-cvae"]).served()
        )  # as the registry does
        z = torch.randn(40, 10, generator=torch.Generator().manual_seed(0))
        solo = torch.cat([decode_latents(ckpt, z[i : i + 1], 1) for i in range(40)])
        for size in (2, 7, 16, 40):
            parts = [decode_latents(ckpt, z[i : i + size], 1) for i in range(0, 40, size)]
            assert torch.equal(torch.cat(parts), solo), size
    finally:
        torch.set_num_threads(threads)


def test_the_serving_path_computes_the_same_decoder_as_training(trained):
    """Serving swaps the last transposed convolution for a product + overlap-add (faster on CPU,
    batch-invariant): the same function, to float rounding, on grey and colour outputs."""
    for name in ("tiny-vae", "tiny-cvae"):
        model = load_checkpoint(trained[name]).model
        z = torch.randn(9, 10, generator=torch.Generator().manual_seed(1))
        labels = torch.arange(9) % 3 if name == "tiny-cvae" else None
        with torch.inference_mode():
            plain = model.decode(z, labels)
            served = model.decode(z, labels, batch_invariant=True)
        assert served.shape == plain.shape == (9, 1, 64, 64)
        assert plain.std() > 0.1  # a real picture, not a constant
        torch.testing.assert_close(served, plain, rtol=1e-4, atol=1e-4)
    layer = torch.nn.ConvTranspose2d(8, 3, 4, 2, 1)  # a colour decoder's last layer
    x = torch.randn(5, 8, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(overlap_add_conv_transpose(x, layer), layer(x))


def test_concurrent_requests_share_forward_passes_and_get_their_own_bytes(
    trained, tmp_path, monkeypatch
):
    shutil.copytree(trained["tiny-vae"], tmp_path / "m")
    zs = [
        ",".join(f"{v:.2f}" for v in row) for row in np.random.default_rng(0).normal(size=(32, 10))
    ]
    with TestClient(create_app(Settings(checkpoints_dir=tmp_path))) as client:
        solo = [client.get("/api/models/m/decode.png", params={"z": z}).content for z in zs]
        batcher = client.app.state.batcher
        before = batcher.forward_passes

        # hold the first forward pass until all 32 requests have arrived, so the other 31
        # must queue behind it and go together
        all_arrived = threading.Event()
        arrivals = 0
        decode_png, run = batcher.decode_png, batcher._run

        async def counting(*args):
            nonlocal arrivals
            arrivals += 1
            if arrivals == len(zs):
                all_arrived.set()
            return await decode_png(*args)

        def gated(batch):
            assert all_arrived.wait(30)
            return run(batch)

        monkeypatch.setattr(batcher, "decode_png", counting)
        monkeypatch.setattr(batcher, "_run", gated)
        with ThreadPoolExecutor(len(zs)) as pool:
            responses = list(
                pool.map(lambda z: client.get("/api/models/m/decode.png", params={"z": z}), zs)
            )
    assert [r.status_code for r in responses] == [200] * len(zs)
    assert [r.content for r in responses] == solo  # each its own image, byte for byte
    assert batcher.forward_passes - before == 2  # the first alone, then the 31 that queued
