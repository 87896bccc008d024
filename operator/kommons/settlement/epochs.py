"""Epoch windows (pure): which epochs to create and which to seal, from the clock.

Epoch 1 (or ``lastEpochId + 1`` on a contract that has commits already) starts when the hub
first runs the settlement loop; epoch N+1 starts exactly at epoch
N's end; every epoch lasts ``epoch_seconds``. The hub keeps one epoch covering "now" in phase
``Open``: at the latest when the current epoch ends it creates the next one, and after an
outage it creates the missed ones back to back (never a gap, never an overlap). An epoch is
sealed ``seal_delay_seconds`` after its end, once the agents' last reports for it are in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "MAX_CREATED_PER_STEP",
    "EpochWindow",
    "epoch_name",
    "epochs_to_create",
    "epochs_to_seal",
]

MAX_CREATED_PER_STEP = 100
"""Epochs created in one step at most (a long outage with short epochs catches up over steps)."""


@dataclass(frozen=True)
class EpochWindow:
    """An epoch's id and period, with its phase (``None`` counts as ``Open``)."""

    epoch_id: int
    start: datetime
    end: datetime
    phase: str | None = None

    @property
    def is_open(self) -> bool:
        """Usage may still change (no phase counts as ``Open``)."""
        return self.phase in (None, "Open")


def epoch_name(epoch_id: int) -> str:
    """``epoch-<id>``: the SettlementEpoch's object name (decimal, no padding)."""
    return f"epoch-{epoch_id}"


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def epochs_to_create(
    existing: Sequence[EpochWindow], now: datetime, epoch_seconds: int, *, first_id: int = 1
) -> list[EpochWindow]:
    """The epochs to create so that one covers ``now``, back to back after the last one.

    Args:
        existing: Every SettlementEpoch there is (any order).
        now: The hub's clock (timezone-aware).
        epoch_seconds: Length of a new epoch.
        first_id: Id of the very first epoch: 1 on a fresh contract, ``lastEpochId + 1`` on a
            contract that already has commits (ids only increase on chain).

    Returns:
        New windows in increasing id order (at most :data:`MAX_CREATED_PER_STEP`): none when
        the latest epoch still covers ``now``; epoch ``first_id`` starting at ``now`` (whole
        seconds) when there is none.
    """
    if epoch_seconds <= 0:
        raise ValueError(f"epoch_seconds: must be > 0, got {epoch_seconds}")
    if first_id < 1:
        raise ValueError(f"first_id: must be >= 1, got {first_id}")
    length = timedelta(seconds=epoch_seconds)
    if not existing:
        start = _whole_seconds(now)
        return [EpochWindow(first_id, start, start + length, "Open")]
    last = max(existing, key=lambda e: e.epoch_id)
    created: list[EpochWindow] = []
    while last.end <= now and len(created) < MAX_CREATED_PER_STEP:
        last = EpochWindow(last.epoch_id + 1, last.end, last.end + length, "Open")
        created.append(last)
    return created


def epochs_to_seal(
    existing: Sequence[EpochWindow],
    now: datetime,
    seal_delay_seconds: int,
    *,
    acting_since: datetime | None = None,
) -> list[int]:
    """Ids of the open epochs whose end + ``seal_delay_seconds`` has passed, in increasing order.

    ``acting_since`` is when this hub began to act (its loop's first step). The delay counts
    from it too: an epoch whose seal time passed while no hub acted waits ``seal_delay_seconds``
    more, so the reports the agents wrote meanwhile are ingested before it is frozen (else
    their ready time would arrive late, not billed).
    """
    if seal_delay_seconds < 0:
        raise ValueError(f"seal_delay_seconds: must be >= 0, got {seal_delay_seconds}")
    delay = timedelta(seconds=seal_delay_seconds)
    if acting_since is not None and acting_since + delay > now:
        return []
    return sorted(e.epoch_id for e in existing if e.is_open and e.end + delay <= now)
