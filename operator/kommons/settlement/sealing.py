"""Sealing an epoch (pure): charges + addresses → Merkle leaves, root, total and proofs.

One leaf per (escrow address, payout address) with a non-zero amount:
``(epochId, payer = BillingAccount.spec.address, provider = Provider.spec.payoutAddress,
amount in base units)``. The contract pays each (epoch, payer, provider) once, so accounts that
share an escrow address (one tenant, several accounts) or providers that share a payout address
(one operator, several clusters) are summed into one leaf, which names all of them
(``acme,acme-batch``); a misconfiguration of one party never blocks the others' settlement.
An account or provider that is charged but gone (or has no address) stops the seal, naming it:
its amount would otherwise be lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kommons.settlement.charges import ChargeKey
from kommons.settlement.merkle import LeafValue, build_tree

__all__ = ["MAX_LEAVES_WITH_PROOFS", "Seal", "SealError", "SealedLeaf", "seal_epoch"]

MAX_LEAVES_WITH_PROOFS = 1000
"""Beyond this many leaves the proofs are left out of the status (it must stay well under the
API server's 1.5 MiB object limit: a leaf with its proof takes ~0.9 KiB at 1000 leaves);
``kommons claim`` then rebuilds them from the leaves, which alone fit ~5000."""


class SealError(ValueError):
    """The epoch cannot be sealed as it is (a missing account, provider or address)."""


@dataclass(frozen=True)
class SealedLeaf:
    """One leaf of the epoch's tree, with the names it came from."""

    billing_account: str
    """The BillingAccount charged (several, comma-separated, when they share the address)."""
    provider: str
    """The Provider paid (several, comma-separated, when they share the payout address)."""
    payer: str
    payee: str
    amount: int
    """Base units."""
    proof: tuple[str, ...] | None


@dataclass(frozen=True)
class Seal:
    """What sealing writes: leaves (sorted by account, provider), root and total."""

    epoch_id: int
    root: str
    """The Merkle root; the zero hash when there is no leaf (nothing is committed then)."""
    total: int
    leaves: tuple[SealedLeaf, ...]


ZERO_ROOT = "0x" + "00" * 32


def seal_epoch(
    epoch_id: int,
    charges: Mapping[ChargeKey, int],
    payers: Mapping[str, str],
    payees: Mapping[str, str],
) -> Seal:
    """Build the epoch's leaves, Merkle root, total and proofs.

    Args:
        epoch_id: The epoch sealed.
        charges: Base units per (BillingAccount name, Provider name) (:func:`epoch_charges`).
        payers: BillingAccount name → ``spec.address``, for the accounts that exist.
        payees: Provider name → ``spec.payoutAddress``, for the providers that exist.

    Returns:
        The seal; deterministic for the same inputs.

    Raises:
        SealError: naming every charged account or provider that is gone or has no address.
    """
    problems: list[str] = []
    charged = {key: amount for key, amount in charges.items() if amount > 0}
    accounts = sorted({account for account, _ in charged})
    providers = sorted({provider for _, provider in charged})
    for account in accounts:
        if not payers.get(account):
            problems.append(
                f"BillingAccount {account} is charged in epoch {epoch_id} but does not exist"
                " (or has no spec.address)"
            )
    for provider in providers:
        if not payees.get(provider):
            problems.append(
                f"Provider {provider} is owed in epoch {epoch_id} but does not exist"
                " (or has no spec.payoutAddress)"
            )
    if problems:
        raise SealError(f"cannot seal epoch {epoch_id}: " + "; ".join(problems))
    grouped: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for (account, provider), amount in charged.items():
        key = (payers[account].lower(), payees[provider].lower())
        grouped.setdefault(key, []).append((account, provider, amount))
    if not grouped:
        return Seal(epoch_id, ZERO_ROOT, 0, ())
    rows = sorted(
        (
            (
                ",".join(sorted({a for a, _, _ in parts})),
                ",".join(sorted({p for _, p, _ in parts})),
                LeafValue(
                    epoch_id,
                    payers[parts[0][0]],
                    payees[parts[0][1]],
                    sum(amount for _, _, amount in parts),
                ),
            )
            for parts in grouped.values()
        ),
        key=lambda row: (row[0], row[1]),
    )
    tree = build_tree([value for _, _, value in rows])
    with_proofs = len(rows) <= MAX_LEAVES_WITH_PROOFS
    leaves = tuple(
        SealedLeaf(
            account,
            provider,
            value.payer,
            value.provider,
            value.amount,
            tuple(tree.proof(value)) if with_proofs else None,
        )
        for account, provider, value in rows
    )
    return Seal(epoch_id, tree.root, sum(charged.values()), leaves)
