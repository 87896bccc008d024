"""Money: decimal strings on the wire, integer token base units inside.

The settlement token has ``decimals`` fractional digits (6 by default, like USDC), so
``"1.5"`` is ``1_500_000`` base units. Conversions are exact: a string with more fractional
digits than the token has is refused unless a rounding direction is asked for. Floats are
never involved.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "DEFAULT_DECIMALS",
    "format_units",
    "parse_units",
    "prorate",
]

DEFAULT_DECIMALS = 6
"""Fractional digits of the settlement token (USDC has 6)."""

_AMOUNT = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")

Rounding = Literal["exact", "down", "up"]


def parse_units(
    amount: str, *, decimals: int = DEFAULT_DECIMALS, rounding: Rounding = "exact"
) -> int:
    """Convert a non-negative decimal string to integer base units.

    Args:
        amount: e.g. ``"5.00"``, ``"0.000001"``, ``"12"``.
        decimals: fractional digits of the token.
        rounding: ``"exact"`` refuses digits beyond ``decimals``; ``"down"`` truncates them;
            ``"up"`` rounds up to the next base unit.

    Returns:
        The amount in base units.

    Raises:
        ValueError: if ``amount`` is not a plain non-negative decimal string, or it has more
            fractional digits than ``decimals`` and ``rounding`` is ``"exact"``.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    match = _AMOUNT.fullmatch(amount)
    if match is None:
        raise ValueError(f"invalid amount {amount!r}: expected a decimal string such as '5.00'")
    whole = int(match["int"])
    frac = match["frac"] or ""
    kept, dropped = frac[:decimals], frac[decimals:]
    scale: int = 10**decimals
    units = whole * scale + int(kept.ljust(decimals, "0") or "0")
    if dropped.strip("0"):
        if rounding == "exact":
            raise ValueError(
                f"amount {amount!r} has more than {decimals} fractional digits;"
                f" the token's smallest unit is 10^-{decimals}"
            )
        if rounding == "up":
            units += 1
    return units


def format_units(units: int, *, decimals: int = DEFAULT_DECIMALS, min_fraction: int = 0) -> str:
    """Render integer base units as the shortest exact decimal string.

    Args:
        units: amount in base units (may be negative).
        decimals: fractional digits of the token.
        min_fraction: pad the fraction to at least this many digits (``2`` gives ``"5.00"``).

    Returns:
        e.g. ``1_500_000`` → ``"1.5"``; ``0`` → ``"0"``.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    sign = "-" if units < 0 else ""
    scale: int = 10**decimals
    whole, frac = divmod(abs(units), scale)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    digits = digits.ljust(min_fraction, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def prorate(units_per_hour: int, seconds: int, *, quantity: int = 1, per: int = 1) -> int:
    """Return ``units_per_hour × seconds/3600 × quantity/per``, rounded down to a base unit.

    Use ``quantity``/``per`` for fractional resources, e.g. 500 millicores at a price per core:
    ``prorate(price, seconds, quantity=500, per=1000)``. Rounding down once, at the end, keeps
    amounts additive only when callers prorate cumulative counters (not each slice).

    Raises:
        ValueError: on negative inputs or ``per <= 0``.
    """
    if units_per_hour < 0 or seconds < 0 or quantity < 0 or per <= 0:
        raise ValueError("prorate needs non-negative amounts and a positive divisor")
    return units_per_hour * seconds * quantity // (3600 * per)
