"""Errors are types; this is the one place that maps them to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def document_errors(app: FastAPI) -> None:
    """The schema says what 422 bodies really hold: FastAPI's own validation errors (a list) or
    one of ours (a sentence naming the problem)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if error is not None:
                listed = {k: v for k, v in error["properties"]["detail"].items() if k != "title"}
                error["properties"]["detail"] = {
                    "title": "Detail",
                    "anyOf": [{"type": "string"}, listed],
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI, max_upload_bytes: int) -> None:
    for exc_type, status in _STATUS.items():

        async def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)
    document_errors(app)
    app.add_middleware(
        BodyLimit,
        max_body=max_upload_bytes + MULTIPART_SLACK,
        detail=f"request body is larger than the upload limit of {max_upload_bytes:,} bytes",
    )
