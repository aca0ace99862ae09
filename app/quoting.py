"""A client's text quoted back in a message, cut to a bounded length: an unknown model name or a
refused latent name may be 100,000 characters long, and an error that repeated it whole would be
that much larger than anything it says (and would flood a terminal or a log)."""

from __future__ import annotations

# characters of a client's text shown: enough to recognise any name this project accepts
# (latent names are at most 40 characters; the shipped model names at most 22)
MAX_QUOTED = 60


def quoted(text: str, limit: int = MAX_QUOTED) -> str:
    """`text` as repr() quotes it, cut after `limit` characters with "…": `'aaaa…'`."""
    return repr(text) if len(text) <= limit else repr(text[:limit] + "…")
