"""A client's text quoted back in a message, cut to a bounded length: an unknown model name or a
refused latent name may be 100,000 characters long, and an error that repeated it whole would be
that much larger than anything it says (and would flood a terminal or a log)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# characters of a client's text shown: enough to recognise any name this project accepts
# (latent names are at most 40 characters; the shipped model names at most 22)
MAX_QUOTED = 60


def quoted(text: str, limit: int = MAX_QUOTED) -> str:
    """`text` as repr() quotes it, cut after `limit` characters with "…": `'aaaa…'`."""
    return repr(text) if len(text) <= limit else repr(text[:limit] + "…")


# --- a record's first wrong field, in one line (a card, a data set's record) -----------------

_EXPECTED = {
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "missing": "is missing",
    "greater_than_equal": "must not be negative",
}


def first_problem(e: ValidationError, record: str) -> str:
    """A pydantic ValidationError as one line naming the first wrong field ("metrics.scores.mig.
    mean: must be a number, got 'high' (and 2 more fields)"); `record` names the whole where the
    error has no field ("card")."""
    errors = e.errors()
    first = errors[0]
    # a union's alternatives each report: name the field once, by the first alternative
    loc = [str(p) for p in first["loc"] if not (isinstance(p, str) and p[:1].isupper())]
    where = ".".join(p if not p.isdigit() else f"[{p}]" for p in loc).replace(".[", "[")
    what = _EXPECTED.get(first["type"], first["msg"])
    got = "" if first["type"] == "missing" else f", got {_shown(first.get('input'))}"
    fields = {tuple(err["loc"][:1]) for err in errors}
    n = len(fields) - 1
    more = f" (and {n} more field{'s' if n > 1 else ''})" if n else ""
    return f"{where or record}: {what}{got}{more}"


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listed(names: list[str], most: int = 5) -> str:
    """The first `most` names, and how many more: "a, b, c and 4 more"."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
