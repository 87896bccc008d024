"""Filters: can this provider take at least one replica of this lease, and if not, why.

Filters run in a fixed order and the first one that fails gives the provider's rejection
reason (the order is the table in ``docs/scheduling.md``). A provider passing them all is
*feasible* and comes out as a :class:`Candidate` with everything the ranking needs. Every
reason has a :class:`RejectionKind`, the short stable word decisions count rejections by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from kommons.scheduler.model import LeaseRequest, PoolPolicy, ProviderView, Resources
from kommons.scheduler.money import format_bytes, format_price
from kommons.scheduler.quote import MULTIPLIER_ONE, provider_quote

Formatter = Callable[[int], str]
"""Renders an amount of base units for a reason, e.g. ``functools.partial(format_price,
decimals=18)``."""


class RejectionKind(StrEnum):
    """Kind of a rejection reason, in filter order (``Decision.rejected_counts`` keys)."""

    NOT_SELECTED = "NotSelected"
    NOT_READY = "NotReady"
    CORDONED = "Cordoned"
    REGION = "Region"
    NOT_ALLOWED = "NotAllowed"
    EXCLUDED = "Excluded"
    REPUTATION = "Reputation"
    PUBLISHING = "PortNotPublishable"
    GPU = "Gpu"
    STORAGE_TIER = "StorageTier"
    PRICE = "Price"
    INSUFFICIENT_GPU = "InsufficientGpu"
    INSUFFICIENT_CPU = "InsufficientCpu"
    INSUFFICIENT_MEMORY = "InsufficientMemory"
    INSUFFICIENT_STORAGE = "InsufficientStorage"
    INSUFFICIENT_PODS = "InsufficientPods"


KIND_ORDER: dict[RejectionKind, int] = {kind: i for i, kind in enumerate(RejectionKind)}
"""Position of each kind in filter order (ties between equal counts are broken by it)."""


@dataclass(frozen=True)
class Candidate:
    """A feasible provider, with what the ranking and the allocation need."""

    view: ProviderView
    """The provider."""
    free: Resources
    """Effective free capacity (report minus unreflected reservations)."""
    gpu_model: str | None
    """Gpu model replicas would use there (``None`` without gpus)."""
    price: int
    """Price of one replica-hour there, in base units (the quote, see :mod:`.quote`)."""
    slots: int
    """Replicas of this lease that fit in ``free``; at least 1."""
    list_price: int = 0
    """List price of one replica-hour there (``price`` before the multiplier)."""
    multiplier: int = MULTIPLIER_ONE
    """Utilisation multiplier in ten-thousandths (``MULTIPLIER_ONE``: list price)."""

    @property
    def name(self) -> str:
        """Provider name."""
        return self.view.name


@dataclass(frozen=True, kw_only=True)
class FilterContext:
    """What the filters need besides the provider."""

    lease: LeaseRequest
    """The lease being placed."""
    pool: PoolPolicy
    """The lease's pool."""
    exclude: frozenset[str] = frozenset()
    """Providers to avoid in this decision (e.g. the one being failed over)."""
    money: Formatter = format_price
    """Formatter of prices in reasons."""


def _names(items: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(items)) + "]"


def _ratio(value: float, bound: float) -> str:
    """Format ``value < bound`` with enough digits that the two never look equal."""
    for places in (2, 4, 6):
        left, right = f"{value:.{places}f}", f"{bound:.{places}f}"
        if left != right:
            return f"{left} < {right}"
    return f"{value!r} < {bound!r}"


