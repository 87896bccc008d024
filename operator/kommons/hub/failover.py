"""Failover and fencing decisions for one lease (pure: no I/O, the clock is an argument).

:func:`kommons.hub.plan.plan_lease` asks this module three things:

- **What must move** (:func:`moves`): a live placement on a provider the hub sees
  ``Unreachable`` (kind ``FailedOver``), or one whose replicas have not been ready for
  ``replace_after`` seconds with a provider-caused reason, i.e. not one of
  :data:`~kommons.hub.lease_status.TENANT_REASONS` (kind ``Replaced``). Its replicas are then
  scheduled elsewhere like any stale placement: the replacement is written first, the old
  placement is deleted (superseded) only then, and never when no replacement could be made.
- **Where not to go** (:func:`avoided`): providers the lease's ``status.history`` says it was
  moved off because they never got replicas ready (``Replaced``): the history is the durable
  memory, so a restarted hub avoids them too. Providers that still hold a deleting
  placement of the lease are avoided as well (the placement name is taken there).
- **Which fencing token** (:func:`token_base`): every placement written gets
  ``spec.fencingToken`` strictly above every token the lease ever had (``status.lastFencingToken``
  and every observed placement's), so an agent can tell a superseded workload from the current
  one.

The fencing invariant (``docs/failover.md``): a lease's *live* placements (not deleting) are
the only ones that count as serving it, and their replicas sum to at most ``spec.replicas``.
A superseded placement is deleted in the same step as its replacement is created, after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kommons.api import (
    HISTORY_LIMIT,
    ComputeLease,
    LeaseHistoryEntry,
    LeasePlacement,
    get_condition,
)
from kommons.hub.lease_status import AGENT_READY, TENANT_REASONS

MoveKind = Literal["FailedOver", "Replaced"]
RELOCATED = "Relocated"
"""Lease condition type: ``True`` once replicas were moved off a provider by failover; its
reason (``FailedOver`` or ``Replaced``), message and ``lastTransitionTime`` tell the last
move."""


@dataclass(frozen=True)
class Move:
    """A placement whose replicas must be re-placed on other providers."""

    placement: LeasePlacement
    kind: MoveKind
    """``FailedOver``: the provider is Unreachable; ``Replaced``: its replicas never became
    ready for a provider-side reason."""
    reason: str
    """CamelCase cause: ``ProviderUnreachable`` or the provider's own reason
    (``PodsUnschedulable``, ``WorkloadMissing``, ``NotReported`` ...)."""
    message: str

    @property
    def provider(self) -> str:
        """The provider the replicas leave."""
        return self.placement.spec.provider


def _ready(placement: LeasePlacement) -> int:
    status = placement.status
    return min(placement.spec.replicas, (status.ready_replicas or 0) if status else 0)


def _not_ready_cause(placement: LeasePlacement) -> tuple[str, str, datetime | None]:
    """The provider's reason and message for missing replicas, and since when (if said)."""
    status = placement.status
    if status is None:
        return "NotReported", "the provider has not reported the placement", None
    condition = get_condition(status.conditions, AGENT_READY)
    if condition is not None and condition.status != "True":
        return condition.reason, condition.message, condition.last_transition_time
    return "ReplicasNotReady", status.message or f"phase {status.phase or 'unknown'}", None


def stuck_since(placement: LeasePlacement) -> datetime | None:
    """Since when a placement's replicas count as not ready (``None``: ready, or unknown).

    The later of the placement's creation and the agent's ``Ready=False`` transition: a
    placement that ran and then lost replicas gets the full ``replace_after`` again.
    """
    if placement.spec.suspend or placement.spec.replicas == 0:
        return None
    if _ready(placement) >= placement.spec.replicas:
        return None
    created = placement.metadata.creation_timestamp
    since = [t for t in (created, _not_ready_cause(placement)[2]) if t is not None]
    return max(since) if since else None


