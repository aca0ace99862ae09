"""Security headers on every response, only the hosts the server is meant to be reached by, and
the API docs served from our own /static.

The Content-Security-Policy lets a page run and style only what comes from this server: no inline
script, no inline style element, no plugin, no framing (except by the origins that
Settings.frame_ancestors names: a notebook's, for `serve` from Python). Pictures may also be
data: and blob: URLs (the pages build them from decoded PNGs). The API docs are Swagger UI from
the npm package `swagger-ui-dist`, copied to /static/vendor by `make install`, started by
/static/docs.js: the stock FastAPI page loads it from a CDN (unreachable here) and starts it with
an inline script.

A request's Host header must name this server (Settings.allowed_hosts, loopback names by
default). Otherwise a web page anywhere could point a name of its own at 127.0.0.1 once loaded
(DNS rebinding) and read the explorer through the browser of whoever runs it, as the same origin."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.quoting import quoted


def content_security_policy(frame_ancestors: tuple[str, ...] = ()) -> str:
    """The policy, framing allowed only to `frame_ancestors` (CSP sources, Settings checks them)
    beside this server itself; with none, to nobody."""
    framing = " ".join(["'self'", *frame_ancestors]) if frame_ancestors else "'none'"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {framing}",
        ]
    )


def security_headers(frame_ancestors: tuple[str, ...] = ()) -> list[tuple[bytes, bytes]]:
    """Every response's headers. X-Frame-Options (for browsers without CSP's frame-ancestors)
    can only say DENY or SAMEORIGIN, not a list of origins: sent only where nothing may frame."""
    headers = [
        (b"content-security-policy", content_security_policy(frame_ancestors).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
    return headers if frame_ancestors else [*headers, (b"x-frame-options", b"DENY")]


CONTENT_SECURITY_POLICY = content_security_policy()
HEADERS = security_headers()


class SecurityHeaders:
    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.app = app
        self.headers = HEADERS if headers is None else headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


# a Host header: a name or IPv4 address, or an IPv6 address in brackets; then perhaps a port
_HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[^\[\]:]*)(?::[0-9]*)?", re.IGNORECASE)


def host_name(header: str) -> str | None:
    """The host a Host header names, lower-cased, without its port: `[::1]:8000` → `[::1]`,
    `Example.org:443` → `example.org`; None for a header that is not a host (`a:1:2`)."""
    match = _HOST.fullmatch(header)
    return match["name"].lower() if match else None


def host_pattern(allowed: str) -> str:
    """An allowed host as host_name writes it: lower-case, a bare IPv6 address in brackets."""
    allowed = allowed.strip().lower()
    return f"[{allowed}]" if ":" in allowed and not allowed.startswith("[") else allowed


class TrustedHosts:
    """Answers only a request whose Host header names one of `allowed` (an exact host,
    "*.example.org" for its subdomains, "*" for any); any other gets 400 with the reason."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        patterns = {host_pattern(h) for h in allowed}
        self.any = "*" in patterns
        self.exact = {p for p in patterns if not p.startswith("*.")}
        self.suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))  # ".example.org"

    def trusts(self, header: str | None) -> bool:
        name = host_name(header) if header is not None else None
        if name is None:
            return self.any
        return self.any or name in self.exact or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header = Headers(scope=scope).get("host")
        if self.trusts(header):
            return await self.app(scope, receive, send)
        named = "no host" if header is None else f"host {quoted(header)}"
        detail = (
            f"this server does not answer to {named}: the host names it answers to are set by "
            "LATENT_EXPLORER_ALLOWED_HOSTS (see docs/hardening.md)"
        )
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI on /openapi.json, every file from this server."""
    templates = request.app.state.templates
    return templates.TemplateResponse(request, "docs.html", {})
