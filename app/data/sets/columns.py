"""A table's raw values (text from a CSV, JSON values from a .jsonl or a saved dataset) → typed
columns. A column's kind is what its record says, else what its values are:

    true/false only                       categorical ("false", "true")
    integers, at most 20 distinct values  categorical (codes in numeric order): class numbers
    other numbers                         ordered
    text (or numbers mixed with text)     categorical; a mix is reported as a problem

A generating factor is a column the set's record lists under "factors"; every other column is an
attribute.
"""

from __future__ import annotations

import math

import numpy as np

from app.data.sets.record import Column, ColumnKind, ColumnRole, Problem
from app.data.sets.record_file import ColumnRecord, SetRecord

RawColumn = list[object]  # one value per image; None or "" where the image has none
MAX_CLASS_CODES = 20  # integer columns with at most this many values are read as classes


def typed_columns(
    raw: dict[str, RawColumn], record: SetRecord, problems: list[Problem]
) -> tuple[Column, ...]:
    columns = []
    for name, values in raw.items():
        column = _typed(name, values, record.columns.get(name), name in record.factors, problems)
        if column is not None:
            columns.append(column)
    have = {c.name for c in columns}
    for name in record.factors:
        if name not in have:
            problems.append(Problem("dataset.json", f"factor {name!r} is not a column of the set"))
    for name in record.columns:
        if name not in raw:
            problems.append(Problem("dataset.json", f"column {name!r} is not in the table"))
    return tuple(columns)


def _typed(
    name: str,
    values: RawColumn,
    declared: ColumnRecord | None,
    factor: bool,
    problems: list[Problem],
) -> Column | None:
    role: ColumnRole = "factor" if factor else "attribute"
    if any(isinstance(v, list | dict) for v in values):
        problems.append(Problem(f"column {name!r}", "holds lists or objects: left out"))
        return None
    present = [v for v in values if v is not None and v != ""]
    kind: ColumnKind
    if declared is not None:
        kind = declared.kind
    elif present and all(_is_bool(v) for v in present):
        return _categorical(
            name, role, values, ("false", "true"), lambda v: _bool_text(v), problems
        )
    else:
        numbers = [_number(v) for v in present]
        if present and all(n is not None for n in numbers):
            whole = all(float(n).is_integer() for n in numbers if n is not None)
            distinct = sorted({n for n in numbers if n is not None})
            if whole and len(distinct) <= MAX_CLASS_CODES:
                cats = tuple(_number_text(n) for n in distinct)
                return _categorical(name, role, values, cats, _number_key, problems)
            kind = "ordered"
        else:
            kind = "categorical"
            if any(n is not None for n in numbers):
                problems.append(
                    Problem(
                        f"column {name!r}",
                        "mixes numbers and text: read as "
                        "categories (a dataset.json can say otherwise)",
                    )
                )
    if kind == "ordered":
        out = np.full(len(values), np.nan)
        bad = 0
        for i, v in enumerate(values):
            if v is None or v == "":
                continue
            n = _number(v)
            if n is None or not math.isfinite(n):
                bad += 1
            else:
                out[i] = n
        if bad:
            problems.append(
                Problem(f"column {name!r}", f"{bad:,} values are not numbers: treated as missing")
            )
        return Column(name, "ordered", role, out)
    if declared is not None and declared.categories:
        cats = declared.categories
        by_name = {c: i for i, c in enumerate(cats)}

        def code(v: object) -> str:
            n = _number(v)
            if n is not None and float(n).is_integer() and 0 <= n < len(cats):
                return cats[int(n)]  # a code
            return str(v)

        return _categorical(name, role, values, cats, code, problems, known=by_name)
    numbers = [_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        # declared categorical, numbers in the table: in numeric order, "1" and "1.0" one class
        distinct = sorted({n for n in numbers if n is not None})
        return _categorical(
            name, role, values, tuple(_number_text(n) for n in distinct), _number_key, problems
        )
    cats = tuple(sorted({str(v) for v in present}))
    return _categorical(name, role, values, cats, str, problems)


def _categorical(
    name: str,
    role: str,
    values: RawColumn,
    categories: tuple[str, ...],
    key: object,
    problems: list[Problem],
    known: dict[str, int] | None = None,
) -> Column:
    index = known if known is not None else {c: i for i, c in enumerate(categories)}
    codes = np.full(len(values), -1, dtype=np.int64)
    bad = 0
    for i, v in enumerate(values):
        if v is None or v == "":
            continue
        c = index.get(key(v))  # type: ignore[operator]
        if c is None:
            bad += 1
        else:
            codes[i] = c
    if bad:
        problems.append(
            Problem(
                f"column {name!r}",
                f"{bad:,} values are none of its "
                f"categories ({', '.join(categories[:10])}): treated as missing",
            )
        )
    return Column(name, "categorical", role, codes, categories)  # type: ignore[arg-type]


def _is_bool(v: object) -> bool:
    return isinstance(v, bool) or (isinstance(v, str) and v.lower() in ("true", "false"))


def _bool_text(v: object) -> str:
    return str(v).lower()


def _number(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _number_text(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else f"{n:g}"


def _number_key(v: object) -> str:
    n = _number(v)
    return _number_text(n) if n is not None else str(v)
