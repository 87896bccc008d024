"""Convert API objects (as the API serves them) into the scheduler's inputs (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kommons.money import parse_units
from kommons.quantity import to_bytes, to_millicores
from kommons.scheduler import (
    LabelSelector,
    LeaseRequest,
    Operator,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Requirement,
    Resources,
    Strategy,
    placement_key,
)

JSON = Mapping[str, Any]


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (Time or MicroTime) as an aware datetime, or ``None``."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def lease_key(body: JSON) -> str:
    """``namespace/name`` of a lease."""
    meta = body["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def label_selector(data: JSON | None) -> LabelSelector | None:
    """A Kubernetes ``LabelSelector`` object as the scheduler's selector (``None`` if absent)."""
    if not data:
        return None
    expressions = tuple(
        Requirement(
            key=str(e["key"]),
            operator=Operator(str(e["operator"])),
            values=frozenset(e.get("values") or ()),
        )
        for e in data.get("matchExpressions") or ()
    )
    return LabelSelector(
        match_labels=dict(data.get("matchLabels") or {}), match_expressions=expressions
    )


def selects(selector: JSON | None, labels: Mapping[str, str], *, empty_selects_all: bool) -> bool:
    """Whether a ``LabelSelector`` object selects ``labels``.

    Kubernetes' convention is that an empty selector selects everything; where a missing
    selector must select nothing (e.g. a BillingAccount), pass ``empty_selects_all=False``.
    """
    parsed = label_selector(selector)
    if parsed is None or (not parsed.match_labels and not parsed.match_expressions):
        return empty_selects_all
    return parsed.matches(labels)


def lease_request(body: JSON) -> LeaseRequest:
    """The scheduler's view of a ``ComputeLease``."""
    spec = body["spec"]
    resources = spec["resources"]
    gpu = resources.get("gpu") or {}
    placement = spec.get("placement") or {}
    price = spec.get("maxPricePerHour")
    return LeaseRequest(
        key=lease_key(body),
        replicas=int(spec.get("replicas", 1)),
        resources=ReplicaResources(
            cpu_milli=to_millicores(resources["cpu"]),
            memory_bytes=to_bytes(resources["memory"]),
            gpu_count=int(gpu.get("count", 0)),
            gpu_model=gpu.get("model"),
        ),
        max_price_per_hour=parse_units(str(price), rounding="down") if price else None,
        regions=frozenset(placement.get("regions") or ()),
        providers=frozenset(placement.get("providers") or ()),
        spread=bool(placement.get("spread", False)),
    )


def pool_policy(body: JSON) -> PoolPolicy:
    """The scheduler's view of a ``ProviderPool``."""
    spec = body.get("spec") or {}
    return PoolPolicy(
        strategy=Strategy(spec.get("strategy", Strategy.LOWEST_PRICE.value)),
        selector=label_selector(spec.get("providerSelector")),
        regions=frozenset(spec.get("regions") or ()),
        min_reputation=float(spec.get("minReputation", 0) or 0),
    )


def _resources(summary: JSON | None) -> Resources:
    summary = summary or {}
    return Resources(
        cpu_milli=to_millicores(summary.get("cpu") or 0),
        memory_bytes=to_bytes(summary.get("memory") or 0),
        gpus={str(m): int(n) for m, n in (summary.get("gpus") or {}).items()},
    )


def _price(value: object) -> int:
    return parse_units(str(value), rounding="up") if value is not None else 0


def heartbeat_age(renew_time: str | None, now: datetime) -> float | None:
    """Seconds since the agent last renewed its heartbeat, or ``None`` if it never did."""
    renewed = parse_time(renew_time)
    return None if renewed is None else (now - renewed).total_seconds()


def provider_view(body: JSON, *, heartbeat_fresh: bool) -> ProviderView:
    """The scheduler's view of a ``Provider``.

    A provider is ready for placements when its heartbeat is fresh, the hub has marked it
    ``Ready`` and it has reported inventory at least once.
    """
    meta = body["metadata"]
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    pricing = spec.get("pricing") or {}
    phase = str(status.get("phase") or "NotReady")
    if not heartbeat_fresh and phase != "Cordoned":
        phase = "Unreachable"
    name = str(meta["name"])
    reputation = (status.get("reputation") or {}).get("score", 1.0)
    return ProviderView(
        name=name,
        region=str(spec.get("region", "")),
        labels=dict(meta.get("labels") or {}),
        available=_resources(status.get("available")),
        pricing=Pricing(
            cpu_core_hour=_price(pricing.get("cpuCoreHour")),
            memory_gib_hour=_price(pricing.get("memoryGiBHour")),
            gpu_hour={str(m): _price(p) for m, p in (pricing.get("gpuHour") or {}).items()},
        ),
        ready=heartbeat_fresh and phase == "Ready" and status.get("available") is not None,
        phase=phase,
        cordoned=bool(spec.get("cordoned", False)),
        reputation=float(reputation),
        accounted=frozenset(placement_key(k, name) for k in status.get("accountedLeases") or ()),
    )


def placement_resources(placement: JSON) -> Resources:
    """What a ``LeasePlacement`` holds on its provider: replicas × per-replica resources."""
    spec = placement["spec"]
    replicas = int(spec.get("replicas", 0))
    res = spec.get("resources") or {}
    gpu = res.get("gpu") or {}
    count = int(gpu.get("count", 0)) * replicas
    return Resources(
        cpu_milli=to_millicores(res.get("cpu") or 0) * replicas,
        memory_bytes=to_bytes(res.get("memory") or 0) * replicas,
        gpus={str(gpu.get("model")): count} if count else {},
    )


__all__ = [
    "heartbeat_age",
    "label_selector",
    "lease_key",
    "lease_request",
    "parse_time",
    "placement_resources",
    "pool_policy",
    "provider_view",
    "selects",
]
