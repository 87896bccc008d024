"""A ComputeLease's status from its placements and the hub's gates (pure).

Phase rules (in order): deleting → ``Terminating``; nothing placed → ``Pending``; suspended →
``Suspended``; every replica ready → ``Running``; fewer ready after having run → ``Degraded``;
otherwise (placed, never all ready yet) ``Scheduled``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kommons.api.common import Condition, ConditionStatus, set_condition
from kommons.api.lease import ready_summary

JSON = dict[str, Any]


@dataclass(frozen=True)
class Gate:
    """The outcome of one condition the hub evaluates (``Scheduled``, ``PaymentOK`` ...)."""

    type: str
    ok: bool
    reason: str
    message: str


def placement_summary(placement: Mapping[str, Any]) -> JSON:
    """One entry of ``status.placements`` from a ``LeasePlacement``."""
    spec = placement["spec"]
    status = placement.get("status") or {}
    meta = placement["metadata"]
    entry: JSON = {
        "provider": spec["provider"],
        "replicas": int(spec.get("replicas", 0)),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "pricePerHour": str(spec.get("pricePerHour")),
        "placedAt": meta.get("creationTimestamp"),
        "placementName": meta["name"],
    }
    if status.get("namespace"):
        entry["namespace"] = status["namespace"]
    return {k: v for k, v in entry.items() if v is not None}


def _phase(
    *, deleting: bool, placed: int, suspended: bool, ready: int, replicas: int, started: bool
) -> str:
    if deleting:
        return "Terminating"
    if placed == 0:
        return "Pending"
    if suspended:
        return "Suspended"
    if ready >= replicas:
        return "Running"
    if started:
        return "Degraded"
    return "Scheduled"


def _conditions(
    current: Sequence[Mapping[str, Any]] | None,
    gates: Sequence[Gate],
    *,
    generation: int | None,
    now: datetime,
) -> list[JSON]:
    conditions: list[Condition] = [Condition.model_validate(c) for c in current or ()]
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
    return [c.to_api() for c in conditions]


def lease_status(
    lease: Mapping[str, Any],
    placements: Sequence[Mapping[str, Any]],
    gates: Sequence[Gate],
    *,
    decision: JSON | None,
    billing_account: str | None,
    now: datetime,
) -> JSON:
    """The full desired ``status`` of a lease.

    Args:
        lease: The lease as served.
        placements: Its ``LeasePlacement`` objects.
        gates: Conditions evaluated by the hub this round (others are kept as they are).
        decision: A new scheduling decision to record, or ``None`` to keep the current one.
        billing_account: The BillingAccount the lease is billed to, if one selects it.
        now: Current time.
    """
    spec = lease["spec"]
    meta = lease["metadata"]
    current = lease.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    summaries = sorted((placement_summary(p) for p in placements), key=lambda s: s["provider"])
    placed = sum(s["replicas"] for s in summaries)
    ready = sum(s["readyReplicas"] for s in summaries)
    started_at = current.get("startedAt")
    if started_at is None and placed and ready >= replicas > 0:
        started_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    phase = _phase(
        deleting=bool(meta.get("deletionTimestamp")),
        placed=placed,
        suspended=bool(spec.get("suspend", False)),
        ready=ready,
        replicas=replicas,
        started=started_at is not None,
    )
    all_gates = list(gates)
    if placed:
        ready_ok = ready >= replicas
        all_gates.append(
            Gate(
                "Ready",
                ready_ok,
                "AllReplicasReady" if ready_ok else "ReplicasNotReady",
                f"{ready}/{replicas} replicas ready",
            )
        )
    else:
        all_gates.append(Gate("Ready", False, "NotPlaced", "no replica is placed yet"))
    status: JSON = {
        "phase": phase,
        "replicas": replicas,
        "readyReplicas": ready,
        "ready": ready_summary(ready, replicas),
        "providers": ",".join(sorted({s["provider"] for s in summaries})),
        "placements": summaries,
        "observedGeneration": meta.get("generation"),
        "conditions": _conditions(
            current.get("conditions"), all_gates, generation=meta.get("generation"), now=now
        ),
    }
    if started_at is not None:
        status["startedAt"] = started_at
    if billing_account is not None:
        status["billingAccount"] = billing_account
    if decision is not None:
        status["decision"] = decision
    elif current.get("decision") is not None:
        status["decision"] = current["decision"]
    return status


def status_changed(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change anything (ignoring condition timestamps)."""

    def strip(status: Mapping[str, Any] | None) -> JSON:
        data = dict(status or {})
        data["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in data.get("conditions") or ()
        ]
        return {k: v for k, v in data.items() if k in desired}

    return strip(current) != strip(desired)
