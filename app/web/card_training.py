"""How a model was trained, as rows its page shows (/models/{name}): one row per training
segment (a start or a resumption) with its device, torch version, wall time and commands, the
totals per device, and the page's first sentence.

The card arrives typed and checked (app.checkpoints.card); what stays here is how the shapes
cards have had over time read on a page: those written before runs kept segments have none (one
row then covers the whole run, its device "not recorded" where the run was resumed), segments
written before the torch version was kept lack it, and a segment a repair could not split by
command lists several.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.checkpoints.card import ModelCard, Segment

UNRECORDED = "not recorded"  # as the training side writes a device it did not see


@dataclass(frozen=True)
class SegmentRow:
    """One start or resumption of the run (or several on one device a record cannot split)."""

    from_step: int
    to_step: int
    device: str
    torch: str
    wall_time_s: float | None
    commands: list[str]
    note: str | None = None

    @property
    def steps(self) -> int:
        return self.to_step - self.from_step

    @property
    def wall(self) -> str:
        return duration(self.wall_time_s)


@dataclass
class DeviceTotal:
    """The segments on one device, summed: wall time over those that recorded it."""

    device: str
    steps: int = 0
    segments: int = 0
    wall_time_s: float = 0.0
    unrecorded_walls: int = 0  # segments on this device whose wall time was not recorded

    @property
    def wall(self) -> str:
        known = self.segments - self.unrecorded_walls
        if known == 0:
            return UNRECORDED
        text = duration(self.wall_time_s)
        if self.unrecorded_walls:
            n = self.unrecorded_walls
            text += f" + {n} segment{'s' if n > 1 else ''} {UNRECORDED}"
        return text


def duration(seconds: float | None) -> str:
    """3.2 → "3 s", 857.3 → "14 min", 5636.1 → "1 h 34 min"; None → "not recorded"."""
    if seconds is None:
        return UNRECORDED
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def device_label(device: str | None) -> str:
    """The device as recorded, with cards written before the grammar was fixed ("1 threads")
    read as they should."""
    if not device:
        return UNRECORDED
    return re.sub(r"\b1 (core|thread)s\b", r"1 \1", device)


def _row(s: Segment, torch: str | None) -> SegmentRow:
    return SegmentRow(
        from_step=s.from_step, to_step=s.to_step, device=device_label(s.device),
        torch=s.torch or torch or UNRECORDED, wall_time_s=s.wall_time_s,
        commands=s.all_commands, note=s.note,
    )  # fmt: skip


def segment_rows(card: ModelCard) -> list[SegmentRow]:
    """The card's segments; for a card written before segments were kept, one row for the whole
    run, its device and torch version known only where one command made every step."""
    if card.segments:
        last = len(card.segments) - 1  # the card's own "torch" is its last segment's
        return [_row(s, card.torch if i == last else None) for i, s in enumerate(card.segments)]
    if card.steps is None:
        return []
    commands = card.all_commands
    one_run = len(commands) <= 1
    note = None
    if not one_run and card.device:
        note = (f"the card records only where its last command ran: {device_label(card.device)}"
                + (f", torch {card.torch}" if card.torch else ""))  # fmt: skip
    return [SegmentRow(
        from_step=0, to_step=card.steps,
        device=device_label(card.device) if one_run else UNRECORDED,
        torch=(card.torch or UNRECORDED) if one_run else UNRECORDED,
        wall_time_s=card.wall_time_s, commands=commands, note=note,
    )]  # fmt: skip


def device_totals(rows: list[SegmentRow]) -> list[DeviceTotal]:
    """Steps and wall time per device, in the order the devices were first used."""
    totals: dict[str, DeviceTotal] = {}
    for r in rows:
        t = totals.setdefault(r.device, DeviceTotal(r.device))
        t.steps += r.steps
        t.segments += 1
        if r.wall_time_s is None:
            t.unrecorded_walls += 1
        else:
            t.wall_time_s += r.wall_time_s
    return list(totals.values())


def lead(card: ModelCard, totals: list[DeviceTotal]) -> str | None:
    """The page's first sentence: "Trained 5,000 steps × 64 in 40 min: 1,500 steps on cpu (…),
    3,500 on cuda (…)", steps summed per device."""
    if card.steps is None:
        return None
    out = f"Trained {card.steps:,} steps"
    if card.batch_size:
        out += f" × {card.batch_size}"
    if card.wall_time_s is not None:
        out += f" in {card.wall_time_s / 60:.0f} min"
    where = [
        f"{t.steps:,}{' steps' if i == 0 else ''} on "
        + ("a device not recorded" if t.device == UNRECORDED else t.device)
        for i, t in enumerate(totals)
    ]
    return out + (": " + ", ".join(where) if where else "")
