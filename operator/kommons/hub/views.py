"""Convert typed API objects into the scheduler's inputs (pure).

Everything a provider declares (prices, offer, inventory) is validated here before the
scheduler sees it: a provider whose declaration is unusable becomes a view that is not ready,
with the reason, and harms no one else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kommons.api import (
    ComputeLease,
    LabelSelector,
    LeasePlacement,
    Provider,
    ProviderPool,
    ResourceSummary,
    StorageRequest,
)
from kommons.api import Resources as ApiResources
from kommons.hub.reputation import NEUTRAL_SCORE
from kommons.money import parse_units
from kommons.quantity import to_bytes, to_millicores
from kommons.scheduler import (
    MAX_MULTIPLIER,
    MULTIPLIER_ONE,
    LeaseRequest,
    Operator,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Requirement,
    Resources,
    Strategy,
)
from kommons.scheduler import (
    LabelSelector as SchedulerSelector,
)


def lease_key(lease: ComputeLease) -> str:
    """``namespace/name`` of a lease."""
    return f"{lease.metadata.namespace}/{lease.metadata.name}"


def scheduler_selector(selector: LabelSelector | None) -> SchedulerSelector | None:
    """A Kubernetes ``LabelSelector`` as the scheduler's selector (``None`` if absent)."""
    if selector is None:
        return None
    return SchedulerSelector(
        match_labels=dict(selector.match_labels or {}),
        match_expressions=tuple(
            Requirement(key=e.key, operator=Operator(e.operator), values=frozenset(e.values or ()))
            for e in selector.match_expressions or ()
        ),
    )


def selects(
    selector: LabelSelector | None, labels: Mapping[str, str], *, empty_selects_all: bool
) -> bool:
    """Whether a selector selects ``labels``.

    Kubernetes' convention is that an empty selector selects everything; where a missing
    selector must select nothing (a BillingAccount), pass ``empty_selects_all=False``.
    """
    if selector is None or (not selector.match_labels and not selector.match_expressions):
        return empty_selects_all
    return selector.matches(labels)


def storage_by_tier(storage: Sequence[StorageRequest] | None) -> dict[str, int]:
    """One replica's persistent storage in bytes by tier (``spec.storage``, sizes summed)."""
    out: dict[str, int] = {}
    for volume in storage or ():
        out[volume.tier] = out.get(volume.tier, 0) + to_bytes(volume.size)
    return out


def replica_resources(
    lease_resources: ApiResources, storage: Sequence[StorageRequest] | None = None
) -> ReplicaResources:
    """Per-replica resources of a lease or placement spec (``spec.resources``, ``spec.storage``)."""
    gpu = lease_resources.gpu
    return ReplicaResources(
        cpu_milli=to_millicores(lease_resources.cpu),
        memory_bytes=to_bytes(lease_resources.memory),
        gpu_count=gpu.count if gpu else 0,
        gpu_model=gpu.model if gpu else None,
        storage=storage_by_tier(storage),
    )


def lease_request(lease: ComputeLease) -> LeaseRequest:
    """The scheduler's view of a ``ComputeLease``."""
    spec = lease.spec
    placement = spec.placement
    return LeaseRequest(
        key=lease_key(lease),
        replicas=spec.replicas,
        resources=replica_resources(spec.resources, spec.storage),
        max_price_per_hour=parse_units(spec.max_price_per_hour, rounding="down"),
        regions=frozenset(placement.regions or ()) if placement else frozenset(),
        providers=frozenset(placement.providers or ()) if placement else frozenset(),
        spread=bool(placement and placement.spread),
        public_protocols=frozenset(p.protocol for p in spec.expose or () if p.public),
    )


def pool_policy(pool: ProviderPool) -> PoolPolicy:
    """The scheduler's view of a ``ProviderPool``."""
    spec = pool.spec
    return PoolPolicy(
        strategy=Strategy(spec.strategy),
        selector=scheduler_selector(spec.provider_selector),
        regions=frozenset(spec.regions or ()),
        min_reputation=spec.min_reputation,
    )


def placement_resources(placement: LeasePlacement, replicas: int | None = None) -> Resources:
    """What ``replicas`` (default: all) replicas of a placement hold on its provider."""
    count = placement.spec.replicas if replicas is None else replicas
    per = replica_resources(placement.spec.resources, placement.spec.storage)
    return per.as_resources(count, per.gpu_model)


class InvalidDeclaration(ValueError):
    """A provider's declaration (prices, inventory) the hub cannot use; the message says why."""


def summary_resources(summary: ResourceSummary | None, field: str) -> Resources:
    """An inventory summary as scheduler resources; refuses malformed or negative values."""
    if summary is None:
        return Resources()
    try:
        cpu = to_millicores(summary.cpu or 0)
        memory = to_bytes(summary.memory or 0)
    except (ValueError, ArithmeticError) as exc:
        raise InvalidDeclaration(f"status.{field} is malformed: {exc}") from exc
    if summary.pods is None:
        raise InvalidDeclaration(
            f"status.{field}.pods is missing: the agent does not report its pod allowance"
            " (upgrade the agent)"
        )
    pods = summary.pods
    gpus = dict(summary.gpus or {})
    try:
        storage = {tier: to_bytes(size) for tier, size in (summary.storage or {}).items()}
    except (ValueError, ArithmeticError) as exc:
        raise InvalidDeclaration(f"status.{field}.storage is malformed: {exc}") from exc
    if (
        cpu < 0
        or memory < 0
        or pods < 0
        or any(n < 0 for n in gpus.values())
        or any(n < 0 for n in storage.values())
    ):
        raise InvalidDeclaration(f"status.{field} has a negative amount")
    return Resources(cpu_milli=cpu, memory_bytes=memory, gpus=gpus, pods=pods, storage=storage)


