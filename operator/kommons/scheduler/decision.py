"""The scheduler's output and its rendering for ``ComputeLease.status.decision``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kommons.scheduler.money import DEFAULT_DECIMALS, format_price


@dataclass(frozen=True)
class Placement:
    """Replicas of one lease placed on one provider by one decision."""

    provider: str
    """Provider name."""
    replicas: int
    """Replicas newly placed there."""
    price_per_hour: int
    """Locked price of ONE replica for one hour, in base units."""
    gpu_model: str | None = None
    """Gpu model the replicas use there (``None`` without gpus)."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Outcome of one scheduling decision for one lease.

    The scheduler places all missing replicas or none: ``scheduled`` is False exactly when
    ``chosen`` is empty while replicas were missing.
    """

    lease: str
    """``namespace/name`` of the lease."""
    wanted: int
    """Replicas this decision had to place (desired minus already placed)."""
    considered: int
    """Providers looked at (every provider handed to the scheduler)."""
    feasible: int
    """Providers that passed every filter."""
    chosen: tuple[Placement, ...] = ()
    """Where the replicas go, best-ranked first."""
    rejected: Mapping[str, str] = field(default_factory=dict)
    """Reason of the first failing filter, for every provider that failed one."""
    scheduled: bool = False
    """True when all ``wanted`` replicas are placed (trivially when ``wanted`` is 0)."""
    message: str = ""
    """One-line human summary, for the ``Scheduled`` condition, Events and logs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejected", MappingProxyType(dict(self.rejected)))
        object.__setattr__(self, "chosen", tuple(self.chosen))

    @property
    def placed(self) -> int:
        """Replicas placed by this decision."""
        return sum(p.replicas for p in self.chosen)

    def to_status(self, *, decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
        """Render as ``ComputeLease.status.decision`` (camelCase, money as decimal strings).

        Args:
            decimals: Base-unit decimals of the settlement token.

        Returns:
            ``{"considered", "feasible", "chosen": [{"provider", "replicas", "pricePerHour"}],
            "rejected": {provider: reason}}``; ``pricePerHour`` is per replica.
        """
        return {
            "considered": self.considered,
            "feasible": self.feasible,
            "chosen": [
                {
                    "provider": p.provider,
                    "replicas": p.replicas,
                    "pricePerHour": format_price(p.price_per_hour, decimals=decimals),
                }
                for p in self.chosen
            ],
            "rejected": dict(self.rejected),
        }
