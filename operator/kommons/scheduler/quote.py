"""The price a provider quotes for one replica-hour at decision time (``pricing.policy``).

``Static`` providers quote their list price. ``Utilization`` providers multiply it by a factor
that rises linearly with the utilisation of the scarcest dimension the lease asks for:

    u = max over cpu, memory and (if the lease asks gpus) gpus of the model it would use of
        (ceiling - free) / ceiling, clamped to [0, 1]
    multiplier = 1 + (maxMultiplier - 1) * u, rounded UP to 1/10000

``ceiling`` is the provider's allocatable capped by its offer and ``free`` its effective free
capacity as the hub's market view holds it (the last report minus the holds of placements the
report does not reflect yet, so a burst sees its own reservations). A dimension with a zero
ceiling counts as full. The multiplier is an integer of ten-thousandths, between
:data:`MULTIPLIER_ONE` (idle) and ``maxMultiplier`` (full), and the quote is the exact list
price (storage included; storage does not enter ``u``) times it, rounded up to the next
base unit once (:func:`.money.replica_price`). Only
numbers the provider declared, validated by the hub, enter here: a provider cannot make the
hub run its code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from kommons.scheduler.model import ProviderView, ReplicaResources
from kommons.scheduler.money import replica_price

MULTIPLIER_ONE: Final = 10_000
"""A multiplier of 1, in the ten-thousandths multipliers are counted in."""

MAX_MULTIPLIER: Final = 10 * MULTIPLIER_ONE
"""The largest ``maxMultiplier`` the API admits (10)."""


@dataclass(frozen=True)
class Quote:
    """A replica-hour price and how it was made."""

    price: int
    """Quoted price of one replica-hour in base units (list price × multiplier, rounded up)."""
    list_price: int
    """List price of one replica-hour in base units (rounded up)."""
    multiplier: int = MULTIPLIER_ONE
    """Factor applied, in ten-thousandths (``MULTIPLIER_ONE`` = list price)."""


def _used(free: int, ceiling: int) -> tuple[int, int]:
    """Utilisation of one dimension as a fraction (numerator, denominator) in [0, 1]."""
    if ceiling <= 0:
        return 1, 1
    return min(ceiling, max(0, ceiling - free)), ceiling


def utilization_multiplier(
    max_multiplier: int,
    *,
    free_cpu: int,
    ceiling_cpu: int,
    free_memory: int,
    ceiling_memory: int,
    gpu_model: str | None = None,
    free_gpus: Mapping[str, int] | None = None,
    ceiling_gpus: Mapping[str, int] | None = None,
) -> int:
    """The multiplier of a ``Utilization`` provider, in ten-thousandths.

    Args:
        max_multiplier: ``maxMultiplier`` in ten-thousandths (>= ``MULTIPLIER_ONE``).
        free_cpu: Effective free cpu (millicores).
        ceiling_cpu: Allocatable cpu capped by the offer (millicores).
        free_memory: Effective free memory (bytes).
        ceiling_memory: Allocatable memory capped by the offer (bytes).
        gpu_model: Gpu model the lease would use there; ``None`` leaves gpus out.
        free_gpus: Effective free gpus by model.
        ceiling_gpus: Allocatable gpus by model, capped by the offer.

    Returns:
        ``1 + (max - 1) * u`` rounded up to a ten-thousandth, ``u`` the utilisation of the
        scarcest dimension; between ``MULTIPLIER_ONE`` and ``max_multiplier``.
    """
    if max_multiplier <= MULTIPLIER_ONE:
        return MULTIPLIER_ONE
    num, den = _used(free_cpu, ceiling_cpu)
    for n, d in (
        _used(free_memory, ceiling_memory),
        *(
            [_used((free_gpus or {}).get(gpu_model, 0), (ceiling_gpus or {}).get(gpu_model, 0))]
            if gpu_model is not None
            else []
        ),
    ):
        if n * den > num * d:
            num, den = n, d
    extra = -(-(max_multiplier - MULTIPLIER_ONE) * num // den)
    return MULTIPLIER_ONE + extra


def quote(
    *,
    cpu_milli: int,
    memory_bytes: int,
    gpu_count: int,
    cpu_core_hour: int,
    memory_gib_hour: int,
    gpu_hour: int,
    storage: Iterable[tuple[int, int]] = (),
    multiplier: int = MULTIPLIER_ONE,
) -> Quote:
    """List price and quoted price of one replica-hour (see :func:`.money.replica_price`).

    Args:
        cpu_milli: Cpu of one replica in millicores.
        memory_bytes: Memory of one replica in bytes.
        gpu_count: Gpus of one replica.
        cpu_core_hour: Price per core-hour in base units.
        memory_gib_hour: Price per GiB-hour in base units.
        gpu_hour: Price per gpu-hour of the replica's gpu model (0 without gpus).
        storage: ``(bytes, price per GiB-hour)`` of each storage tier of one replica.
        multiplier: Factor in ten-thousandths (>= ``MULTIPLIER_ONE``).

    Returns:
        The quote; ``price == list_price`` when ``multiplier`` is ``MULTIPLIER_ONE``.
    """
    volumes = tuple(storage)

    def at(times: int) -> int:
        return replica_price(
            cpu_milli=cpu_milli,
            memory_bytes=memory_bytes,
            gpu_count=gpu_count,
            cpu_core_hour=cpu_core_hour,
            memory_gib_hour=memory_gib_hour,
            gpu_hour=gpu_hour,
            storage=volumes,
            multiplier=(times, MULTIPLIER_ONE),
        )

    listed = at(MULTIPLIER_ONE)
    if multiplier == MULTIPLIER_ONE:
        return Quote(listed, listed)
    price = at(multiplier)
    return Quote(price, listed, multiplier)


def provider_quote(
    view: ProviderView,
    need: ReplicaResources,
    gpu_model: str | None,
    *,
    free_cpu: int,
    free_memory: int,
    free_gpus: Mapping[str, int],
) -> Quote:
    """What ``view`` quotes for one replica of ``need`` with its current free capacity.

    Args:
        view: The provider (its prices, policy and ceiling).
        need: One replica.
        gpu_model: Gpu model the replica would use there (``None`` without gpus); it must
            have a price when ``need`` asks gpus (and every storage tier ``need`` asks must
            have one: :func:`.filters.storage_tier_reason` checks it first).
        free_cpu: Effective free cpu (millicores).
        free_memory: Effective free memory (bytes).
        free_gpus: Effective free gpus by model.

    Returns:
        The quote (the list price for a static provider).
    """
    pricing = view.pricing
    multiplier = MULTIPLIER_ONE
    if pricing.dynamic:
        ceiling = view.ceiling
        multiplier = utilization_multiplier(
            pricing.max_multiplier,
            free_cpu=free_cpu,
            ceiling_cpu=ceiling.cpu_milli,
            free_memory=free_memory,
            ceiling_memory=ceiling.memory_bytes,
            gpu_model=gpu_model if need.gpu_count else None,
            free_gpus=free_gpus,
            ceiling_gpus=ceiling.gpus,
        )
    return quote(
        cpu_milli=need.cpu_milli,
        memory_bytes=need.memory_bytes,
        gpu_count=need.gpu_count,
        cpu_core_hour=pricing.cpu_core_hour,
        memory_gib_hour=pricing.memory_gib_hour,
        gpu_hour=pricing.gpu_hour[gpu_model] if need.gpu_count and gpu_model else 0,
        storage=[(size, pricing.storage_gib_hour[tier]) for tier, size in need.storage.items()],
        multiplier=multiplier,
    )


__all__ = [
    "MAX_MULTIPLIER",
    "MULTIPLIER_ONE",
    "Quote",
    "provider_quote",
    "quote",
    "utilization_multiplier",
]
