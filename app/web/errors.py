"""Errors are types; this is the one place that maps them to HTTP status codes, and the one place
that says, for /openapi.json, which statuses a route can answer and with what body.

The line between 422 and 404 is the schema's: a request the schema calls invalid (a malformed or
out-of-range value for every served model) is a 422; a request it calls valid that the named model
cannot answer (an unknown model, a class or dataset image the model does not have, a latent value
past its own range, Figure 2 of a model not trained on dSprites) is that model's 404."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.imaging import ImageInputError
from app.inference import InferenceError
from app.studies.compression import LatentUsageUnknown
from app.studies.set_encodings import NoClassesInSet


class NotFoundError(LookupError):
    """An unknown model or resource."""


class NotInModelError(NotFoundError, InferenceError):
    """A valid request the named model cannot answer: a class, a dataset image or a latent value
    it does not have. A 404; still an InferenceError, so a page that shows the message in place
    of a result (and catches InferenceError) shows this one too."""


class DataUnavailableError(InferenceError):
    """A dataset the request needs is not installed on the server (Fashion-MNIST's test
    images): a 503 that says how to install it. Still an InferenceError, so a page shows the
    message in place of a result; the model itself still serves."""


class UploadTooLargeError(ValueError):
    """An upload over the size limit."""


_STATUS: dict[type[Exception], int] = {
    NotFoundError: 404,
    LatentUsageUnknown: 404,
    NoClassesInSet: 404,  # the schema cannot know a data set's columns
    UploadTooLargeError: 413,
    DataUnavailableError: 503,
    ImageInputError: 422,
    InferenceError: 422,
}


class ErrorBody(BaseModel):
    """Every error this API answers with, 4xx: what is wrong, in a sentence."""

    detail: str = Field(description="what is wrong and, where it helps, what would be right")


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description, **extra}


# the `responses=` of routes, for /openapi.json (app/web/openapi.py adds 404 to every route that
# names a model, and 400 and 413 to every route with a body)
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {
    404: _error(
        "Not Found: an unknown model, or something valid that the named model does not have "
        "(a class, a dataset image, a latent value past its own range, Figure 2 of a model "
        "not trained on dSprites)"
    )
}
BAD_BODY: Responses = {
    400: _error("Bad Request: the body could not be parsed (malformed JSON or multipart)")
}
TOO_LARGE: Responses = {413: _error("Content Too Large: the body is over the upload limit")}
DATA_UNAVAILABLE: Responses = {
    503: _error(
        "Service Unavailable: the model's dataset images are not installed on the server "
        "(the detail says how to install them)"
    )
}
NOT_MODIFIED: Responses = {
    304: {"description": "Not Modified: If-None-Match named this response's ETag"}
}


# room for the multipart framing and the small form fields around an upload of the full size
MULTIPART_SLACK = 64 * 1024


class BodyTooLargeError(HTTPException):
    """Raised from inside `receive`: FastAPI passes HTTPExceptions through its body parsing."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodyLimit:
    """Refuse a request body over `max_body` bytes as it streams in: at once when its declared
    Content-Length is over, else as soon as the bytes received pass it. Nothing is read whole into
    memory or a temporary file first, and the client hears 413 with the limit named."""

    def __init__(self, app: ASGIApp, max_body: int, detail: str) -> None:
        self.app, self.max_body, self.detail = app, max_body, detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            response = JSONResponse({"detail": self.detail}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError(self.detail)
            return message

        await self.app(scope, limited, send)


# the order RFC 9110 lists them in, for a stable Allow header
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route would answer at the request's path: each is tried against the
    routes as the router itself matches them. Starlette's own 405 names only the methods of
    the first route that matched the path, though several routes may share it (GET and POST
    /api/models/{name}/encode are two routes)."""
    routes = [r for r in app.router.routes if not isinstance(r, Mount)]  # /static: its own
    return [
        method
        for method in METHODS
        if any(r.matches({**scope, "method": method})[0] is Match.FULL for r in routes)
    ]


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # a path no route of ours matches (a static file) keeps the Allow its own app gave
    allow = ", ".join(allowed_methods(request.app, request.scope)) or (exc.headers or {}).get(
        "Allow", ""
    )
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})


def install(app: FastAPI, max_upload_bytes: int) -> None:
    for exc_type, status in _STATUS.items():

        async def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)
    app.add_exception_handler(405, method_not_allowed)
    app.add_middleware(
        BodyLimit,
        max_body=max_upload_bytes + MULTIPART_SLACK,
        detail=f"request body is larger than the upload limit of {max_upload_bytes:,} bytes",
    )
