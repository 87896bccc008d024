"""Providers' reputation: what the hub itself observed, scored by a formula you can check by hand.

Inputs (never anything a provider wrote about itself):

- **Uptime.** On every health tick the hub adds the seconds since its previous tick to the
  provider's *reachable* seconds ``R`` when the last heartbeat the hub saw is within the
  heartbeat timeout, to its *unreachable* seconds ``U`` when it is older, and to neither before
  the hub has seen any heartbeat. Times are the hub's monotonic clock. Both decay by half every
  ``half_life_seconds`` (default one day), so old observations weigh less.
- **Placements ended.** The endings (``kommons.hub.plan.PlacementEnding``) of the plans the
  executor wrote, for deletions that succeeded: ``Completed`` → ``C``, ``Failed`` → ``F``,
  ``FailedOver`` → ``O``. Each placement counts once (by uid), however often a step is retried.
  Counts never decay.

The formula (``docs/reputation.md`` has a worked example)::

    uptime  = (R + P) / (R + U + P)                  P = uptime_prior_seconds (1 h)
    success = (C + a) / (C + F + O + a + b)          a = 9, b = 1 (a Beta(9, 1) prior)
    score   = uptime * success

A new provider scores ``1 * 9/10 = 0.9``; one failure takes it to ``9/11 ≈ 0.82``, ten
completed placements to ``19/20 = 0.95``.

:class:`ReputationBook` keeps one :class:`ReputationRecord` per provider in memory (restored
from ``Provider.status.reputation`` when the hub starts) and says when a record is worth
writing: at most every ``write_seconds`` per provider, and only when a count changed, the
score or uptime moved by ``change`` or more, or the written record is ``refresh_seconds`` old.
It reads no clock and does no I/O: every time is an argument.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from kommons.api import Reputation

if TYPE_CHECKING:  # plan imports views, which imports this module
    from kommons.hub.plan import PlacementEnding, PlacementEndKind

PRIOR_SUCCESSES = 9
"""``a``: completed placements every provider is credited with."""
PRIOR_FAILURES = 1
"""``b``: failed placements every provider is charged with, so a provider nobody has seen
work yet is not at 1.0."""
NEUTRAL_SCORE = PRIOR_SUCCESSES / (PRIOR_SUCCESSES + PRIOR_FAILURES)
"""The score of a provider the hub has observed nothing of yet: 0.9."""


@dataclass(frozen=True)
class ReputationSettings:
    """How reputation is computed and how often it is written."""

    half_life_seconds: float = 86400.0
    """Observed seconds lose half their weight every this many seconds."""
    uptime_prior_seconds: float = 3600.0
    """Reachable seconds every provider is credited with (never decays): a new provider's
    first outage does not sink it."""
    write_seconds: float = 30.0
    """A provider's record is written at most this often."""
    refresh_seconds: float = 600.0
    """A record whose values did not move is still written this often (bounds the observed
    seconds a hub crash loses)."""
    change: float = 0.005
    """A move of score or uptime ratio by at least this much is worth a write."""
    dedupe_seconds: float = 600.0
    """How long a counted placement uid is remembered so a retried step does not count it
    again (a deleted placement leaves the hub's view within seconds)."""

    def __post_init__(self) -> None:
        """Refuse settings that would make the formula meaningless."""
        for name in ("half_life_seconds", "write_seconds", "refresh_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ReputationSettings.{name} must be > 0")
        for name in ("uptime_prior_seconds", "change", "dedupe_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"ReputationSettings.{name} must be >= 0")


@dataclass(frozen=True)
class ReputationRecord:
    """What the hub observed of one provider."""

    reachable_seconds: float = 0.0
    """``R``: decayed seconds with a fresh heartbeat."""
    unreachable_seconds: float = 0.0
    """``U``: decayed seconds with an expired heartbeat."""
    completed: int = 0
    """``C``: placements that ended normally."""
    failed: int = 0
    """``F``: placements whose workload failed on the provider."""
    failovers: int = 0
    """``O``: placements moved away from the provider."""


# --- the pure part: record -> record, record -> score --------------------------------------


def decayed(
    record: ReputationRecord, seconds: float, settings: ReputationSettings
) -> ReputationRecord:
    """The record ``seconds`` later: observed seconds weigh ``2 ** (-seconds / half_life)``."""
    if seconds <= 0:
        return record
    factor = 2.0 ** (-seconds / settings.half_life_seconds)
    return replace(
        record,
        reachable_seconds=record.reachable_seconds * factor,
        unreachable_seconds=record.unreachable_seconds * factor,
    )


def observed(
    record: ReputationRecord,
    seconds: float,
    reachable: bool | None,
    settings: ReputationSettings,
) -> ReputationRecord:
    """Add ``seconds`` of observation (``None``: not observed) after decaying the past."""
    seconds = max(0.0, seconds)
    record = decayed(record, seconds, settings)
    if reachable is None:
        return record
    if reachable:
        return replace(record, reachable_seconds=record.reachable_seconds + seconds)
    return replace(record, unreachable_seconds=record.unreachable_seconds + seconds)


def ended(record: ReputationRecord, kind: PlacementEndKind) -> ReputationRecord:
    """Count one placement that ended."""
    if kind == "Completed":
        return replace(record, completed=record.completed + 1)
    if kind == "Failed":
        return replace(record, failed=record.failed + 1)
    return replace(record, failovers=record.failovers + 1)


def reachable(heartbeat_age: float | None, *, timeout: float) -> bool | None:
    """Whether the hub counts the provider reachable (``None``: not observed).

    Reachable when its last heartbeat, as the hub saw it (``None`` if never), is at most
    ``timeout`` seconds old: the same rule as the provider's phase.
    """
    return None if heartbeat_age is None else heartbeat_age <= timeout


def uptime_ratio(record: ReputationRecord, settings: ReputationSettings) -> float:
    """``(R + P) / (R + U + P)``; 1.0 when nothing was observed and there is no prior."""
    up = record.reachable_seconds + settings.uptime_prior_seconds
    total = up + record.unreachable_seconds
    return 1.0 if total <= 0 else up / total


def success_ratio(record: ReputationRecord) -> float:
    """``(C + a) / (C + F + O + a + b)``, ``a`` and ``b`` being the priors above."""
    good = record.completed + PRIOR_SUCCESSES
    return good / (good + record.failed + record.failovers + PRIOR_FAILURES)


def score(record: ReputationRecord, settings: ReputationSettings) -> float:
    """``uptime * success``, in [0, 1]."""
    return min(1.0, max(0.0, uptime_ratio(record, settings) * success_ratio(record)))


def reputation(record: ReputationRecord, settings: ReputationSettings, now: datetime) -> Reputation:
    """The record as ``Provider.status.reputation`` (ratios to 4 decimals, whole seconds)."""
    return Reputation(
        score=round(score(record, settings), 4),
        uptime_ratio=round(uptime_ratio(record, settings), 4),
        completed_leases=record.completed,
        failed_leases=record.failed,
        failovers=record.failovers,
        reachable_seconds=round(record.reachable_seconds),
        unreachable_seconds=round(record.unreachable_seconds),
        updated_at=now.replace(microsecond=0),
    )


def record_from_status(
    stored: Reputation | None, *, now: datetime, settings: ReputationSettings
) -> ReputationRecord:
    """The record a (re)started hub continues from: what it wrote last, decayed to ``now``.

    The time the hub was away is not observed (neither reachable nor unreachable), it only
    ages what was observed before.
    """
    if stored is None:
        return ReputationRecord()
    record = ReputationRecord(
        reachable_seconds=float(stored.reachable_seconds),
        unreachable_seconds=float(stored.unreachable_seconds),
        completed=stored.completed_leases,
        failed=stored.failed_leases,
        failovers=stored.failovers,
    )
    if stored.updated_at is None:
        return record
    return decayed(record, (now - stored.updated_at).total_seconds(), settings)


def worth_writing(old: Reputation | None, new: Reputation, *, change: float) -> bool:
    """Whether ``new`` differs from what was written in a way readers care about."""
    if old is None:
        return True
    return (
        (old.completed_leases, old.failed_leases, old.failovers)
        != (new.completed_leases, new.failed_leases, new.failovers)
        or abs(old.score - new.score) >= change
        or abs(old.uptime_ratio - new.uptime_ratio) >= change
    )


# --- the hub's memory -------------------------------------------------------------------------


@dataclass
class _Written:
    at: float
    """Hub monotonic time of the write (or of the restore)."""
    value: Reputation | None


class ReputationBook:
    """Every provider's record, as the hub accumulates it between writes (no I/O, no clock).

    Size: one record, one tick time and one written value per provider, plus the placement
    uids counted in the last ``dedupe_seconds``.
    """

    def __init__(self, settings: ReputationSettings | None = None) -> None:
        self.settings = settings or ReputationSettings()
        self._records: dict[str, ReputationRecord] = {}
        self._ticked: dict[str, float] = {}
        self._written: dict[str, _Written] = {}
        self._counted: OrderedDict[str, float] = OrderedDict()
        """Placement uid → hub monotonic time it was counted (oldest first)."""

    def knows(self, provider: str) -> bool:
        """Whether the provider's record was restored or started."""
        return provider in self._records

    def record(self, provider: str) -> ReputationRecord:
        """The provider's record (empty if unknown)."""
        return self._records.get(provider, ReputationRecord())

    def restore(
        self, provider: str, stored: Reputation | None, *, now: datetime, at: float
    ) -> None:
        """Start a provider from its stored record; no-op when the book knows it already.

        Args:
            provider: The provider's name.
            stored: Its ``status.reputation`` as the hub's last write left it.
            now: The hub's wall clock.
            at: The hub's monotonic clock.
        """
        if provider in self._records:
            return
        self._records[provider] = record_from_status(stored, now=now, settings=self.settings)
        # As if written just long enough ago that a record worth rewriting (say, the settings
        # changed) goes at once, and one that is not waits for the refresh like any other.
        since = at - self.settings.write_seconds if stored is not None else -math.inf
        self._written[provider] = _Written(since, stored)

    def tick(
        self, provider: str, heartbeat_age: float | None, *, timeout: float, at: float
    ) -> None:
        """Observe the provider from the previous tick to ``at`` (the first tick starts it)."""
        last = self._ticked.get(provider)
        self._ticked[provider] = at
        if last is None:
            return
        self._records[provider] = observed(
            self.record(provider),
            at - last,
            reachable(heartbeat_age, timeout=timeout),
            self.settings,
        )

    def end(
        self, endings: Iterable[PlacementEnding], deleted: Iterable[str], *, at: float
    ) -> set[str]:
        """Count the endings of placements whose deletion succeeded (``deleted`` uids).

        An ending without a uid, of a placement not deleted, or counted already is ignored.

        Returns:
            The providers whose record changed.
        """
        self._forget_counted(at)
        gone = set(deleted)
        changed: set[str] = set()
        for ending in endings:
            uid = ending.placement_uid
            if uid is None or uid not in gone or uid in self._counted:
                continue
            self._counted[uid] = at
            self._records[ending.provider] = ended(self.record(ending.provider), ending.kind)
            changed.add(ending.provider)
        return changed

    def _forget_counted(self, at: float) -> None:
        horizon = at - self.settings.dedupe_seconds
        while self._counted:
            uid, counted_at = next(iter(self._counted.items()))
            if counted_at >= horizon:
                break
            del self._counted[uid]

    def reputation(self, provider: str, now: datetime) -> Reputation:
        """The provider's record as ``status.reputation``."""
        return reputation(self.record(provider), self.settings, now)

    def due(self, provider: str, *, now: datetime, at: float) -> Reputation | None:
        """The record to write now, or ``None`` when the last write is recent or still good."""
        written = self._written.get(provider, _Written(-math.inf, None))
        if at - written.at < self.settings.write_seconds:
            return None
        current = self.reputation(provider, now)
        if at - written.at >= self.settings.refresh_seconds or worth_writing(
            written.value, current, change=self.settings.change
        ):
            return current
        return None

    def written(self, provider: str, value: Reputation, *, at: float) -> None:
        """The hub wrote ``value`` at ``at``."""
        self._written[provider] = _Written(at, value)

    def forget(self, provider: str) -> None:
        """A provider was deleted."""
        self._records.pop(provider, None)
        self._ticked.pop(provider, None)
        self._written.pop(provider, None)


__all__ = [
    "NEUTRAL_SCORE",
    "PRIOR_FAILURES",
    "PRIOR_SUCCESSES",
    "ReputationBook",
    "ReputationRecord",
    "ReputationSettings",
    "decayed",
    "ended",
    "observed",
    "reachable",
    "record_from_status",
    "reputation",
    "score",
    "success_ratio",
    "uptime_ratio",
    "worth_writing",
]
