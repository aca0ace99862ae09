"""How long the compression view's work takes for one checkpoint, on one torch thread as the
server runs it (app/main.py): one compress request (the code, its decoding, the JPEG search
over qualities 1..95, the three metrics for both, the JSON with its data URLs), its pieces, and
the rate–distortion study behind the plot (64 images, k = 1..8, 8 JPEG qualities), cold and
from the cache. Each figure is wall time and the process's CPU time (what it costs alone on one
core when other work shares the machine). Then the study's numbers, as the notes quote them.

    python bench/compress_speed.py [checkpoints/dsprites-beta-vae] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from fastapi.testclient import TestClient

from app.checkpoints import load_checkpoint
from app.main import create_app
from app.settings import Settings
from app.studies import compression


def timed(label: str, fn: Callable[[], Any], repeats: int = 1) -> Any:
    """Median wall and CPU time over `repeats` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    unit, scale = ("ms", 1e3) if wall < 1 else ("s", 1.0)
    print(f"{label:58s} {wall * scale:8.1f} {unit} wall {cpu * scale:8.1f} {unit} CPU"
          f"{f'  (median of {repeats})' if repeats > 1 else ''}")  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", default="checkpoints/dsprites-beta-vae")
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"{args.checkpoint}: {os.cpu_count()} cores, 1 torch thread, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    ckpt = load_checkpoint(args.checkpoint)
    print(f"weights {ckpt.digest[:12]}, trained {ckpt.card.steps} steps")
    x, labels = compression.study_images(ckpt.config, 1, 123)
    label = None if labels is None else int(labels[0])
    image = x[0]
    codec = compression.codec_for(ckpt)
    print(f"code: {len(codec.kept)} latents kept of {codec.latent_dim}, "
          f"{codec.n_bytes(6)} bytes at k = 6")  # fmt: skip
    n = args.repeats
    timed("compress one image, k = 6 (everything but HTTP)",
          lambda: compression.compress_image(ckpt, image, 6, label), n)  # fmt: skip
    timed("  of which: JPEG closest-size search (95 encodes)",
          lambda: compression.jpeg_closest(image, 3), n)  # fmt: skip
    timed("  of which: metrics, 3 pairs",
          lambda: compression.quality(image[None].repeat(3, 1, 1, 1),
                                      image[None].repeat(3, 1, 1, 1).flip(-1)), n)  # fmt: skip
    app = create_app(Settings(checkpoints_dir=ckpt.path.parent))
    with TestClient(app, base_url="http://localhost") as client:
        url = f"/api/models/{ckpt.name}/compress"
        client.get(url, params={"index": 1, "bits": 6})  # warm-up
        timed("GET /api/models/NAME/compress (in-process HTTP)",
              lambda: client.get(url, params={"index": 1, "bits": 6}), n)  # fmt: skip

    compression.clear_cache()
    rd = timed("rate–distortion study, 64 images, cold",
               lambda: compression.rate_distortion(ckpt))  # fmt: skip
    timed("rate–distortion study, from the cache", lambda: compression.rate_distortion(ckpt), n)

    per_byte = rd.pixels / 8
    print(f"\n{rd.model}: mean over {rd.study.n_images} {rd.dataset} images, seed "
          f"{rd.study.seed}; kept latents {list(rd.kept)}")  # fmt: skip
    print(f"{'codec':22s}{'setting':>8s}{'bytes':>8s}{'bpp':>8s}{'PSNR':>8s}{'SSIM':>7s}"
          f"{'MS-SSIM':>9s}")  # fmt: skip
    rows = [("VAE code", "k=", rd.vae), ("JPEG whole file", "q=", rd.jpeg_file),
            ("JPEG payload", "q=", rd.jpeg_payload)]  # fmt: skip
    for name, key, points in [*rows, ("VAE from μ", "float32", [rd.unquantised])]:
        for pt in points:
            setting = key + str(pt.setting) if key.endswith("=") else key
            print(f"{name:22s}{setting:>8s}{pt.bpp * per_byte:8.1f}"
                  f"{pt.bpp:8.4f}{pt.psnr:8.2f}{pt.ssim:7.3f}{pt.ms_ssim:9.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
