"""Whole-second time: datetimes ↔ Unix seconds, and sums over piecewise-constant timelines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

Span = tuple[int, int]
"""A half-open interval ``[start, end)`` in Unix seconds."""


def seconds(when: datetime) -> int:
    """Unix seconds of ``when``, rounded down (a naive datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() // 1)


def instant(unix: int) -> datetime:
    """The UTC datetime of Unix second ``unix``."""
    return datetime.fromtimestamp(unix, UTC)


def clip(spans: Iterable[Span], low: int, high: int) -> list[Span]:
    """Each span cut to ``[low, high)``; empty results dropped."""
    out = []
    for start, end in spans:
        a, b = max(start, low), min(end, high)
        if b > a:
            out.append((a, b))
    return out


def subtract(spans: Iterable[Span], holes: Sequence[Span]) -> list[Span]:
    """``spans`` minus every hole (both half-open)."""
    out = list(spans)
    for h_start, h_end in holes:
        nxt: list[Span] = []
        for start, end in out:
            if h_end <= start or h_start >= end:
                nxt.append((start, end))
                continue
            if start < h_start:
                nxt.append((start, h_start))
            if h_end < end:
                nxt.append((h_end, end))
        out = nxt
    return out


def capped_overlap(spans: Sequence[Span], cap: int, window: Span) -> int:
    """Replica-seconds in ``window`` with at most ``cap`` spans counted at any instant.

    Args:
        spans: Ready spans of every pod of a placement (they may overlap: one per pod).
        cap: The most replicas billed at once (the placement's ``spec.replicas``).
        window: ``[start, end)`` to count in.
    """
    edges: dict[int, int] = {}
    for start, end in clip(spans, *window):
        edges[start] = edges.get(start, 0) + 1
        edges[end] = edges.get(end, 0) - 1
    total, running, last = 0, 0, None
    for at in sorted(edges):
        if last is not None:
            total += min(running, cap) * (at - last)
        running += edges[at]
        last = at
    return total
