"""Kubernetes resource quantities, parsed with the client library's helper (never by hand)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from kubernetes.utils.quantity import parse_quantity as _parse_quantity

__all__ = [
    "GIB",
    "is_positive_quantity",
    "parse_quantity",
    "to_bytes",
    "to_cores",
    "to_count",
    "to_gib",
    "to_millicores",
]

GIB = Decimal(1024**3)
"""Bytes in one GiB."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """Parse a Kubernetes quantity (``500m``, ``2``, ``16Gi``, ``1e3``) into a Decimal.

    Args:
        value: the quantity as written in a manifest.

    Returns:
        The value in base units (cores, bytes ...).

    Raises:
        ValueError: if ``value`` is not a quantity.
    """
    try:
        return Decimal(_parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"invalid quantity {value!r}: {exc}") from exc


def is_positive_quantity(value: str) -> bool:
    """Return whether ``value`` is a well-formed quantity strictly greater than zero."""
    try:
        return parse_quantity(value) > 0
    except ValueError:
        return False


def to_cores(value: str) -> Decimal:
    """Return a cpu quantity in cores (``"500m"`` → ``0.5``)."""
    return parse_quantity(value)


def to_gib(value: str) -> Decimal:
    """Return a memory or storage quantity in GiB (``"512Mi"`` → ``0.5``)."""
    return parse_quantity(value) / GIB


def to_millicores(value: str | int) -> int:
    """A cpu quantity in whole millicores, rounded up (a request never counts for less)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def to_bytes(value: str | int) -> int:
    """A memory quantity in whole bytes, rounded up."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def to_count(value: str | int) -> int:
    """A count quantity (``nvidia.com/gpu``) as a whole number, rounded down."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_FLOOR))
