"""Sealing an epoch (pure): charges + addresses → Merkle leaves, root, total and proofs.

One leaf per (escrow address, payout address) with a non-zero amount:
``(epochId, payer = BillingAccount.spec.address, provider = Provider.spec.payoutAddress,
amount in base units)``. The contract pays each (epoch, payer, provider) once, so accounts that
share an escrow address (one tenant, several accounts) or providers that share a payout address
(one operator, several clusters) are summed into one leaf, which names all of them
(``acme,acme-batch``); a misconfiguration of one party never blocks the others' settlement.
An account or provider that is charged but gone (or has no address) cannot be settled: its
charges are left out of the tree and named in :attr:`Seal.excluded` (written off; the epoch's
status says so), so one deleted object never stalls everyone's settlement.
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
    excluded: tuple[str, ...] = ()
    """Charges left out, each with its reason (an account or provider gone or without address)."""


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

    Charges of an account or provider that is missing or has no address are left out and
    named in ``Seal.excluded``.
    """
    excluded: list[str] = []
    charged: dict[ChargeKey, int] = {}
    for (account, provider), amount in sorted(charges.items()):
        if amount <= 0:
            continue
        if not payers.get(account):
            excluded.append(
                f"BillingAccount {account} (charged {amount} units for {provider}) does not exist"
                " or has no spec.address"
            )
        elif not payees.get(provider):
            excluded.append(
                f"Provider {provider} (owed {amount} units by {account}) does not exist or has no"
                " spec.payoutAddress"
            )
        else:
            charged[(account, provider)] = amount
    grouped: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for (account, provider), amount in charged.items():
        key = (payers[account].lower(), payees[provider].lower())
        grouped.setdefault(key, []).append((account, provider, amount))
    if not grouped:
        return Seal(epoch_id, ZERO_ROOT, 0, (), tuple(excluded))
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
    return Seal(epoch_id, tree.root, sum(charged.values()), leaves, tuple(excluded))
