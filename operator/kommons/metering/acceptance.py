"""What the hub accepts of a placement's metering checkpoint, and its split by epoch (pure).

The provider writes the checkpoint, so the hub does not trust it: it keeps of each pod's ready
intervals only the time the hub itself observed as billable (:class:`Facts`):

- the placement's lifetime: from its creation to its deletion (a superseded placement is
  deleted when its replacement is created, so a replica is never billed on two providers);
- the provider's reachability: nothing inside a hub-recorded outage window (from the last
  heartbeat the hub saw to the next one), nothing after the start of an ongoing one;
- never beyond the hub's clock when it reads the report, nor beyond the report's own
  ``observedAt`` for an interval still open;
- at most ``spec.replicas`` pods at any instant.

:func:`accepted_by_epoch` then counts replica-seconds per epoch window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kommons.api.placement import PlacementMetering
from kommons.metering.timeline import Span, capped_overlap, clip, seconds, subtract

FOREVER = 1 << 62


@dataclass(frozen=True)
class Facts:
    """What the hub observed around one placement (Unix seconds, the hub's clock)."""

    created: int
    """The placement's ``creationTimestamp``."""
    deleted: int | None
    """Its ``deletionTimestamp``, if it is being deleted."""
    replicas: int
    """``spec.replicas``: the most pods billed at once."""
    outages: Sequence[tuple[int, int | None]]
    """The provider's outage windows ``(start, end)``; ``end`` is ``None`` while ongoing."""
    received: int
    """The hub's clock now: nothing later is accepted."""


def pod_spans(metering: PlacementMetering) -> list[Span]:
    """Every pod's ready spans as the agent reports them (open ones end at ``observedAt``)."""
    observed = seconds(metering.observed_at)
    spans: list[Span] = []
    for pod in metering.pods or ():
        spans += [(seconds(i.start), seconds(i.end)) for i in pod.intervals or ()]
        if pod.ready_since is not None:
            spans.append((seconds(pod.ready_since), observed))
    return [(a, b) for a, b in spans if b > a]


def billable(facts: Facts) -> tuple[Span, list[Span]]:
    """The hub-observed bounds: the lifetime window and the holes (outages) in it."""
    end = facts.received if facts.deleted is None else min(facts.deleted, facts.received)
    holes = [(start, FOREVER if stop is None else stop) for start, stop in facts.outages]
    return (facts.created, end), holes


def accepted_spans(metering: PlacementMetering, facts: Facts) -> list[Span]:
    """The reported spans the hub accepts (not yet capped at ``replicas``)."""
    window, holes = billable(facts)
    return subtract(clip(pod_spans(metering), *window), holes)


@dataclass(frozen=True)
class EpochWindow:
    """A settlement epoch's window ``[start, end)`` in Unix seconds."""

    epoch_id: int
    start: int
    end: int


def accepted_by_epoch(
    metering: PlacementMetering, facts: Facts, epochs: Sequence[EpochWindow]
) -> dict[int, int]:
    """Accepted replica-seconds of the placement in each epoch (every epoch listed)."""
    spans = accepted_spans(metering, facts)
    if not spans:
        return {e.epoch_id: 0 for e in epochs}
    low, high = min(a for a, _ in spans), max(b for _, b in spans)
    return {
        e.epoch_id: capped_overlap(spans, facts.replicas, (e.start, e.end))
        if e.end > low and e.start < high
        else 0
        for e in epochs
    }


def complete_from(metering: PlacementMetering) -> int:
    """From when on the checkpoint lists every interval (pruned ones end before it)."""
    return seconds(metering.complete_since) if metering.complete_since else 0


def last_accepted(metering: PlacementMetering, facts: Facts) -> int | None:
    """The end of the last accepted span (``cost.lastMeteredAt``), if any."""
    spans = accepted_spans(metering, facts)
    return max((b for _, b in spans), default=None)
