"""The scheduler's output and its rendering for ``ComputeLease.status.decision``.

A decision is bounded whatever the number of providers: it counts rejections by
:class:`.RejectionKind` over all providers and keeps at most :data:`MAX_REJECTED_SAMPLES`
provider → reason samples, picked by :func:`pick_samples`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from kommons.scheduler.filters import KIND_ORDER, Formatter, RejectionKind
from kommons.scheduler.money import DEFAULT_DECIMALS, format_price, format_units
from kommons.scheduler.quote import MULTIPLIER_ONE

MAX_REJECTED_SAMPLES: Final = 10
"""Provider → reason samples a decision keeps (``Decision.rejected``)."""

MESSAGE_REASONS: Final = 5
"""Rejection reasons (and chosen providers) quoted in a decision's one-line message."""


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
    list_price_per_hour: int | None = None
    """List price of one replica-hour there; ``None``: the same as ``price_per_hour``."""
    multiplier: int = MULTIPLIER_ONE
    """Utilisation multiplier of the provider's quote, in ten-thousandths (see
    :mod:`.quote`); ``MULTIPLIER_ONE``: the list price."""

    @property
    def multiplied(self) -> bool:
        """Whether the locked price is the list price times a multiplier above 1."""
        return self.multiplier > MULTIPLIER_ONE


def format_multiplier(multiplier: int) -> str:
    """Render a multiplier in ten-thousandths, e.g. ``"2.4063"`` or ``"3"``."""
    return format_units(multiplier, decimals=4)


