"""What the ``kommons`` commands print (pure): tables and explanations from the typed kinds.

Every function takes :mod:`kommons.api` models and the clock and returns text or rows; the
commands (:mod:`kommons.cli_market`) only read the objects and print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kommons.api import (
    ChosenProvider,
    ComputeLease,
    LeasePlacement,
    Provider,
    ProviderPool,
    get_condition,
)

__all__ = [
    "BillLine",
    "age",
    "bill_lines",
    "explain_lease",
    "lease_rows",
    "pool_report",
    "provider_report",
    "table",
]

LEASE_HEADERS = ("NAMESPACE", "NAME", "PHASE", "READY", "PROVIDERS", "COST", "AGE")
BILL_HEADERS = ("NAMESPACE", "LEASE", "EPOCH", "PROVIDER", "ACCOUNT", "READY-SECONDS", "AMOUNT")


def age(since: datetime | None, now: datetime) -> str:
    """Kubernetes-style age: ``42s``, ``7m``, ``5h``, ``3d`` (``-`` when unknown)."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, like ``kubectl get``."""
    lines = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def lease_rows(leases: Sequence[ComputeLease], now: datetime) -> list[list[str]]:
    """One row per lease (:data:`LEASE_HEADERS`), sorted by namespace and name."""
    rows = []
    for lease in sorted(leases, key=lambda x: (x.metadata.namespace or "", x.metadata.name or "")):
        status = lease.status
        rows.append(
            [
                lease.metadata.namespace or "",
                lease.metadata.name or "",
                (status.phase if status else None) or "Pending",
                (status.ready if status else None) or f"0/{lease.spec.replicas}",
                (status.providers if status else None) or "-",
                status.cost.accrued if status and status.cost else "0",
                age(lease.metadata.creation_timestamp, now),
            ]
        )
    return rows


def _condition_line(lease: ComputeLease, type_: str) -> str | None:
    status = lease.status
    found = get_condition(status.conditions if status else None, type_)
    if found is None:
        return None
    return f"{type_}={found.status} {found.reason}: {found.message}"


def _chosen_text(chosen: ChosenProvider) -> str:
    """``prov-a (2 at 0.01/h)``, with list price × multiplier when a Utilization quote rose."""
    price = f"{chosen.price_per_hour}/h"
    if chosen.price_multiplier is not None and chosen.list_price_per_hour is not None:
        price += f" = {chosen.list_price_per_hour}/h list × {chosen.price_multiplier}"
    return f"{chosen.provider} ({chosen.replicas} at {price})"