def moves(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    *,
    unreachable: Mapping[str, str],
    now: datetime,
    replace_after: float,
) -> dict[str, Move]:
    """The live placements of ``lease`` that must move, by provider.

    Args:
        lease: The lease (a suspended lease moves nothing: no replica runs).
        placements: Its live placements.
        unreachable: Providers the hub sees ``Unreachable`` → why (``no heartbeat for 31s``).
        now: The hub's clock.
        replace_after: Seconds replicas may stay not ready, for a provider-side reason,
            before they are re-placed elsewhere.
    """
    if lease.spec.suspend:
        return {}
    out: dict[str, Move] = {}
    for placement in placements:
        provider = placement.spec.provider
        if provider in unreachable:
            out[provider] = Move(
                placement,
                "FailedOver",
                "ProviderUnreachable",
                f"provider {provider} is Unreachable: {unreachable[provider]}",
            )
            continue
        since = stuck_since(placement)
        if since is None:
            continue
        reason, message, _ = _not_ready_cause(placement)
        waited = (now - since).total_seconds()
        if reason in TENANT_REASONS or waited < replace_after:
            continue
        ready = _ready(placement)
        out[provider] = Move(
            placement,
            "Replaced",
            reason,
            f"{ready}/{placement.spec.replicas} replica(s) on {provider} not ready after"
            f" {waited:.0f}s ({reason}): {message}",
        )
    return out


def recheck_after(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    *,
    now: datetime,
    replace_after: float,
) -> float | None:
    """Seconds until the next placement of ``lease`` would be due for re-placement, if any."""
    if lease.spec.suspend:
        return None
    waits = []
    for placement in placements:
        since = stuck_since(placement)
        if since is None or _not_ready_cause(placement)[0] in TENANT_REASONS:
            continue
        left = replace_after - (now - since).total_seconds()
        if left > 0:
            waits.append(left)
    return min(waits) if waits else None


def avoided(lease: ComputeLease, placements: Iterable[LeasePlacement]) -> frozenset[str]:
    """Providers this lease must not be placed on now.

    Those its history says never got its replicas ready (``Replaced``), and those still
    holding a deleting (superseded) placement of it.
    """
    history = lease.status.history if lease.status else None
    bad = {e.provider for e in history or () if e.type == "Replaced" and e.provider}
    bad.update(p.spec.provider for p in placements if p.metadata.deletion_timestamp is not None)
    return frozenset(bad)


def token_base(lease: ComputeLease, placements: Iterable[LeasePlacement]) -> int:
    """The highest fencing token the lease ever had: new tokens are above it."""
    recorded = (lease.status.last_fencing_token if lease.status else None) or 0
    seen = [p.spec.fencing_token or 0 for p in placements]
    return max([recorded, *seen])


def history_entry(move: Move, *, to: Sequence[str], now: datetime) -> LeaseHistoryEntry:
    """The ``status.history`` entry recording one move."""
    return LeaseHistoryEntry(
        time=now.replace(microsecond=0),
        type=move.kind,
        provider=move.provider,
        to=sorted(to) or None,
        replicas=move.placement.spec.replicas,
        reason=move.reason,
        message=move.message[:1024],
    )


def with_history(
    current: Sequence[LeaseHistoryEntry] | None, new: Sequence[LeaseHistoryEntry]
) -> list[LeaseHistoryEntry] | None:
    """``current`` followed by ``new``, the newest :data:`HISTORY_LIMIT` kept."""
    merged = [*(current or ()), *new]
    return merged[-HISTORY_LIMIT:] or None


def event_message(move: Move, to: Sequence[str]) -> str:
    """The Warning Event (and ``Relocated`` condition) text of one move."""
    where = ", ".join(sorted(to)) or "other providers"
    return f"{move.placement.spec.replicas} replica(s) moved from {move.provider} to {where}: " + (
        move.message
    )


def abandonable(placement: LeasePlacement, unreachable: Mapping[str, str]) -> bool:
    """Whether a deleted lease may go without waiting for this placement's agent.

    Bounded deletion: a placement on an Unreachable provider is deleted on the hub, and the
    lease does not wait for that agent's finalizer; the agent removes the workload when it
    returns (or its start-up sweep does).
    """
    return placement.spec.provider in unreachable


__all__ = [
    "RELOCATED",
    "Move",
    "MoveKind",
    "abandonable",
    "avoided",
    "event_message",
    "history_entry",
    "moves",
    "recheck_after",
    "stuck_since",
    "token_base",
    "with_history",
]