def price_text(placement: Placement, money: Formatter = format_price) -> str:
    """The locked price of a placement, with list price × multiplier when multiplied.

    For example ``"0.01075/h"`` or ``"0.025868/h = 0.01075/h list × 2.4063"``.
    """
    text = f"{money(placement.price_per_hour)}/h"
    if placement.multiplied and placement.list_price_per_hour is not None:
        listed = money(placement.list_price_per_hour)
        text += f" = {listed}/h list × {format_multiplier(placement.multiplier)}"
    return text


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
    """Samples (at most :data:`MAX_REJECTED_SAMPLES`): provider → reason of the first filter
    it failed; every kind that occurred is sampled before any kind gets a second sample."""
    rejected_counts: Mapping[str, int] = field(default_factory=dict)
    """Rejected providers by :class:`.RejectionKind`, over ALL providers; most frequent
    first."""
    rejected_total: int = 0
    """Rejected providers in all (``considered - feasible``)."""
    scheduled: bool = False
    """True when all ``wanted`` replicas are placed (trivially when ``wanted`` is 0)."""
    message: str = ""
    """One-line human summary, for the ``Scheduled`` condition, Events and logs."""

    def __post_init__(self) -> None:
        if len(self.rejected) > MAX_REJECTED_SAMPLES:
            raise ValueError(
                f"Decision.rejected keeps at most {MAX_REJECTED_SAMPLES} samples, "
                f"got {len(self.rejected)}"
            )
        object.__setattr__(self, "rejected", MappingProxyType(dict(self.rejected)))
        object.__setattr__(self, "rejected_counts", MappingProxyType(dict(self.rejected_counts)))
        total = max(self.rejected_total, sum(self.rejected_counts.values()), len(self.rejected))
        object.__setattr__(self, "rejected_total", total)
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
            ... ``; a multiplied price adds ``listPricePerHour`` and ``priceMultiplier``;
            "rejected": {provider: reason} (at most 10 samples), "rejectedCounts": {kind: n}}``;
            ``pricePerHour`` is per replica.
        """
        chosen: list[dict[str, Any]] = []
        for p in self.chosen:
            entry: dict[str, Any] = {
                "provider": p.provider,
                "replicas": p.replicas,
                "pricePerHour": format_price(p.price_per_hour, decimals=decimals),
            }
            if p.multiplied and p.list_price_per_hour is not None:
                entry["listPricePerHour"] = format_price(p.list_price_per_hour, decimals=decimals)
                entry["priceMultiplier"] = format_multiplier(p.multiplier)
            chosen.append(entry)
        return {
            "considered": self.considered,
            "feasible": self.feasible,
            "chosen": chosen,
            "rejected": dict(self.rejected),
            "rejectedCounts": dict(self.rejected_counts),
        }


def pick_samples(
    first_names: Mapping[RejectionKind, Sequence[str]],
    counts: Mapping[RejectionKind, int],
    limit: int = MAX_REJECTED_SAMPLES,
) -> list[str]:
    """Choose which rejected providers a decision quotes.

    Kinds are visited most frequent first (filter order breaking ties) and round-robin: the
    first provider (by name) of every kind, then the second of every kind, and so on.

    Args:
        first_names: For every kind with a count, its rejected providers sorted by name (at
            least ``min(limit, count)`` of them).
        counts: Rejected providers by kind.
        limit: Most samples.

    Returns:
        Provider names, in the order they are quoted.
    """
    kinds = ordered_kinds(counts)
    picked: list[str] = []
    for depth in range(limit):
        for kind in kinds:
            names = first_names[kind]
            if depth < len(names) and depth < counts[kind]:
                picked.append(names[depth])
                if len(picked) == limit:
                    return picked
    return picked


def ordered_kinds(counts: Mapping[RejectionKind, int]) -> list[RejectionKind]:
    """Kinds with a positive count, most frequent first, filter order breaking ties."""
    return sorted(
        (k for k, n in counts.items() if n > 0), key=lambda k: (-counts[k], KIND_ORDER[k])
    )


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def _reasons(samples: Mapping[str, str], counts: Mapping[str, int], total: int) -> str:
    quoted = [f"{name}: {reason}" for name, reason in list(samples.items())[:MESSAGE_REASONS]]
    more = total - len(quoted)
    text = "; ".join([_counts_text(counts), *quoted])
    return text + (f"; and {more} more" if more else "")


def _where(placement: Placement, money: Formatter) -> str:
    if not placement.multiplied:
        return f"{placement.provider} ({placement.replicas})"
    return f"{placement.provider} ({placement.replicas} at {price_text(placement, money)})"


def build_decision(
    *,
    lease: str,
    wanted: int,
    considered: int,
    feasible: int,
    capacity: int,
    chosen: Sequence[Placement],
    counts: Mapping[RejectionKind, int],
    samples: Mapping[str, str],
    money: Formatter = format_price,
) -> Decision:
    """Assemble a :class:`Decision` and its one-line message (shared by every scheduler path).

    Args:
        lease: ``namespace/name`` of the lease.
        wanted: Replicas to place.
        considered: Providers looked at.
        feasible: Providers that passed every filter.
        capacity: Replicas the feasible providers could take together.
        chosen: Placements, best-ranked first (empty unless all ``wanted`` are placed).
        counts: Rejected providers by kind.
        samples: Quoted provider → reason, in :func:`pick_samples` order.
        money: Formats base units (a multiplied price is quoted with its list price).

    Returns:
        The decision.
    """
    ordered = {str(kind): counts[kind] for kind in ordered_kinds(counts)}
    total = sum(ordered.values())
    placed = tuple(chosen)
    ratio = f"{feasible}/{considered} providers feasible"
    if wanted == 0:
        message = f"no replicas missing; {ratio}"
    elif placed:
        where = ", ".join(_where(p, money) for p in placed[:MESSAGE_REASONS])
        if len(placed) > MESSAGE_REASONS:
            where += f" and {len(placed) - MESSAGE_REASONS} more provider(s)"
        message = f"placed {wanted} replica(s) on {where}; {ratio}"
    elif feasible == 0:
        message = f"{ratio}: {_reasons(samples, ordered, total)}" if total else ratio
    else:
        message = f"{ratio} but they fit only {capacity} of {wanted} replica(s) (all or nothing)"
        if total:
            message = f"{message}; rejected: {_reasons(samples, ordered, total)}"
    return Decision(
        lease=lease,
        wanted=wanted,
        considered=considered,
        feasible=feasible,
        chosen=placed,
        rejected=samples,
        rejected_counts=ordered,
        rejected_total=total,
        scheduled=wanted == 0 or bool(placed),
        message=message,
    )
