"""The few pieces every SVG renderer here builds with: plain strings, every number formatted and
every piece of text escaped here, styling in presentation attributes (the page's CSP allows no
inline style)."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr


def n(x: float) -> str:
    """A coordinate: one decimal, no trailing zeros."""
    return f"{x:.1f}".rstrip("0").rstrip(".") or "0"


def el(tag: str, attrs: Mapping[str, object], *children: str) -> str:
    a = "".join(
        f" {k}={quoteattr(n(v) if isinstance(v, float) else str(v))}"
        for k, v in attrs.items()
        if v is not None
    )
    return f"<{tag}{a}>{''.join(children)}</{tag}>" if children else f"<{tag}{a}/>"


def text(x: float, y: float, content: str, **attrs: object) -> str:
    return el("text", {"x": x, "y": y, **attrs}, escape(content))


def title(content: str) -> str:
    return f"<title>{escape(content)}</title>"