def _pricing(provider: Provider) -> Pricing:
    """A provider's prices in base units; a zero cpu or memory price is refused."""
    pricing = provider.spec.pricing
    cpu = parse_units(pricing.cpu_core_hour, rounding="up")
    memory = parse_units(pricing.memory_gib_hour, rounding="up")
    if cpu <= 0 or memory <= 0:
        raise InvalidDeclaration(
            "quotes a zero price (spec.pricing.cpuCoreHour and memoryGiBHour must be > 0)"
        )
    gpus = {m: parse_units(p, rounding="up") for m, p in (pricing.gpu_hour or {}).items()}
    zero = sorted(m for m, p in gpus.items() if p <= 0)
    if zero:
        raise InvalidDeclaration(f"quotes a zero price for gpu {', '.join(zero)}")
    storage = {
        t: parse_units(p, rounding="up") for t, p in (pricing.storage_gib_hour or {}).items()
    }
    zero = sorted(t for t, p in storage.items() if p <= 0)
    if zero:
        raise InvalidDeclaration(f"quotes a zero price for storage tier {', '.join(zero)}")
    policy = pricing.policy
    multiplier = MULTIPLIER_ONE
    if policy is not None and policy.type == "Utilization":
        try:
            multiplier = parse_units(policy.max_multiplier, decimals=4)
        except ValueError as exc:
            raise InvalidDeclaration(f"spec.pricing.policy.maxMultiplier: {exc}") from exc
        if not MULTIPLIER_ONE <= multiplier <= MAX_MULTIPLIER:
            raise InvalidDeclaration(
                "spec.pricing.policy.maxMultiplier must be from 1 to 10, got"
                f" {policy.max_multiplier}"
            )
    return Pricing(
        cpu_core_hour=cpu,
        memory_gib_hour=memory,
        gpu_hour=gpus,
        storage_gib_hour=storage,
        max_multiplier=multiplier,
    )


def ceiling_resources(provider: Provider, allocatable: Resources) -> Resources:
    """Allocatable capped by the offer: what a ``Utilization`` provider's utilisation is of.

    Cpu and memory are capped by the offer's; every GPU model by the offer's GPU total (the
    offer counts GPUs in total, as the agent caps them). Pod slots are not capped.
    """
    offer = provider.spec.offer
    if offer is None:
        return allocatable
    try:
        cpu = to_millicores(offer.cpu) if offer.cpu is not None else allocatable.cpu_milli
        memory = to_bytes(offer.memory) if offer.memory is not None else allocatable.memory_bytes
    except (ValueError, ArithmeticError) as exc:
        raise InvalidDeclaration(f"spec.offer is malformed: {exc}") from exc
    gpus = dict(allocatable.gpus)
    if offer.gpus is not None:
        gpus = {model: min(count, offer.gpus) for model, count in gpus.items()}
    return Resources(
        cpu_milli=min(cpu, allocatable.cpu_milli),
        memory_bytes=min(memory, allocatable.memory_bytes),
        gpus=gpus,
        pods=allocatable.pods,
    )


@dataclass(frozen=True)
class ProviderHealth:
    """What the hub itself decided about a provider (never taken from the provider)."""

    phase: str
    """``Ready``, ``NotReady``, ``Unreachable`` or ``Cordoned``."""
    fresh: bool
    """Whether the hub observed a heartbeat within the timeout."""


def provider_view(
    provider: Provider, health: ProviderHealth, *, observed_at: float = 0.0
) -> tuple[ProviderView, str | None]:
    """The scheduler's view of a ``Provider``, and why it is excluded (``None`` if usable).

    A provider takes placements when the hub saw its heartbeat within the timeout, its phase
    (as the hub computed it) is ``Ready``, and its declaration is valid: non-zero prices and a
    well-formed, non-negative inventory. Reputation is the hub's own record (absent: a new
    provider's score, :data:`~kommons.hub.reputation.NEUTRAL_SCORE`).
    """
    name = str(provider.metadata.name)
    status = provider.status
    reputation = status.reputation.score if status and status.reputation else NEUTRAL_SCORE
    excluded: str | None = None
    ceiling = Resources()
    try:
        pricing = _pricing(provider)
        available = summary_resources(status.available if status else None, "available")
        if pricing.dynamic and status is not None and status.allocatable is not None:
            allocatable = summary_resources(status.allocatable, "allocatable")
            ceiling = ceiling_resources(provider, allocatable)
    except InvalidDeclaration as exc:
        excluded = str(exc)
        pricing, available = Pricing(), Resources()
    phase = health.phase
    if excluded is not None:
        phase = f"Invalid: {excluded}"
    elif status is None or status.available is None:
        phase = "NotReady: no inventory reported yet"
    view = ProviderView(
        name=name,
        region=provider.spec.region,
        labels=dict(provider.metadata.labels or {}),
        available=available,
        ceiling=ceiling,
        pricing=pricing,
        ready=health.fresh and health.phase == "Ready" and not phase.startswith(("Invalid", "Not")),
        phase=phase,
        cordoned=provider.spec.cordoned,
        reputation=min(1.0, max(0.0, float(reputation))),
        observed_at=observed_at,
        publish_mode=provider.spec.expose.mode if provider.spec.expose else "None",
    )
    return view, excluded


__all__ = [
    "InvalidDeclaration",
    "ProviderHealth",
    "ceiling_resources",
    "lease_key",
    "lease_request",
    "placement_resources",
    "pool_policy",
    "provider_view",
    "replica_resources",
    "scheduler_selector",
    "selects",
]