def explain_lease(lease: ComputeLease, now: datetime) -> str:
    """Where the lease runs and why, what moved, and what it cost so far."""
    meta, spec, status = lease.metadata, lease.spec, lease.status
    lines = [
        f"Lease {meta.namespace}/{meta.name}: {spec.replicas} replica(s) of"
        f" {spec.resources.cpu} cpu / {spec.resources.memory} memory in pool"
        f" {spec.pool_ref.name}, at most {spec.max_price_per_hour}/h per replica",
        f"Phase: {(status.phase if status else None) or 'Pending'},"
        f" ready {(status.ready if status else None) or '0/' + str(spec.replicas)}",
    ]
    for type_ in ("Scheduled", "Ready", "PaymentOK"):
        line = _condition_line(lease, type_)
        if line:
            lines.append(f"  {line}")
    placements = (status.placements if status else None) or []
    lines.append("Where it runs:")
    if not placements:
        lines.append("  nowhere yet")
    for placed in sorted(placements, key=lambda p: p.provider):
        lines.append(
            f"  {placed.provider}: {placed.ready_replicas}/{placed.replicas} ready at"
            f" {placed.price_per_hour or '?'}/h per replica, placed {age(placed.placed_at, now)}"
            " ago"
        )
    decision = status.decision if status else None
    if decision is not None:
        lines.append(
            f"Why: the last decision ({age(decision.decided_at, now)} ago) considered"
            f" {decision.considered} provider(s), {decision.feasible} feasible; chose "
            + (", ".join(_chosen_text(c) for c in decision.chosen) or "none")
        )
        for reason, count in decision.rejected_counts.items():
            lines.append(f"  rejected {count} for {reason}")
        for provider, why in sorted(decision.rejected.items()):
            lines.append(f"    e.g. {provider}: {why}")
    history = (status.history if status else None) or []
    lines.append("What moved:")
    if not history:
        lines.append("  nothing")
    for entry in history:
        moved = f" → {', '.join(entry.to)}" if entry.to else ""
        lines.append(
            f"  {entry.time:%Y-%m-%d %H:%M:%S}Z {entry.type}: {entry.replicas or '?'} replica(s)"
            f" from {entry.provider or '?'}{moved} ({entry.reason or '-'}: {entry.message or '-'})"
        )
    cost = status.cost if status else None
    if cost is None:
        lines.append("Cost so far: nothing metered yet")
    else:
        lines.append(
            f"Cost so far: {cost.accrued} accrued, {cost.settled or '0'} settled on chain"
            + (
                f" (metered up to {cost.last_metered_at:%Y-%m-%d %H:%M:%S}Z)"
                if cost.last_metered_at
                else ""
            )
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class BillLine:
    """One (lease, epoch, placement) entry of unsettled usage, or a lease's settled total."""

    namespace: str
    lease: str
    epoch: str
    """The epoch id, or ``settled`` for what earlier epochs already settled."""
    provider: str
    account: str
    ready_seconds: int | None
    amount: Decimal


def bill_lines(leases: Sequence[ComputeLease]) -> list[BillLine]:
    """Each lease's settled total, then its usage per epoch and provider (unsettled)."""
    out = []
    for lease in sorted(leases, key=lambda x: (x.metadata.namespace or "", x.metadata.name or "")):
        ns, name, status = lease.metadata.namespace or "", lease.metadata.name or "", lease.status
        if status is None:
            continue
        if status.cost is not None and status.cost.settled:
            account = status.billing_account or "-"
            out.append(
                BillLine(ns, name, "settled", "-", account, None, Decimal(status.cost.settled))
            )
        for usage in sorted(status.usage or (), key=lambda u: (u.epoch_id, u.provider)):
            out.append(
                BillLine(
                    ns,
                    name,
                    str(usage.epoch_id),
                    usage.provider,
                    usage.billing_account,
                    usage.ready_seconds,
                    Decimal(usage.amount),
                )
            )
    return out


def bill_rows(lines: Sequence[BillLine]) -> list[list[str]]:
    """:data:`BILL_HEADERS` rows, with a TOTAL row."""
    rows = [
        [
            line.namespace,
            line.lease,
            line.epoch,
            line.provider,
            line.account,
            "-" if line.ready_seconds is None else str(line.ready_seconds),
            str(line.amount),
        ]
        for line in lines
    ]
    total = sum((line.amount for line in lines), Decimal(0))
    rows.append(["TOTAL", "", "", "", "", "", str(total)])
    return rows


def _amounts(summary: object) -> str:
    if summary is None:
        return "-"
    cpu = getattr(summary, "cpu", None) or "0"
    memory = getattr(summary, "memory", None) or "0"
    pods = getattr(summary, "pods", None)
    gpus = getattr(summary, "gpus", None) or {}
    gpu_text = ", ".join(f"{n}× {m}" for m, n in sorted(gpus.items())) or "no gpus"
    return f"cpu {cpu}, memory {memory}, pods {pods if pods is not None else '?'}, {gpu_text}"


def _prices(provider: Provider) -> str:
    """List prices and the policy, e.g. ``0.02/core-h, 0.003/GiB-h; Utilization, up to ×3``."""
    pricing = provider.spec.pricing
    parts = [f"{pricing.cpu_core_hour}/core-h", f"{pricing.memory_gib_hour}/GiB-h"]
    parts += [f"{price}/{model}-h" for model, price in sorted((pricing.gpu_hour or {}).items())]
    policy = pricing.policy
    if policy is not None and policy.type == "Utilization":
        how = f"Utilization, up to ×{policy.max_multiplier} when full"
    else:
        how = "Static (list prices)"
    return ", ".join(parts) + f"; {how}"


def provider_report(
    provider: Provider,
    placements: Sequence[LeasePlacement],
    now: datetime,
    earnings: Mapping[str, str] | None = None,
) -> str:
    """A provider's standing: phase, heartbeat, capacity, placements, reputation, earnings."""
    status = provider.status
    lines = [
        f"Provider {provider.metadata.name} ({provider.spec.region})"
        + (" — cordoned" if provider.spec.cordoned else ""),
        f"Phase: {(status.phase if status else None) or 'unknown'};"
        f" last heartbeat {age(status.last_heartbeat_time if status else None, now)} ago",
        f"Allocatable: {_amounts(status.allocatable if status else None)}",
        f"Available:   {_amounts(status.available if status else None)}",
        f"Prices:      {_prices(provider)}",
    ]
    reputation = status.reputation if status else None
    if reputation is not None:
        lines.append(f"Reputation: {reputation.score:.3f}")
    lines.append(f"Placements: {len(placements)}")
    for placement in sorted(placements, key=lambda p: p.metadata.name or ""):
        ready = placement.status.ready_replicas if placement.status else None
        ref = placement.spec.lease_ref
        lines.append(
            f"  {placement.metadata.name}: lease {ref.namespace}/{ref.name},"
            f" {ready if ready is not None else 0}/{placement.spec.replicas} ready at"
            f" {placement.spec.price_per_hour}/h per replica"
        )
    if earnings is None:
        lines.append("Earnings: not readable with these credentials (ask the hub admin)")
    else:
        lines.append("Earnings by epoch (confirmed, claimable with `kommons claim`):")
        if not earnings:
            lines.append("  none yet")
        for epoch, amount in earnings.items():
            lines.append(f"  epoch {epoch}: {amount}")
    return "\n".join(lines)


def pool_report(
    pool: ProviderPool,
    members: Sequence[Provider],
    leases: Sequence[ComputeLease],
) -> str:
    """A pool's policy, its providers and its leases by phase."""
    spec = pool.spec
    lines = [
        f"Pool {pool.metadata.name}: strategy {spec.strategy},"
        f" regions {', '.join(spec.regions or []) or 'any'},"
        f" minimum reputation {spec.min_reputation}",
        f"Providers: {len(members)}",
    ]
    for provider in sorted(members, key=lambda p: p.metadata.name or ""):
        status = provider.status
        lines.append(
            f"  {provider.metadata.name} ({provider.spec.region}):"
            f" {(status.phase if status else None) or 'unknown'}"
            + (" cordoned" if provider.spec.cordoned else "")
            + f"; available {_amounts(status.available if status else None)}"
        )
    phases: dict[str, int] = {}
    for lease in leases:
        phase = (lease.status.phase if lease.status else None) or "Pending"
        phases[phase] = phases.get(phase, 0) + 1
    counts = ", ".join(f"{n} {p}" for p, n in sorted(phases.items())) or "none"
    lines.append(f"Leases: {len(leases)} ({counts})")
    return "\n".join(lines)
