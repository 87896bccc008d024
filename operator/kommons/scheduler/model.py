"""Inputs of the scheduler: small frozen dataclasses of integers, converted by the hub.

Units: cpu in millicores, memory in bytes, gpus as ``{model: count}``, pods as pod slots
(every replica needs exactly one), money in integer settlement-token base units per hour.
Constructors validate what the scheduler relies on and raise :class:`ValueError` naming the
field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from kommons.scheduler.selector import LabelSelector


def _frozen_counts(owner: str, name: str, counts: Mapping[str, int]) -> Mapping[str, int]:
    for key, value in counts.items():
        if value < 0:
            raise ValueError(f"{owner}.{name}[{key!r}] must be >= 0, got {value}")
    return MappingProxyType(dict(sorted(counts.items())))


def _non_negative(owner: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{owner}.{name} must be >= 0, got {value}")


class Strategy(StrEnum):
    """How a pool ranks feasible providers (``ProviderPool.spec.strategy``)."""

    LOWEST_PRICE = "LowestPrice"
    """Cheapest replica-hour first."""
    SPREAD = "Spread"
    """Most headroom first, and replicas round-robin across providers."""
    BIN_PACK = "BinPack"
    """Least headroom first: fill providers up before touching new ones."""
    BALANCED = "Balanced"
    """Weighted blend of price, reputation and headroom (see :mod:`.scoring`)."""


@dataclass(frozen=True)
class Resources:
    """An amount of schedulable resources (free capacity or a reservation)."""

    cpu_milli: int = 0
    """Cpu in millicores."""
    memory_bytes: int = 0
    """Memory in bytes."""
    gpus: Mapping[str, int] = field(default_factory=dict)
    """Gpus by model (``nvidia.com/gpu.product``)."""
    pods: int = 0
    """Pod slots (the nodes' ``pods`` allowance); every replica needs exactly one."""

    def __post_init__(self) -> None:
        _non_negative(
            "Resources", cpu_milli=self.cpu_milli, memory_bytes=self.memory_bytes, pods=self.pods
        )
        object.__setattr__(self, "gpus", _frozen_counts("Resources", "gpus", self.gpus))

    def minus(self, other: Resources) -> Resources:
        """Subtract ``other``, clamping every dimension at zero."""
        gpus = {m: max(0, n - other.gpus.get(m, 0)) for m, n in self.gpus.items()}
        return Resources(
            cpu_milli=max(0, self.cpu_milli - other.cpu_milli),
            memory_bytes=max(0, self.memory_bytes - other.memory_bytes),
            gpus=gpus,
            pods=max(0, self.pods - other.pods),
        )

    def plus(self, other: Resources) -> Resources:
        """Add ``other`` in every dimension."""
        gpus = dict(self.gpus)
        for model, count in other.gpus.items():
            gpus[model] = gpus.get(model, 0) + count
        return Resources(
            cpu_milli=self.cpu_milli + other.cpu_milli,
            memory_bytes=self.memory_bytes + other.memory_bytes,
            gpus=gpus,
            pods=self.pods + other.pods,
        )


@dataclass(frozen=True)
class Pricing:
    """A provider's prices in base units per hour."""

    cpu_core_hour: int = 0
    """Price of one cpu core for one hour."""
    memory_gib_hour: int = 0
    """Price of one GiB of memory for one hour."""
    gpu_hour: Mapping[str, int] = field(default_factory=dict)
    """Price of one gpu for one hour, by model. A model without a price is not offered."""

    def __post_init__(self) -> None:
        _non_negative(
            "Pricing", cpu_core_hour=self.cpu_core_hour, memory_gib_hour=self.memory_gib_hour
        )
        object.__setattr__(self, "gpu_hour", _frozen_counts("Pricing", "gpu_hour", self.gpu_hour))


@dataclass(frozen=True, kw_only=True)
class ProviderView:
    """What the hub knows about one provider when it schedules."""

    name: str
    """``Provider`` name; unique among the providers given to one decision."""
    region: str
    """``Provider.spec.region``."""
    available: Resources
    """Free capacity within the offer, as last reported by the agent (``pods`` = free pod
    slots of its Ready schedulable nodes)."""
    pricing: Pricing
    """``Provider.spec.pricing`` converted to base units."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The ``Provider``'s labels, matched by the pool's selector."""
    ready: bool = True
    """Whether the provider may receive placements (heartbeating, phase Ready)."""
    phase: str = "Ready"
    """``Provider.status.phase``; quoted in the rejection reason when not ready."""
    cordoned: bool = False
    """``Provider.spec.cordoned``: no new placements."""
    reputation: float = 1.0
    """``Provider.status.reputation.score`` in ``[0, 1]``."""
    observed_at: float = 0.0
    """When the hub observed the inventory report behind ``available`` (seconds, the hub's
    clock, the same clock as reservation times)."""
    accounted: frozenset[str] = frozenset()
    """Placement keys the report says it already includes (optional, see reservations)."""
    publish_mode: str = "None"
    """``Provider.spec.expose.mode``: how it publishes public ports (``None``: not at all)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ProviderView.name must not be empty")
        if not 0.0 <= self.reputation <= 1.0:
            raise ValueError(f"ProviderView.reputation must be in [0, 1], got {self.reputation}")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "accounted", frozenset(self.accounted))


@dataclass(frozen=True, kw_only=True)
class ReplicaResources:
    """What one replica of a lease reserves (and is billed for)."""

    cpu_milli: int
    """Cpu in millicores; > 0."""
    memory_bytes: int
    """Memory in bytes; > 0."""
    gpu_count: int = 0
    """Gpus per replica."""
    gpu_model: str | None = None
    """Required gpu model; ``None`` with ``gpu_count > 0`` takes the provider's cheapest."""

    def __post_init__(self) -> None:
        if self.cpu_milli <= 0 or self.memory_bytes <= 0:
            raise ValueError(
                "ReplicaResources.cpu_milli and memory_bytes must be > 0, got "
                f"{self.cpu_milli}, {self.memory_bytes}"
            )
        _non_negative("ReplicaResources", gpu_count=self.gpu_count)

    def as_resources(self, replicas: int, gpu_model: str | None) -> Resources:
        """Resources of ``replicas`` replicas using gpus of ``gpu_model`` (one pod each)."""
        gpus = {gpu_model: self.gpu_count * replicas} if gpu_model and self.gpu_count else {}
        return Resources(
            cpu_milli=self.cpu_milli * replicas,
            memory_bytes=self.memory_bytes * replicas,
            gpus=gpus,
            pods=replicas,
        )


@dataclass(frozen=True, kw_only=True)
class LeaseRequest:
    """The part of a ``ComputeLease`` the scheduler needs."""

    key: str
    """``namespace/name`` of the lease."""
    replicas: int
    """Desired replicas (``spec.replicas``)."""
    resources: ReplicaResources
    """Per-replica resources (``spec.resources``)."""
    max_price_per_hour: int | None = None
    """Most the tenant pays for ONE replica for one hour, in base units
    (``spec.maxPricePerHour``); ``None`` means no cap."""
    regions: frozenset[str] = frozenset()
    """Allowed regions (``spec.placement.regions``); empty means any."""
    providers: frozenset[str] = frozenset()
    """Allowed providers (``spec.placement.providers``); empty means any."""
    spread: bool = False
    """``spec.placement.spread``: replicas across distinct providers where possible."""
    public_protocols: frozenset[str] = frozenset()
    """Protocols (``TCP``, ``UDP``) of the lease's ``public: true`` exposed ports."""

    def __post_init__(self) -> None:
        _non_negative("LeaseRequest", replicas=self.replicas)
        if self.max_price_per_hour is not None:
            _non_negative("LeaseRequest", max_price_per_hour=self.max_price_per_hour)
        object.__setattr__(self, "regions", frozenset(self.regions))
        object.__setattr__(self, "providers", frozenset(self.providers))
        object.__setattr__(self, "public_protocols", frozenset(self.public_protocols))


@dataclass(frozen=True, kw_only=True)
class PoolPolicy:
    """The part of a ``ProviderPool`` the scheduler needs."""

    strategy: Strategy = Strategy.LOWEST_PRICE
    """Ranking strategy (``spec.strategy``)."""
    selector: LabelSelector | None = None
    """``spec.providerSelector``; ``None`` or empty selects every provider given."""
    regions: frozenset[str] = frozenset()
    """``spec.regions``; empty means any."""
    min_reputation: float = 0.0
    """``spec.minReputation`` in ``[0, 1]``."""

    def admits(self, labels: Mapping[str, str], region: str) -> bool:
        """Whether the selector and regions admit a provider (its health and price aside)."""
        if self.selector is not None and not self.selector.matches(labels):
            return False
        return not self.regions or region in self.regions

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "regions", frozenset(self.regions))
        if not 0.0 <= self.min_reputation <= 1.0:
            raise ValueError(
                f"PoolPolicy.min_reputation must be in [0, 1], got {self.min_reputation}"
            )
