"""Claims (pure): from a confirmed SettlementEpoch, what a provider can claim, with proofs.

The proofs come from the epoch's status; when they were left out (more leaves than
:data:`~kommons.settlement.sealing.MAX_LEAVES_WITH_PROOFS`) they are rebuilt from the leaves,
and either way every proof is checked against the epoch's root before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kommons.api import SettlementEpoch
from kommons.money import DEFAULT_DECIMALS, parse_units
from kommons.settlement.merkle import LeafValue, build_tree, verify

__all__ = ["ClaimError", "ClaimItem", "claims_for", "submit_claims"]


class ClaimError(ValueError):
    """The epoch cannot be claimed from (not confirmed, no such provider, a bad proof)."""


@dataclass(frozen=True)
class ClaimItem:
    """One leaf to claim: what ``claim(epochId, payer, provider, amount, proof)`` takes."""

    epoch_id: int
    billing_account: str
    provider: str
    payer: str
    payee: str
    amount: int
    """Base units."""
    proof: tuple[str, ...]


def _units(amount_units: str | None, amount: str, decimals: int) -> int:
    return int(amount_units) if amount_units is not None else parse_units(amount, decimals=decimals)


def claims_for(
    epoch: SettlementEpoch,
    *,
    provider: str | None = None,
    payee: str | None = None,
    decimals: int = DEFAULT_DECIMALS,
) -> list[ClaimItem]:
    """The leaves of ``epoch`` paying ``provider`` (by name) or ``payee`` (by address).

    Args:
        epoch: A SettlementEpoch as read from the hub or a JSON file.
        provider: Provider name; ``None`` with ``payee`` ``None`` means every leaf.
        payee: Payout address (case-insensitive), instead of or with ``provider``.
        decimals: Fractional digits of the token (when a leaf has no ``amountUnits``).

    Raises:
        ClaimError: the epoch is not Confirmed, has no root or leaves, or a proof does not
            verify against its root.
    """
    status = epoch.status
    name = epoch.metadata.name
    epoch_id = epoch.spec.epoch_id
    if status is None or status.phase != "Confirmed":
        phase = status.phase if status is not None else None
        raise ClaimError(
            f"SettlementEpoch {name} is in phase {phase or 'Open'}: only a Confirmed epoch"
            " (its root committed on chain) can be claimed from"
        )
    if epoch_id is None or status.root is None or not status.leaves:
        raise ClaimError(f"SettlementEpoch {name} has no epochId, root or leaves: nothing to claim")
    for leaf in status.leaves:
        if leaf.payer is None or leaf.payee is None:
            raise ClaimError(
                f"SettlementEpoch {name}: the leaf of {leaf.billing_account}/{leaf.provider}"
                " has no payer or payee address"
            )
    values = [
        LeafValue(
            epoch_id,
            leaf.payer or "",
            leaf.payee or "",
            _units(leaf.amount_units, leaf.amount, decimals),
        )
        for leaf in status.leaves
    ]
    missing = any(leaf.proof is None for leaf in status.leaves)
    tree = build_tree(values) if missing else None
    items: list[ClaimItem] = []
    for leaf, value in zip(status.leaves, values, strict=True):
        if provider is not None and provider not in leaf.provider.split(","):  # shared payee
            continue
        if payee is not None and value.provider.lower() != payee.lower():
            continue
        proof = (
            tuple(leaf.proof)
            if leaf.proof is not None
            else tuple(tree.proof(value) if tree else ())
        )
        if not verify(status.root, value, proof):
            raise ClaimError(
                f"SettlementEpoch {name}: the proof of {leaf.billing_account}/{leaf.provider}"
                f" does not verify against the root {status.root}"
            )
        items.append(
            ClaimItem(
                epoch_id,
                leaf.billing_account,
                leaf.provider,
                value.payer,
                value.provider,
                value.amount,
                proof,
            )
        )
    return items


def submit_claims(
    rpc_url: str,
    settlement_address: str,
    key_file: Path,
    items: Iterable[ClaimItem],
    *,
    chain_id: int | None = None,
) -> Iterator[tuple[str, bool]]:
    """Send one claim per item; yields a line to print and whether it is fine.

    A leaf already claimed (by the provider, the hub, anyone) is fine: the contract pays once.
    With ``chain_id`` (the chain the hub committed the root on) nothing is sent to another one.

    Raises:
        ClaimError: ``rpc_url`` serves another chain than ``chain_id``.
    """
    from kommons.money import format_units
    from kommons.settlement.chain import ChainError, ContractRevert, PrivateKey, SettlementChain

    chain = SettlementChain.connect(
        rpc_url, settlement_address, private_key=PrivateKey.from_file(key_file)
    )
    if chain_id is not None:
        serving = chain.chain_id()
        if serving != chain_id:
            raise ClaimError(
                f"{rpc_url} serves chain {serving}; the epoch's root is committed on chain"
                f" {chain_id}: give the RPC URL of that chain"
            )
    for item in items:
        what = f"epoch {item.epoch_id}: {item.billing_account} → {item.provider}"
        try:
            receipt = chain.claim(
                item.epoch_id, item.payer, item.payee, item.amount, list(item.proof)
            )
        except ContractRevert as exc:
            already = "claimed" in exc.reason.lower()
            yield (f"{what}: {'already claimed' if already else 'refused: ' + exc.reason}", already)
            continue
        except ChainError as exc:
            yield (f"{what}: not sent: {exc}", False)
            continue
        yield (
            f"{what}: claimed {format_units(item.amount)} (base units {item.amount}) in tx"
            f" {receipt.tx_hash}, block {receipt.block_number}",
            receipt.ok,
        )
