"""A ComputeLease's status from its placements and the hub's gates (pure, typed).

Phase rules (in order; :func:`lease_phase`): deleting → ``Terminating``; suspended →
``Suspended`` (placed or not: it asks for no replica); nothing placed → ``Pending``; every
replica ready → ``Running``; no replica ready and the ``Ready`` reason (given only after the
ready timeout) is the tenant's (:data:`TENANT_REASONS`) → ``Failed``; fewer ready after having
run (``startedAt``) → ``Degraded``; otherwise (placed, never all ready yet) ``Scheduled``.
The end phases ``Expired``, ``Succeeded`` and a Job's ``Failed`` are
:mod:`kommons.hub.lifecycle`'s.

``Failed`` of a long-running lease is a status, not an end: its placements stay, so fixing the
template (a new image) recovers it.

A Job placement counts all its replicas ready while its Job runs as it should (its ``Ready``
condition is True) and once it completed: a Job's pods finish and go, by design.

The ``Ready`` condition carries the provider's own reason (e.g. ``PodsUnschedulable`` with
"pods Pending: Too many pods") once replicas have not been ready for ``ready_timeout``: a lease
never sits silently in ``Scheduled``.

The hub claims only the readiness it can observe: replicas of a placement on a provider the hub
sees ``Unreachable`` count as not ready (a Job placement that already reported ``Succeeded``
stays complete: that was observed), so such a lease is ``Degraded`` with ``Ready=False``, reason
:data:`PROVIDER_UNREACHABLE`, at once (the heartbeat timeout was the wait). The placement itself
is kept (fail safe, :mod:`kommons.hub.failover`); its last report counts again as soon as the
provider is reachable again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kommons.api import (
    ComputeLease,
    ComputeLeaseStatus,
    Condition,
    ConditionStatus,
    LeasePlacement,
    LeasePlacementSummary,
    SchedulingDecision,
    get_condition,
    ready_summary,
    set_condition,
)

AGENT_READY = "Ready"
"""Condition type on a placement's status with the provider-side reason."""

TENANT_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
    }
)
"""Not-ready reasons the tenant causes (its image or its configuration): re-placing the
replicas elsewhere would not help, so the lease shows them (``Failed``/``Degraded``) instead."""

PROVIDER_UNREACHABLE = "ProviderUnreachable"
"""``Ready`` reason of a lease whose replicas on an ``Unreachable`` provider are not counted."""

NO_UNREACHABLE: Mapping[str, str] = {}
"""No provider is Unreachable (the default of the functions below)."""


@dataclass(frozen=True)
class Gate:
    """The outcome of one condition the hub evaluates (``Scheduled``, ``PaymentOK`` ...)."""

    type: str
    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Readiness:
    """Why replicas are not ready, and whether the lease waited long enough to say so."""

    gate: Gate
    """The lease's ``Ready`` condition."""
    recheck_after: float | None
    """Seconds until the timeout passes (the hub looks again then), or ``None``."""


def _job_succeeded(placement: LeasePlacement) -> bool:
    status = placement.status
    return placement.spec.job is not None and status is not None and status.phase == "Succeeded"


def placement_summary(
    placement: LeasePlacement, *, reachable: bool = True
) -> LeasePlacementSummary:
    """One entry of ``status.placements``.

    ``reachable=False`` (the provider is ``Unreachable``): no replica counts as ready, except
    those of a Job the provider reported complete before.
    """
    status = placement.status
    ready = min(placement.spec.replicas, (status.ready_replicas or 0) if status else 0)
    if placement.spec.job is not None and status is not None:
        condition = get_condition(status.conditions, AGENT_READY)
        if status.phase == "Succeeded" or (condition is not None and condition.status == "True"):
            ready = placement.spec.replicas
    if not reachable and not _job_succeeded(placement):
        ready = 0
    return LeasePlacementSummary(
        provider=placement.spec.provider,
        replicas=placement.spec.replicas,
        ready_replicas=ready,
        price_per_hour=placement.spec.price_per_hour,
        placed_at=placement.metadata.creation_timestamp,
        namespace=status.namespace if status else None,
        placement_name=placement.metadata.name,
    )


def _provider_reason(placement: LeasePlacement) -> tuple[str, str]:
    """The agent's reason for a placement's missing replicas (reason, message)."""
    status = placement.status
    if status is None:
        return "NotReported", "the provider has not reported the placement yet"
    condition = get_condition(status.conditions, AGENT_READY)
    if condition is not None and condition.status != "True":
        return condition.reason, condition.message
    return "ReplicasNotReady", status.message or f"phase {status.phase or 'unknown'}"


