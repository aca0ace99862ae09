"""Reading an uploaded image, the one way every route does (encode, compress, denoise,
interpolate): at most the upload limit read (a 413 naming it past that), then checked and
decoded by app.imaging.load_upload into the image the model sees, fitted first, where asked,
to the form of the model's data (app.photo_fit: a Fashion-MNIST or MNIST photo)."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from fastapi import File, Form, UploadFile

from app import imaging
from app.checkpoints.served import ServedModel
from app.photo_fit import form_of
from app.settings import Settings
from app.web.errors import UploadTooLargeError

# the `x-...` key is a marker that app/web/openapi.py turns into the accepted formats and size
ImageFile = Annotated[
    UploadFile,
    File(
        description="a PNG or JPEG image (GIF, WebP and BMP too)",
        json_schema_extra={"x-image": True},
    ),
]
FitField = Annotated[
    bool,
    Form(
        description="fit the photo to the form of the model's data (Fashion-MNIST, MNIST: grey, "
        "object bright on black, cropped, centred) before encoding; ignored for other datasets"
    ),
]


async def upload_bytes(file: UploadFile, settings: Settings, what: str = "file") -> bytes:
    """The uploaded file's bytes, reading one byte past the upload limit at most: an
    UploadTooLargeError (413) naming the limit where it is over."""
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLargeError(
            f"{what} is larger than the upload limit of {settings.max_upload_bytes:,} bytes"
        )
    return data


def upload_image(
    model: ServedModel, data: bytes, settings: Settings, fit: bool
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Uploaded bytes → the (C, H, W) image the model sees (an ImageInputError, 422, naming
    what is wrong with them), with `fit` fitted to the form of the model's data, and what an
    answer says of it: `fitted`, and `notes` (load_upload's; `notes.fit` lists the fitting's
    steps)."""
    cfg = model.description
    form = form_of(cfg.dataset) if fit else None
    x, notes = imaging.load_upload(
        data, cfg.image_size, cfg.channels, settings.max_upload_pixels, form
    )
    fitted = bool(notes.pop("fitted", False))
    return x, {"fitted": fitted, "notes": notes}


async def read_upload(
    model: ServedModel, settings: Settings, file: UploadFile, fit: bool
) -> tuple[torch.Tensor, dict[str, Any]]:
    """upload_bytes, then upload_image."""
    return upload_image(model, await upload_bytes(file, settings), settings, fit)
