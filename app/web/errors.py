"""Errors are types; this is the one place that maps them to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.imaging import ImageInputError
from app.inference import InferenceError


class NotFoundError(LookupError):
    """An unknown model or resource."""


class UploadTooLargeError(ValueError):
    """An upload over the size limit."""


_STATUS: dict[type[Exception], int] = {
    NotFoundError: 404,
    UploadTooLargeError: 413,
    ImageInputError: 422,
    InferenceError: 422,
}


def install(app: FastAPI) -> None:
    for exc_type, status in _STATUS.items():

        async def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)
