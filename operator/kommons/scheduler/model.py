"""Inputs of the scheduler: small frozen dataclasses of integers, converted by the hub.

Units: cpu in millicores, memory in bytes, gpus as ``{model: count}``, pods as pod slots
(every replica needs exactly one), storage as ``{tier: bytes}``, money in integer
settlement-token base units per hour.
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
    storage: Mapping[str, int] = field(default_factory=dict)
    """Persistent storage in bytes by tier (a tier absent: none offered)."""

    def __post_init__(self) -> None:
        _non_negative(
            "Resources", cpu_milli=self.cpu_milli, memory_bytes=self.memory_bytes, pods=self.pods
        )
        object.__setattr__(self, "gpus", _frozen_counts("Resources", "gpus", self.gpus))
        object.__setattr__(self, "storage", _frozen_counts("Resources", "storage", self.storage))

    def minus(self, other: Resources) -> Resources:
        """Subtract ``other``, clamping every dimension at zero."""
        gpus = {m: max(0, n - other.gpus.get(m, 0)) for m, n in self.gpus.items()}
        storage = {t: max(0, n - other.storage.get(t, 0)) for t, n in self.storage.items()}
        return Resources(
            cpu_milli=max(0, self.cpu_milli - other.cpu_milli),
            memory_bytes=max(0, self.memory_bytes - other.memory_bytes),
            gpus=gpus,
            pods=max(0, self.pods - other.pods),
            storage=storage,
        )

    def plus(self, other: Resources) -> Resources:
        """Add ``other`` in every dimension."""
        gpus = dict(self.gpus)
        for model, count in other.gpus.items():
            gpus[model] = gpus.get(model, 0) + count
        storage = dict(self.storage)
        for tier, size in other.storage.items():
            storage[tier] = storage.get(tier, 0) + size
        return Resources(
            cpu_milli=self.cpu_milli + other.cpu_milli,
            memory_bytes=self.memory_bytes + other.memory_bytes,
            gpus=gpus,
            pods=self.pods + other.pods,
            storage=storage,
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
    storage_gib_hour: Mapping[str, int] = field(default_factory=dict)
    """Price of one GiB of storage for one hour, by tier. A tier without a price is not
    offered."""
    max_multiplier: int = 10_000
    """``policy.maxMultiplier`` of a ``Utilization`` provider in ten-thousandths; 10000
    (a multiplier of 1, and ``Static``) quotes list prices (see :mod:`.quote`)."""

    def __post_init__(self) -> None:
        _non_negative(
            "Pricing", cpu_core_hour=self.cpu_core_hour, memory_gib_hour=self.memory_gib_hour
        )
        if not 10_000 <= self.max_multiplier <= 100_000:
            raise ValueError(
                "Pricing.max_multiplier must be in [10000, 100000] (1 to 10), got "
                f"{self.max_multiplier}"
            )
        object.__setattr__(self, "gpu_hour", _frozen_counts("Pricing", "gpu_hour", self.gpu_hour))
        object.__setattr__(
            self,
            "storage_gib_hour",
            _frozen_counts("Pricing", "storage_gib_hour", self.storage_gib_hour),
        )

    @property
    def dynamic(self) -> bool:
        """Whether quotes depend on utilisation (``Utilization`` with maxMultiplier > 1)."""
        return self.max_multiplier > 10_000


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
    ceiling: Resources = field(default_factory=Resources)
    """Allocatable capped by the offer: what a ``Utilization`` provider's utilisation is
    measured against (unused for static prices)."""
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
    storage: Mapping[str, int] = field(default_factory=dict)
    """Persistent storage of one replica in bytes, by tier (the sum of its volumes there)."""

    def __post_init__(self) -> None:
        if self.cpu_milli <= 0 or self.memory_bytes <= 0:
            raise ValueError(
                "ReplicaResources.cpu_milli and memory_bytes must be > 0, got "
                f"{self.cpu_milli}, {self.memory_bytes}"
            )
        _non_negative("ReplicaResources", gpu_count=self.gpu_count)
        storage = _frozen_counts("ReplicaResources", "storage", self.storage)
        if any(size == 0 for size in storage.values()):
            raise ValueError(f"ReplicaResources.storage sizes must be > 0, got {dict(storage)}")
        object.__setattr__(self, "storage", storage)

    def as_resources(self, replicas: int, gpu_model: str | None) -> Resources:
        """Resources of ``replicas`` replicas using gpus of ``gpu_model`` (one pod each)."""
        gpus = {gpu_model: self.gpu_count * replicas} if gpu_model and self.gpu_count else {}
        return Resources(
            cpu_milli=self.cpu_milli * replicas,
            memory_bytes=self.memory_bytes * replicas,
            gpus=gpus,
            pods=replicas,
            storage={tier: size * replicas for tier, size in self.storage.items()},
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
