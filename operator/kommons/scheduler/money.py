"""Money and quantity arithmetic: exact integers in, exact strings out.

Money is an ``int`` of settlement-token base units everywhere inside the scheduler. A token
with ``decimals=6`` has one million base units per token, so ``1_500_000`` renders as ``"1.50"``.
Prices are quoted per hour: cpu per core-hour, memory per GiB-hour, gpus per gpu-hour.
"""

from __future__ import annotations

from typing import Final

DEFAULT_DECIMALS: Final = 6
"""Base-unit decimals of the settlement token assumed when none is given."""

MILLI_PER_CORE: Final = 1000
"""Millicores in one cpu core."""

BYTES_PER_GIB: Final = 1 << 30
"""Bytes in one GiB (memory is priced per GiB-hour)."""

_BINARY_SUFFIXES: Final = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def format_units(amount: int, decimals: int = DEFAULT_DECIMALS, *, min_places: int = 2) -> str:
    """Render an integer amount of base units as an exact decimal string.

    Trailing zeros of the fraction are trimmed, but at least ``min_places`` fraction digits
    are kept (``min_places`` is capped at ``decimals``), so nothing is ever rounded away.

    Args:
        amount: Amount in base units; may be negative.
        decimals: Base-unit decimals of the token (``10**decimals`` base units = 1 token).
        min_places: Fraction digits always shown.

    Returns:
        The decimal string, e.g. ``format_units(1_234_500) == "1.2345"`` and
        ``format_units(1_000_000) == "1.00"``.

    Raises:
        ValueError: If ``decimals`` or ``min_places`` is negative.
    """
    if decimals < 0 or min_places < 0:
        raise ValueError(f"decimals and min_places must be >= 0, got {decimals}, {min_places}")
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    digits = str(frac).rjust(decimals, "0").rstrip("0")
    digits = digits.ljust(min(min_places, decimals), "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def parse_units(text: str, decimals: int = DEFAULT_DECIMALS) -> int:
    """Parse a non-negative decimal string into integer base units, exactly.

    Args:
        text: A decimal such as ``"5"``, ``"5.00"`` or ``"0.000001"``.
        decimals: Base-unit decimals of the token.

    Returns:
        The amount in base units.

    Raises:
        ValueError: If the string is not a plain non-negative decimal or has more fraction
            digits than ``decimals`` allows (it would not be representable exactly).
    """
    whole, dot, frac = text.strip().partition(".")
    if not whole.isdigit() or (dot and not frac.isdigit()) or not whole.isascii():
        raise ValueError(f"not a non-negative decimal string: {text!r}")
    if not frac.isascii() or len(frac.rstrip("0")) > decimals:
        raise ValueError(f"{text!r} has more than {decimals} fraction digits")
    frac = frac.rstrip("0")
    scale: int = 10**decimals
    return int(whole) * scale + (int(frac.ljust(decimals, "0")) if frac else 0)


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
) -> int:
    """Price of one replica for one hour, in base units, rounded up once.

    The exact price is the rational number
    ``cpu_milli/1000 * cpu_core_hour + memory_bytes/2**30 * memory_gib_hour
    + gpu_count * gpu_hour``. It is computed over the common denominator ``1000 * 2**30``
    and rounded up to the next base unit once, so a provider never earns less than its
    quoted prices and a tenant never pays more than one base unit above them per
    replica-hour.

    Args:
        cpu_milli: Cpu of one replica in millicores.
        memory_bytes: Memory of one replica in bytes.
        gpu_count: Gpus of one replica.
        cpu_core_hour: Provider's price per core-hour in base units.
        memory_gib_hour: Provider's price per GiB-hour in base units.
        gpu_hour: Provider's price per gpu-hour of the replica's gpu model (0 without gpus).

    Returns:
        The price in base units per replica-hour.
    """
    denominator = MILLI_PER_CORE * BYTES_PER_GIB
    numerator = (
        cpu_milli * cpu_core_hour * BYTES_PER_GIB + memory_bytes * memory_gib_hour * MILLI_PER_CORE
    )
    return _ceil_div(numerator, denominator) + gpu_count * gpu_hour
