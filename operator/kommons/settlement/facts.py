"""Reading the chain's facts about one epoch's commit (for :mod:`.submission`)."""

from __future__ import annotations

from kommons.settlement.chain import ChainError, SettlementChain, normalise
from kommons.settlement.submission import ChainFacts, Receipt, SubmissionState

__all__ = ["mined_nonce", "read_facts"]


def mined_nonce(chain: SettlementChain) -> int:
    """Transactions of the chain's signer mined so far: the next nonce that can execute."""
    if chain.key is None:
        raise ChainError("this SettlementChain has no private key to sign with", kind="no-key")
    who = chain.key.address
    try:
        return int(chain.w3.eth.get_transaction_count(who, "latest"))
    except Exception as exc:
        raise normalise(exc, doing="reading the mined nonce") from exc


def read_facts(chain: SettlementChain, state: SubmissionState) -> ChainFacts:
    """What the chain says about ``state``'s epoch and transactions.

    Read in this order so a transaction mined while reading is never mistaken for a lost one:
    the mined nonce first, then the receipts, then the epoch's root (a commit mined after the
    nonce was read shows up in a later read, never as "nonce used by another transaction").

    Raises:
        ChainError: the chain cannot be read (the caller retries next step).
    """
    mined = mined_nonce(chain)
    pending_nonce = chain.next_nonce()
    receipts: dict[str, Receipt] = {}
    for tx_hash in state.tx_hashes:
        receipt = chain.receipt(tx_hash)
        if receipt is not None:
            receipts[tx_hash] = Receipt(receipt.block_number, receipt.ok)
    root = chain.epoch_root(state.epoch_id)
    return ChainFacts(
        last_epoch_id=chain.last_epoch_id(),
        epoch_root=root,
        head=chain.block_number(),
        mined_nonce=mined,
        pending_nonce=pending_nonce,
        receipts=receipts,
    )
