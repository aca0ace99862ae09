"""What `latent-explorer data check` says of a set: what would be served (name, source, images,
columns, splits) and everything wrong with it: the problems found while listing, and every
image that cannot be decoded. Every image is decoded, one at a time (a drawn built-in's
737,280 are drawn by one renderer from their factors, so a seeded sample says as much)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from app.data.sets.builtin import DrawnSet
from app.data.sets.record import ColumnSummary, ImageSet, ImageUnreadable, Problem, SetSummary

DRAWN_SAMPLE = 1_000  # images of a drawn built-in decoded where no limit is given
MAX_LISTED = 20  # problems and unreadable images listed, each; the rest are counted
COMMON_SIZES = 5  # image sizes named; the rest are counted
MAX_CATEGORIES = 10  # a categorical column's categories named

T = TypeVar("T", str, tuple[int, int])
Progress = Callable[[Iterable[int], int], Iterable[int]]  # (indices, how many) → the same


@dataclass(frozen=True)
class CheckReport:
    summary: SetSummary
    checked: int  # images decoded (all, or a seeded sample)
    sample: str  # how the decoded images were chosen, where not all were ("seed 0; …")
    sizes: Counter[tuple[int, int]]  # (width, height) → images
    modes: Counter[str]  # PIL mode as stored → images
    unreadable: int
    unreadable_listed: tuple[str, ...]  # the first MAX_LISTED, each "where: why"
    problems: tuple[Problem, ...]


def check_set(
    images: ImageSet, limit: int | None = None, seed: int = 0, progress: Progress | None = None
) -> CheckReport:
    """Decode every image of `images` (or a seeded sample of `limit`; a drawn built-in's
    DRAWN_SAMPLE where no limit is given), one at a time, counting sizes, modes and the images
    that cannot be decoded. Never raises for an image."""
    n = len(images)
    why = "the limit asked for"
    if limit is None and isinstance(images, DrawnSet):
        limit = DRAWN_SAMPLE
        why = "every image is drawn by the same renderer from its factors"
    sample = ""
    indices = np.arange(n)
    if limit is not None and limit < n:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(n, size=limit, replace=False))
        sample = f"seed {seed}; {why}"
    order: Iterable[int] = indices.tolist()
    if progress is not None:
        order = progress(order, len(indices))
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    unreadable: list[str] = []
    count = 0
    for index in order:
        try:
            width, height, mode = images.inspect(index)
        except ImageUnreadable as e:
            count += 1
            if len(unreadable) < MAX_LISTED:
                unreadable.append(str(e))
            continue
        sizes[(width, height)] += 1
        modes[mode] += 1
    return CheckReport(
        summary=images.summary(),
        checked=len(indices),
        sample=sample,
        sizes=sizes,
        modes=modes,
        unreadable=count,
        unreadable_listed=tuple(unreadable),
        problems=images.problems,
    )


def report_text(report: CheckReport) -> str:
    """The report as `data check` prints it, one fact a line."""
    s = report.summary
    lines = [
        f"name        {s.name}",
        f"source      {s.source}",
        f"location    {s.location}",
        f"images      {s.n_images:,}",
    ]
    read = report.checked - report.unreadable
    lines.append(
        f"decoded     {report.checked:,} of {s.n_images:,}: {read:,} read, "
        f"{report.unreadable:,} cannot be decoded"
    )
    if report.sample:
        lines.append(f"sample      {report.sample}")
    sizes = _commonest(report.sizes)
    common = [f"{w}×{h} {c:,}" for (w, h), c in sizes[:COMMON_SIZES]]
    rest = sizes[COMMON_SIZES:]
    if rest:
        common.append(f"{len(rest):,} other sizes {sum(c for _, c in rest):,}")
    lines.append(f"sizes       {', '.join(common) or 'none read'}")
    modes = [f"{m} {c:,}" for m, c in _commonest(report.modes)]
    lines.append(f"modes       {', '.join(modes) or 'none read'}")
    splits = [f"{name} {c:,}" for name, c in s.splits.items()]
    lines.append(f"splits      {', '.join(splits) or 'none'}")
    lines.append(f"columns     {len(s.columns)}")
    width = max((len(c.name) for c in s.columns), default=0)
    lines += [f"  {c.name:<{width}}  {_column_text(c)}" for c in s.columns]
    lines.append(f"problems    {len(report.problems):,}")
    lines += _listed([str(p) for p in report.problems], len(report.problems))
    lines.append(f"unreadable  {report.unreadable:,}")
    lines += _listed(list(report.unreadable_listed), report.unreadable)
    return "\n".join(lines)


def _commonest(counts: Counter[T]) -> list[tuple[T, int]]:
    """Most images first; a tie in order of the key (4×4 before 8×6), whatever the images' order."""
    return sorted(counts.items(), key=lambda kc: (-kc[1], kc[0]))


def _column_text(c: ColumnSummary) -> str:
    if c.kind == "categorical":
        named = [f"{n} {k:,}" for n, k in zip(c.categories, c.counts, strict=True)]
        values = ", ".join(named[:MAX_CATEGORIES])
        if len(named) > MAX_CATEGORIES:
            values += f", and {len(named) - MAX_CATEGORIES:,} more categories"
        values = f"{len(c.categories):,} categories: {values}"
    elif c.low is None or c.high is None:
        values = "no values"
    else:
        values = f"{c.low:g} to {c.high:g}, {c.distinct:,} distinct"
    return f"{c.kind:<11}  {c.role:<9}  {values}; {c.missing:,} missing"


def _listed(items: list[str], total: int) -> list[str]:
    lines = [f"  {item}" for item in items[:MAX_LISTED]]
    if total > len(lines):
        lines.append(f"  and {total - len(lines):,} more")
    return lines
