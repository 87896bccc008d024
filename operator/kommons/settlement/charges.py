"""What an epoch charges (pure): Σ usage amounts per (billing account, provider)."""

from __future__ import annotations

from collections.abc import Iterable

from kommons.api import ComputeLease, DepartedUsage
from kommons.money import DEFAULT_DECIMALS, parse_units

__all__ = ["ChargeKey", "epoch_charges"]

ChargeKey = tuple[str, str]
"""(BillingAccount name, Provider name): one Merkle leaf."""


def epoch_charges(
    leases: Iterable[ComputeLease],
    epoch_id: int,
    *,
    departed: Iterable[DepartedUsage] = (),
    decimals: int = DEFAULT_DECIMALS,
) -> dict[ChargeKey, int]:
    """Sum the usage of epoch ``epoch_id`` per (billing account, provider).

    Args:
        leases: Every ComputeLease (all namespaces), as read when sealing: their
            ``status.usage`` entries of the epoch.
        epoch_id: The epoch sealed.
        departed: The epoch's ``status.departed``: usage of leases deleted before the seal.
            An entry whose placement a lease still shows (the lease had not gone yet when it
            was read) is counted once, from the lease.
        decimals: Fractional digits of the settlement token.

    Returns:
        Amounts in token base units; zero sums are dropped (no leaf pays nothing).

    Raises:
        ValueError: if a usage amount is not an exact decimal of the token (names the lease).
    """
    totals: dict[ChargeKey, int] = {}
    counted: set[str] = set()

    def add(account: str, provider: str, amount: str, where: str) -> None:
        try:
            units = parse_units(amount, decimals=decimals)
        except ValueError as exc:
            raise ValueError(f"{where} amount: {exc}") from exc
        totals[(account, provider)] = totals.get((account, provider), 0) + units

    for lease in leases:
        usage = lease.status.usage if lease.status is not None else None
        for entry in usage or []:
            if entry.epoch_id != epoch_id:
                continue
            where = f"ComputeLease {lease.metadata.namespace}/{lease.metadata.name} status.usage"
            add(entry.billing_account, entry.provider, entry.amount, where)
            counted.add(entry.placement_uid)
    for gone in departed:
        if gone.placement_uid in counted:
            continue
        where = f"SettlementEpoch {epoch_id} status.departed ({gone.lease})"
        add(gone.billing_account, gone.provider, gone.amount, where)
        counted.add(gone.placement_uid)
    return {key: amount for key, amount in totals.items() if amount > 0}
