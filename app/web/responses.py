"""What the routers answer images with: a PNG as a data URL inside JSON or a page, and an image
that is a pure function of (model weights, request) with an ETag and long caching."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import torch
from fastapi import Request
from fastapi.responses import Response

from app.checkpoints.served import ServedModel

PNG = {"content": {"image/png": {}}, "description": "a PNG image"}


def data_url(png: bytes) -> str:
    """PNG bytes as a `data:` URL, for an image inside JSON or an <img> on a page."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def etag_for(ckpt: ServedModel, key: tuple[Any, ...]) -> str:
    """A strong validator: the model's weight digest and everything the bytes depend on."""
    text = "|".join(
        k.numpy().tobytes().hex() if isinstance(k, torch.Tensor) else str(k) for k in key
    )
    return '"' + hashlib.sha1(f"{ckpt.digest}|{text}".encode()).hexdigest()[:20] + '"'


def cached_image(
    request: Request,
    ckpt: ServedModel,
    key: tuple[Any, ...],
    render_bytes: Callable[[], bytes],
    media_type: str = "image/png",
) -> Response:
    """An image that is a pure function of (model weights, request): ETag + long caching, and a
    304 when the browser already has it (the bytes are not even rendered then)."""
    etag = etag_for(ckpt, key)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(render_bytes(), media_type=media_type, headers=headers)