def ready_replicas(placement: LeasePlacement, unreachable: Mapping[str, str]) -> int:
    """Replicas of ``placement`` the hub counts as ready (none on an Unreachable provider)."""
    reachable = placement.spec.provider not in unreachable
    return placement_summary(placement, reachable=reachable).ready_replicas


def unobserved(
    placements: Sequence[LeasePlacement], unreachable: Mapping[str, str]
) -> list[LeasePlacement]:
    """Placements on Unreachable providers whose replicas are not counted ready, by provider."""
    return sorted(
        (
            p
            for p in placements
            if p.spec.provider in unreachable and ready_replicas(p, unreachable) < p.spec.replicas
        ),
        key=lambda p: p.spec.provider,
    )


def unreachable_gate(
    *,
    ready: int,
    wanted: int,
    lost: Sequence[LeasePlacement],
    unreachable: Mapping[str, str],
    nothing_fits: str | None,
) -> Gate:
    """``Ready=False`` naming the Unreachable providers whose replicas are not counted.

    E.g. "1/3 replicas ready; not counted: 2 replica(s) on prov-a (provider prov-a is
    Unreachable: no heartbeat for 21s (timeout 20s)); no other provider fits: ...".
    ``nothing_fits`` is why no replacement could be placed, when that was tried and failed.
    """
    lost_parts = [
        f"{p.spec.replicas} replica(s) on {p.spec.provider} (provider {p.spec.provider} is"
        f" Unreachable: {unreachable[p.spec.provider]})"
        for p in lost
    ]
    message = f"{ready}/{wanted} replicas ready; not counted: " + "; ".join(lost_parts)
    if nothing_fits is not None:
        message += f"; no other provider fits: {nothing_fits}"
    return Gate("Ready", False, PROVIDER_UNREACHABLE, message)


def readiness(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    *,
    now: datetime,
    timeout: float,
    unreachable: Mapping[str, str] = NO_UNREACHABLE,
    nothing_fits: str | None = None,
    wanted: int | None = None,
) -> Readiness:
    """The lease's ``Ready`` condition from its placements.

    Replicas on an ``unreachable`` provider are not counted: while some are missing for that
    reason the lease is ``Ready=False``, reason :data:`PROVIDER_UNREACHABLE`, at once
    (:func:`unreachable_gate`; ``nothing_fits`` says why no replacement was placed).
    Other replicas that are not ready within ``timeout`` seconds (counted from the later of the
    last placement change and the moment the lease stopped being ready) give ``Ready=False``
    with the first lagging provider's reason, e.g. ``PodsUnschedulable``: "prov-a: 2 pod(s)
    Pending: 0/3 nodes are available: 3 Too many pods."

    ``wanted`` is how many replicas the lease needs now (default ``spec.replicas``; fewer for a
    Job lease with fewer completions left than replicas: ``lifecycle.job_wanted``).
    """
    wanted = 0 if lease.spec.suspend else (lease.spec.replicas if wanted is None else wanted)
    placed = sum(p.spec.replicas for p in placements)
    ready = sum(ready_replicas(p, unreachable) for p in placements)
    if wanted == 0:
        return Readiness(Gate("Ready", True, "Suspended", "suspended: no replica runs"), None)
    if placed == 0:
        return Readiness(Gate("Ready", False, "NotPlaced", "no replica is placed yet"), None)
    if ready >= wanted:
        return Readiness(Gate("Ready", True, "AllReplicasReady", f"{ready}/{wanted} ready"), None)
    lost = unobserved(placements, unreachable)
    if lost:
        gate = unreachable_gate(
            ready=ready,
            wanted=wanted,
            lost=lost,
            unreachable=unreachable,
            nothing_fits=nothing_fits,
        )
        return Readiness(gate, None)
    current = get_condition(lease.status.conditions if lease.status else None, "Ready")
    since = [p.metadata.creation_timestamp for p in placements if p.metadata.creation_timestamp]
    if current is not None and current.status == "False":
        since.append(current.last_transition_time)
    waited = (now - max(since)).total_seconds() if since else 0.0
    if waited < timeout:
        message = f"{ready}/{wanted} replicas ready; waiting up to {timeout:.0f}s for the rest"
        return Readiness(Gate("Ready", False, "ReplicasStarting", message), timeout - waited)
    lagging = sorted(
        (p for p in placements if placement_summary(p).ready_replicas < p.spec.replicas),
        key=lambda p: p.spec.provider,
    )
    reason = _provider_reason(lagging[0])[0] if lagging else "ReplicasNotReady"
    message = f"{ready}/{wanted} replicas ready after {waited:.0f}s; " + "; ".join(
        f"{p.spec.provider}: {_provider_reason(p)[1]}" for p in lagging[:3]
    )
    return Readiness(Gate("Ready", False, reason, message), None)


