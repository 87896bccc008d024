"""Money and quantity arithmetic: exact integers in, exact strings out.

Money is an ``int`` of settlement-token base units everywhere inside the scheduler. A token
with ``decimals=6`` has one million base units per token, so ``1_500_000`` renders as ``"1.50"``.
Prices are quoted per hour: cpu per core-hour, memory per GiB-hour, gpus per gpu-hour.
Parsing and formatting come from :mod:`kommons.money` (one implementation for the project);
this module adds the replica price and the renderings used in rejection reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from kommons.money import DEFAULT_DECIMALS, format_units, parse_units

__all__ = [
    "BYTES_PER_GIB",
    "DEFAULT_DECIMALS",
    "MILLI_PER_CORE",
    "format_bytes",
    "format_price",
    "format_units",
    "parse_units",
    "replica_price",
]

MILLI_PER_CORE: Final = 1000
"""Millicores in one cpu core."""

BYTES_PER_GIB: Final = 1 << 30
"""Bytes in one GiB (memory is priced per GiB-hour)."""

_BINARY_SUFFIXES: Final = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def format_price(amount: int, *, decimals: int = DEFAULT_DECIMALS) -> str:
    """Render base units as an exact decimal string with at least two fraction digits.

    Args:
        amount: Amount in base units.
        decimals: Base-unit decimals of the settlement token.

    Returns:
        For example ``"1.2345"`` for ``1_234_500`` and ``"1.00"`` for ``1_000_000``.
    """
    return format_units(amount, decimals=decimals, min_fraction=min(2, decimals))


def format_bytes(amount: int) -> str:
    """Render bytes as a Kubernetes quantity using the largest exact binary suffix.

    Args:
        amount: Number of bytes.

    Returns:
        For example ``"2Gi"``, ``"1536Mi"`` or ``"1000"`` (plain bytes when no suffix divides).
    """
    for suffix, size in _BINARY_SUFFIXES:
        if amount != 0 and amount % size == 0:
            return f"{amount // size}{suffix}"
    return str(amount)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def replica_price(
    *,
    cpu_milli: int,
    memory_bytes: int,
    gpu_count: int,
    cpu_core_hour: int,
    memory_gib_hour: int,
    gpu_hour: int,
    storage: Iterable[tuple[int, int]] = (),
    multiplier: tuple[int, int] = (1, 1),
) -> int:
    """Price of one replica for one hour, in base units, rounded up once.

    The exact price is the rational number
    ``cpu_milli/1000 * cpu_core_hour + memory_bytes/2**30 * memory_gib_hour
    + gpu_count * gpu_hour + sum(storage_bytes/2**30 * storage_gib_hour)``. It is computed
    over the common denominator ``1000 * 2**30`` and rounded up to the next base unit once,
    so a provider never earns less than its quoted prices and a tenant never pays more than
    one base unit above them per replica-hour. A ``multiplier`` ``(a, b)`` (a dynamic price,
    see :mod:`.quote`) scales the exact price, storage included, by ``a/b`` before that
    single rounding.

    Args:
        cpu_milli: Cpu of one replica in millicores.
        memory_bytes: Memory of one replica in bytes.
        gpu_count: Gpus of one replica.
        cpu_core_hour: Provider's price per core-hour in base units.
        memory_gib_hour: Provider's price per GiB-hour in base units.
        gpu_hour: Provider's price per gpu-hour of the replica's gpu model (0 without gpus).
        storage: ``(bytes, price per GiB-hour)`` of each storage tier of one replica.
        multiplier: Factor ``(numerator, denominator)`` applied to the exact price; both > 0.

    Returns:
        The price in base units per replica-hour.
    """
    denominator = MILLI_PER_CORE * BYTES_PER_GIB
    numerator = (
        cpu_milli * cpu_core_hour * BYTES_PER_GIB
        + memory_bytes * memory_gib_hour * MILLI_PER_CORE
        + sum(size * price for size, price in storage) * MILLI_PER_CORE
    )
    if multiplier == (1, 1):
        return _ceil_div(numerator, denominator) + gpu_count * gpu_hour
    times, per = multiplier
    numerator = (numerator + gpu_count * gpu_hour * denominator) * times
    return _ceil_div(numerator, denominator * per)
