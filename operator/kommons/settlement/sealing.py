"""Sealing an epoch (pure): charges + addresses → Merkle leaves, root, total and proofs.

One leaf per (billing account, provider) with a non-zero amount:
``(epochId, payer = BillingAccount.spec.address, provider = Provider.spec.payoutAddress,
amount in base units)``. The contract marks a leaf claimed by (epoch, payer, provider), so two
accounts sharing an escrow address (or two providers sharing a payout address) would make one
of their leaves unclaimable: sealing refuses that, naming them.
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
    provider: str
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


def _owners(pairs: list[tuple[str, str]], what: str) -> list[str]:
    by_address: dict[str, list[str]] = {}
    for name, address in pairs:
        by_address.setdefault(address.lower(), []).append(name)
    return [
        f"{what} {' and '.join(sorted(names))} share the address {address}"
        for address, names in sorted(by_address.items())
        if len(names) > 1
    ]


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
        SealError: naming every account or provider that has no address, and any address
            shared by two of them among the charged ones.
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
    problems += _owners([(a, payers[a]) for a in accounts if payers.get(a)], "BillingAccounts")
    problems += _owners([(p, payees[p]) for p in providers if payees.get(p)], "Providers")
    if problems:
        raise SealError(f"cannot seal epoch {epoch_id}: " + "; ".join(problems))
    keys = sorted(charged)
    values = [
        LeafValue(epoch_id, payers[account], payees[provider], charged[(account, provider)])
        for account, provider in keys
    ]
    if not values:
        return Seal(epoch_id, ZERO_ROOT, 0, ())
    tree = build_tree(values)
    with_proofs = len(values) <= MAX_LEAVES_WITH_PROOFS
    leaves = tuple(
        SealedLeaf(
            account,
            provider,
            value.payer,
            value.provider,
            value.amount,
            tuple(tree.proof(value)) if with_proofs else None,
        )
        for (account, provider), value in zip(keys, values, strict=True)
    )
    return Seal(epoch_id, tree.root, sum(charged.values()), leaves)