def lease_phase(
    *,
    deleting: bool,
    placed: int,
    suspended: bool,
    ready: int,
    wanted: int,
    started: bool,
    ready_reason: str = "",
) -> str:
    """The phase of a lease that has not ended (the module docstring's rules).

    Args:
        deleting: The lease has a deletion timestamp.
        placed: Replicas placed.
        suspended: ``spec.suspend``.
        ready: Replicas ready.
        wanted: Replicas needed now (``spec.replicas``, fewer for a Job near its end).
        started: All replicas were ready once (``status.startedAt`` is set).
        ready_reason: The reason of the lease's ``Ready`` condition.
    """
    if deleting:
        return "Terminating"
    if suspended:
        return "Suspended"
    if placed == 0:
        return "Pending"
    if ready >= wanted:
        return "Running"
    if ready == 0 and ready_reason in TENANT_REASONS:
        return "Failed"
    if started:
        return "Degraded"
    return "Scheduled"


def _conditions(
    current: Sequence[Condition] | None,
    gates: Sequence[Gate],
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    conditions = list(current or ())
    for gate in gates:
        status: ConditionStatus = "True" if gate.ok else "False"
        conditions = set_condition(
            conditions,
            type_=gate.type,
            status=status,
            reason=gate.reason,
            message=gate.message,
            observed_generation=generation,
            now=now,
        )
    return conditions


def lease_status(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    gates: Sequence[Gate],
    *,
    decision: SchedulingDecision | None,
    billing_account: str | None,
    now: datetime,
    unreachable: Mapping[str, str] = NO_UNREACHABLE,
    wanted: int | None = None,
) -> ComputeLeaseStatus:
    """The full desired ``status`` of a lease.

    Args:
        lease: The lease as served.
        placements: Its live ``LeasePlacement`` objects, as they will be after this step.
        gates: Conditions evaluated this round (others are kept as they are).
        decision: A new scheduling decision to record, or ``None`` to keep the current one.
        billing_account: The BillingAccount the lease is billed to, if one selects it.
        now: Current time.
        unreachable: Providers the hub sees ``Unreachable`` (→ why): their placements'
            replicas count as not ready.
        wanted: Replicas the lease needs now (default ``spec.replicas``; see
            :func:`readiness`). ``status.replicas`` stays ``spec.replicas``.
    """
    current = lease.status or ComputeLeaseStatus()
    spec = lease.spec
    need = spec.replicas if wanted is None else wanted
    summaries = sorted(
        (placement_summary(p, reachable=p.spec.provider not in unreachable) for p in placements),
        key=lambda s: s.provider,
    )
    placed = sum(s.replicas for s in summaries)
    ready = sum(s.ready_replicas for s in summaries)
    started_at = current.started_at
    if started_at is None and placed and ready >= need > 0 and not spec.suspend:
        started_at = now.replace(microsecond=0)
    ready_gate = next((g for g in gates if g.type == "Ready"), None)
    phase = lease_phase(
        deleting=lease.metadata.deletion_timestamp is not None,
        placed=placed,
        suspended=spec.suspend,
        ready=ready,
        wanted=need,
        started=started_at is not None,
        ready_reason=ready_gate.reason if ready_gate and not ready_gate.ok else "",
    )
    generation = lease.metadata.generation
    return ComputeLeaseStatus(
        phase=phase,
        replicas=spec.replicas,
        ready_replicas=ready,
        ready=ready_summary(ready, need),
        providers=",".join(sorted({s.provider for s in summaries})),
        placements=summaries,
        started_at=started_at,
        expires_at=current.expires_at,
        observed_generation=generation,
        cost=current.cost,
        usage=current.usage,
        decision=decision if decision is not None else current.decision,
        endpoints=current.endpoints,
        billing_account=billing_account,
        payment_suspended_at=current.payment_suspended_at,  # the payment guard's (plan.py)
        conditions=_conditions(current.conditions, gates, generation=generation, now=now),
    )


def _comparable(status: ComputeLeaseStatus | None) -> dict[str, Any]:
    data = status.to_api() if status is not None else {}
    for condition in data.get("conditions") or ():
        condition.pop("lastTransitionTime", None)
    if isinstance(data.get("decision"), dict):
        data["decision"].pop("decidedAt", None)
    return data


def status_changed(current: ComputeLeaseStatus | None, desired: ComputeLeaseStatus) -> bool:
    """Whether writing ``desired`` would change anything (condition/decision times aside)."""
    return _comparable(current) != _comparable(desired)
