"""A lease's ledger: ``status.usage`` per (epoch, placement) and ``status.cost`` (pure).

- **SET, never add.** Each step recomputes, from the placements' checkpoints as the hub
  accepts them (:mod:`kommons.metering.acceptance`), the replica-seconds of every ``Open`` epoch
  and *sets* the entry ``(epochId, placementUid)``: replaying a report, or a restarted hub
  planning again, writes the same value.
- **Only Open epochs change.** An entry of a ``Sealed`` (or later) epoch is frozen; time a late
  report adds to a ``Sealed`` or ``Submitted`` one is not billed, only counted (``late``). Once
  an epoch is settled its entries are folded away, so nothing is compared with them any more.
  An epoch starting before a checkpoint's ``completeSince`` is not recomputed from it (some of
  its intervals were pruned).
- **Amounts.** ``amount = prorate(price per replica-hour, readySeconds)``: rounded down once,
  on the entry's cumulative seconds.
- **Fold on confirm.** Entries of a ``Confirmed`` epoch move into ``cost.settled`` and are
  dropped in the same write; ``cost.accrued = settled + Σ remaining amounts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from kommons.api import LeaseCost, LeaseUsage
from kommons.api.epoch import EpochPhase
from kommons.api.placement import PlacementMetering
from kommons.metering.acceptance import (
    EpochWindow,
    Facts,
    accepted_by_epoch,
    complete_from,
    last_accepted,
)
from kommons.metering.timeline import instant, seconds
from kommons.money import format_units, parse_units, prorate

SETTLED_PHASES: frozenset[EpochPhase] = frozenset({"Confirmed", "Failed"})
"""Phases after which an epoch's usage no longer holds a deleted lease."""


@dataclass(frozen=True)
class Epoch:
    """A SettlementEpoch as the ledger needs it (an epoch without a phase is ``Open``)."""

    window: EpochWindow
    phase: EpochPhase


@dataclass(frozen=True)
class Report:
    """One placement's checkpoint with what the hub knows of it."""

    placement_uid: str
    provider: str
    billing_account: str
    price: int
    """Locked price per replica-hour in base units (``spec.pricePerHour``)."""
    metering: PlacementMetering
    facts: Facts


@dataclass(frozen=True)
class Ledger:
    """The usage and cost to write, and what was not billed because it came late."""

    usage: list[LeaseUsage]
    cost: LeaseCost
    late: dict[tuple[int, str], int]
    """(epochId, placementUid) → replica-seconds reported for a Sealed or Submitted epoch
    beyond what its entry holds (not billed)."""

    @property
    def late_seconds(self) -> int:
        """All the late replica-seconds."""
        return sum(self.late.values())


def _key(entry: LeaseUsage) -> tuple[int, str]:
    return entry.epoch_id, entry.placement_uid


def ledger(
    usage: Sequence[LeaseUsage] | None,
    cost: LeaseCost | None,
    reports: Sequence[Report],
    epochs: Mapping[int, Epoch],
) -> Ledger:
    """The lease's new usage and cost.

    Args:
        usage: ``status.usage`` as stored.
        cost: ``status.cost`` as stored.
        reports: The lease's placements that carry a checkpoint (deleting ones included).
        epochs: Every known SettlementEpoch by ``spec.epochId``.
    """
    entries = {_key(e): e for e in usage or ()}
    late: dict[tuple[int, str], int] = {}
    last = seconds(cost.last_metered_at) if cost and cost.last_metered_at else None
    for report in reports:
        windows = [e.window for e in epochs.values()]
        by_epoch = accepted_by_epoch(report.metering, report.facts, windows)
        complete = complete_from(report.metering)
        for epoch_id, ready in by_epoch.items():
            epoch = epochs[epoch_id]
            key = (epoch_id, report.placement_uid)
            stored = entries.get(key)
            if epoch.phase != "Open":
                extra = ready - (stored.ready_seconds if stored else 0)
                if epoch.phase not in SETTLED_PHASES and extra > 0:
                    late[key] = extra
                continue
            if epoch.window.start < complete:
                continue  # pruned intervals: this epoch keeps what it was given
            if ready == 0:
                entries.pop(key, None)
                continue
            entries[key] = LeaseUsage(
                epoch_id=epoch_id,
                provider=report.provider,
                placement_uid=report.placement_uid,
                billing_account=report.billing_account,
                ready_seconds=ready,
                amount=format_units(prorate(report.price, ready)),
            )
        end = last_accepted(report.metering, report.facts)
        if end is not None and epochs:
            last = end if last is None else max(last, end)
    settled = parse_units(cost.settled) if cost and cost.settled else 0
    kept: list[LeaseUsage] = []
    for key in sorted(entries):
        entry = entries[key]
        known = epochs.get(entry.epoch_id)
        if known is not None and known.phase == "Confirmed":
            settled += parse_units(entry.amount)
        else:
            kept.append(entry)
    accrued = settled + sum(parse_units(e.amount) for e in kept)
    new_cost = LeaseCost(
        accrued=format_units(accrued),
        settled=format_units(settled) if settled or (cost and cost.settled) else None,
        last_metered_at=instant(last) if last is not None else None,
    )
    return Ledger(kept, new_cost, late)


def awaiting_settlement(
    usage: Sequence[LeaseUsage] | None, epochs: Mapping[int, Epoch]
) -> list[int]:
    """Epochs the lease has usage in that are not Confirmed or Failed yet (sorted).

    An epoch the hub does not know (its object deleted) holds nothing.
    """
    waiting = {
        e.epoch_id
        for e in usage or ()
        if e.epoch_id in epochs and epochs[e.epoch_id].phase not in SETTLED_PHASES
    }
    return sorted(waiting)


def epoch_of(*, epoch_id: int, start: datetime, end: datetime, phase: EpochPhase | None) -> Epoch:
    """An :class:`Epoch` from a SettlementEpoch's fields (no phase = ``Open``)."""
    return Epoch(EpochWindow(epoch_id, seconds(start), seconds(end)), phase or "Open")
