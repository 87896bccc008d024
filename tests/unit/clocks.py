"""A hand-moved monotonic clock for the hub's market view (shared by the unit tests)."""

from __future__ import annotations

import pytest

from kommons.hub.market_view import MarketView


class Clock:
    """The hub's monotonic clock, moved by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_market_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace ``MarketView.monotonic`` with a :class:`Clock` for one test; return it."""
    fake = Clock()
    monkeypatch.setattr(MarketView, "monotonic", staticmethod(fake))
    return fake