def fit_count(free: Resources, lease: LeaseRequest, gpu_model: str | None) -> int:
    """How many replicas of ``lease`` fit into ``free`` using gpus of ``gpu_model``.

    Every replica needs its cpu, memory and gpus and exactly one pod slot.
    """
    need = lease.resources
    fits = min(free.cpu_milli // need.cpu_milli, free.memory_bytes // need.memory_bytes, free.pods)
    if need.gpu_count:
        fits = min(fits, free.gpus.get(gpu_model, 0) // need.gpu_count if gpu_model else 0)
    for tier, size in need.storage.items():
        fits = min(fits, free.storage.get(tier, 0) // size)
    return fits


def short_storage_tier(free: Resources, lease: LeaseRequest) -> str | None:
    """The first tier (by name) whose free storage cannot hold one replica's volumes."""
    for tier, size in sorted(lease.resources.storage.items()):
        if free.storage.get(tier, 0) < size:
            return tier
    return None


def storage_tier_reason(view: ProviderView, lease: LeaseRequest) -> str | None:
    """Why the provider does not offer a storage tier the lease asks for (``None``: it does).

    A tier is offered when the provider prices it (``storageGiBHour``) and its agent reports
    capacity for it (``status.available.storage``).
    """
    offered = set(view.pricing.storage_gib_hour) & set(view.available.storage)
    missing = sorted(set(lease.resources.storage) - offered)
    if not missing:
        return None
    listing = ", ".join(sorted(offered)) or "none"
    return f"no storage tier {', '.join(missing)} (has: {listing})"


def _resolve_gpu_model(view: ProviderView, free: Resources, lease: LeaseRequest) -> str | None:
    """Pick the gpu model for a lease that asks for gpus without naming a model.

    The model with the cheapest list price and room for one replica wins (ties by name); if none has
    room, the cheapest priced model (the capacity filter then explains); ``None`` if the
    provider prices no gpu at all.
    """
    need = lease.resources.gpu_count
    priced = sorted(view.pricing.gpu_hour.items(), key=lambda item: (item[1], item[0]))
    with_room = [model for model, _ in priced if free.gpus.get(model, 0) >= need]
    if with_room:
        return with_room[0]
    return priced[0][0] if priced else None


def _gpu_reason(view: ProviderView, free: Resources, model: str | None, wanted: str) -> str:
    has = set(view.pricing.gpu_hour) | {m for m, n in free.gpus.items() if n > 0}
    has |= {m for m, n in view.available.gpus.items() if n > 0}
    listing = ", ".join(sorted(has)) or "none"
    if model is not None and model in has:
        return f"gpu {model} offered without a price"
    if model is None and has:
        return f"no gpu with a price (has: {listing})"
    return f"no gpu {wanted}(has: {listing})"


EXCLUDED_REASON: Final = "excluded from this decision (being replaced)"
"""Reason of a provider in the decision's ``exclude``."""


def price_reason(price: int, max_price: int, money: Formatter) -> str:
    """Reason of a provider whose replica price is above the lease's maximum."""
    return f"price {money(price)}/h > max {money(max_price)}/h"


def shortage_reason(
    kind: RejectionKind, have: int, lease: LeaseRequest, gpu_model: str | None
) -> str:
    """Reason of a capacity rejection of ``kind`` with ``have`` free in that dimension."""
    need = lease.resources
    if kind is RejectionKind.INSUFFICIENT_GPU:
        return f"insufficient gpu {gpu_model} ({have} < {need.gpu_count})"
    if kind is RejectionKind.INSUFFICIENT_CPU:
        return f"insufficient cpu ({have}m free < {need.cpu_milli}m)"
    if kind is RejectionKind.INSUFFICIENT_MEMORY:
        return (
            f"insufficient memory ({format_bytes(have)} free < {format_bytes(need.memory_bytes)})"
        )
    return f"insufficient pods ({have} free < 1)"


def storage_shortage_reason(tier: str, have: int, lease: LeaseRequest) -> str:
    """Reason of an ``InsufficientStorage`` rejection: ``have`` bytes free in ``tier``."""
    need = lease.resources.storage[tier]
    return f"insufficient storage {tier} ({format_bytes(have)} free < {format_bytes(need)})"


def capacity_reason(
    free: Resources, lease: LeaseRequest, gpu_model: str | None
) -> tuple[RejectionKind, str]:
    """Why not even one replica fits: the first short of gpu, cpu, memory, storage, pods.

    Args:
        free: Effective free capacity (no replica fits into it).
        lease: The lease.
        gpu_model: Gpu model the replicas would use (``None`` without gpus).

    Returns:
        The kind and the human-readable reason.
    """
    need = lease.resources
    if need.gpu_count and gpu_model and free.gpus.get(gpu_model, 0) < need.gpu_count:
        kind, have = RejectionKind.INSUFFICIENT_GPU, free.gpus.get(gpu_model, 0)
    elif free.cpu_milli < need.cpu_milli:
        kind, have = RejectionKind.INSUFFICIENT_CPU, free.cpu_milli
    elif free.memory_bytes < need.memory_bytes:
        kind, have = RejectionKind.INSUFFICIENT_MEMORY, free.memory_bytes
    elif (tier := short_storage_tier(free, lease)) is not None:
        have = free.storage.get(tier, 0)
        return RejectionKind.INSUFFICIENT_STORAGE, storage_shortage_reason(tier, have, lease)
    else:
        kind, have = RejectionKind.INSUFFICIENT_PODS, free.pods
    return kind, shortage_reason(kind, have, lease, gpu_model)


def publishing_reason(mode: str, protocols: frozenset[str]) -> str:
    """Why a provider publishing in ``mode`` cannot publish public ports of ``protocols``."""
    if not protocols:
        return ""
    if mode == "None":
        return "publishes no public ports (expose.mode None)"
    if mode == "Ingress" and protocols - {"TCP"}:
        return "publishes through an Ingress (HTTP over TCP): no public UDP port"
    return ""


def evaluate(view: ProviderView, free: Resources, ctx: FilterContext) -> Candidate | str:
    """Run every filter on one provider.

    Args:
        view: The provider.
        free: Its effective free capacity (see :func:`.reservations.effective_available`).
        ctx: The lease, pool, exclusions and money formatter.

    Returns:
        A :class:`Candidate` if the provider can take at least one replica, otherwise the
        human-readable reason of the first filter that failed.
    """
    outcome = classify(view, free, ctx)
    return outcome if isinstance(outcome, Candidate) else outcome[1]


def classify(
    view: ProviderView, free: Resources, ctx: FilterContext
) -> Candidate | tuple[RejectionKind, str]:
    """Run every filter on one provider, as :func:`evaluate`, with the rejection's kind.

    Args:
        view: The provider.
        free: Its effective free capacity.
        ctx: The lease, pool, exclusions and money formatter.

    Returns:
        A :class:`Candidate`, or the kind and reason of the first filter that failed.
    """
    lease, pool = ctx.lease, ctx.pool
    if pool.selector is not None and not pool.selector.matches(view.labels):
        return RejectionKind.NOT_SELECTED, "not selected by pool"
    if not view.ready:
        return RejectionKind.NOT_READY, f"not ready (phase {view.phase})"
    if view.cordoned:
        return RejectionKind.CORDONED, "cordoned"
    if pool.regions and view.region not in pool.regions:
        return (
            RejectionKind.REGION,
            f"region {view.region} not in pool regions {_names(pool.regions)}",
        )
    if lease.regions and view.region not in lease.regions:
        return RejectionKind.REGION, f"region {view.region} not in {_names(lease.regions)}"
    if lease.providers and view.name not in lease.providers:
        return RejectionKind.NOT_ALLOWED, "not in the lease's provider allow-list"
    if view.name in ctx.exclude:
        return RejectionKind.EXCLUDED, EXCLUDED_REASON
    if view.reputation < pool.min_reputation:
        return (
            RejectionKind.REPUTATION,
            f"reputation {_ratio(view.reputation, pool.min_reputation)}",
        )

    publishing = publishing_reason(view.publish_mode, lease.public_protocols)
    if publishing:
        return RejectionKind.PUBLISHING, publishing

    need = lease.resources
    gpu_model: str | None = None
    if need.gpu_count:
        gpu_model = need.gpu_model or _resolve_gpu_model(view, free, lease)
        if gpu_model is None or gpu_model not in view.pricing.gpu_hour:
            wanted = f"{need.gpu_model} " if need.gpu_model else ""
            return RejectionKind.GPU, _gpu_reason(view, free, gpu_model, wanted)
    if need.storage:
        tier_reason = storage_tier_reason(view, lease)
        if tier_reason is not None:
            return RejectionKind.STORAGE_TIER, tier_reason

    quoted = provider_quote(
        view,
        need,
        gpu_model,
        free_cpu=free.cpu_milli,
        free_memory=free.memory_bytes,
        free_gpus=free.gpus,
    )
    price = quoted.price
    if lease.max_price_per_hour is not None and price > lease.max_price_per_hour:
        return RejectionKind.PRICE, price_reason(price, lease.max_price_per_hour, ctx.money)

    slots = fit_count(free, lease, gpu_model)
    if slots < 1:
        return capacity_reason(free, lease, gpu_model)
    return Candidate(
        view=view,
        free=free,
        gpu_model=gpu_model,
        price=price,
        slots=slots,
        list_price=quoted.list_price,
        multiplier=quoted.multiplier,
    )
