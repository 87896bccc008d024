"""What an epoch charges (pure): Σ usage amounts per (billing account, provider)."""

from __future__ import annotations

from collections.abc import Iterable

from kommons.api import ComputeLease
from kommons.money import DEFAULT_DECIMALS, parse_units

__all__ = ["ChargeKey", "epoch_charges"]

ChargeKey = tuple[str, str]
"""(BillingAccount name, Provider name): one Merkle leaf."""


def epoch_charges(
    leases: Iterable[ComputeLease], epoch_id: int, *, decimals: int = DEFAULT_DECIMALS
) -> dict[ChargeKey, int]:
    """Sum the ``status.usage`` entries of epoch ``epoch_id`` per (billing account, provider).

    Args:
        leases: Every ComputeLease (all namespaces), as read when sealing.
        epoch_id: The epoch sealed.
        decimals: Fractional digits of the settlement token.

    Returns:
        Amounts in token base units; zero sums are dropped (no leaf pays nothing).

    Raises:
        ValueError: if a usage amount is not an exact decimal of the token (names the lease).
    """
    totals: dict[ChargeKey, int] = {}
    for lease in leases:
        usage = lease.status.usage if lease.status is not None else None
        for entry in usage or []:
            if entry.epoch_id != epoch_id:
                continue
            try:
                units = parse_units(entry.amount, decimals=decimals)
            except ValueError as exc:
                where = f"{lease.metadata.namespace}/{lease.metadata.name}"
                raise ValueError(f"ComputeLease {where} status.usage amount: {exc}") from exc
            key = (entry.billing_account, entry.provider)
            totals[key] = totals.get(key, 0) + units
    return {key: amount for key, amount in totals.items() if amount > 0}
