"""The floor of this stack: a one-route FastAPI app that serves the same decoder with nothing
else (no registry, no validation beyond float parsing, no ETag). bench/api_latency.py compares
our decode route against it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from app.checkpoints import load_checkpoint

MODEL = load_checkpoint(Path(os.environ.get("BARE_MODEL", "checkpoints/dsprites-beta-vae"))).model
app = FastAPI()


@app.get("/decode.png")
def decode(z: str) -> Response:
    with torch.inference_mode():
        x = torch.sigmoid(MODEL.decode(torch.tensor([[float(v) for v in z.split(",")]])))
    arr = x[0, 0].mul(255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return Response(buf.getvalue(), media_type="image/png")


if __name__ == "__main__":  # python bench/bare_app.py PORT WORKERS: served exactly as ours is
    import sys

    from app.server import run_uvicorn

    sys.exit(run_uvicorn("bench.bare_app:app", "127.0.0.1", int(sys.argv[1]), int(sys.argv[2]),
                         log_level="warning"))  # fmt: skip
