"""The commit of one sealed epoch (pure): from its status and the chain's facts, the next action.

Safety comes from the contract: ``commitEpoch`` needs ``epochId > lastEpochId``, so an epoch
can be committed at most once, whatever the loop does. Liveness comes from this decision,
re-made from scratch every step (nothing lives in memory, so a restarted hub resumes):

- The chain is always asked first. Committed with this root → wait for the confirmations,
  then ``Confirmed``. Committed with another root, or ``lastEpochId`` already past the epoch
  without a root for it → ``Failed``, loudly (it can never be committed now).
- Not committed yet and nothing signed → sign a commit; the executor records the signed
  transaction (hash, nonce, raw bytes) in the status *before* it sends it, so a SIGKILL in
  between leaves a transaction the next step finds.
- Signed but no receipt → the operator's mined nonce tells where it stands: equal to the
  transaction's nonce → it is next in line, re-broadcast it (the node answers "already known"
  if it has it; a dropped or reorged-out transaction is sent again, with the same hash); above
  it → the nonce was used by another transaction: sign again with a fresh nonce; below it → a
  nonce gap holds it back: sign again with the mined nonce, which fills the gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Action",
    "ChainFacts",
    "Confirm",
    "Fail",
    "Nothing",
    "Receipt",
    "Resend",
    "Sign",
    "SubmissionState",
    "Wait",
    "decide_submission",
]


@dataclass(frozen=True)
class SubmissionState:
    """What the epoch's status says about its commit."""

    epoch_id: int
    phase: str
    """``Sealed`` or ``Submitted`` (any other phase needs no chain action)."""
    root: str | None = None
    total: int | None = None
    leaf_count: int = 0
    tx_hash: str | None = None
    """The transaction last signed."""
    tx_nonce: int | None = None
    tx_hashes: tuple[str, ...] = ()
    """Every transaction signed for the epoch (its receipt may be any of them)."""


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: its block and whether it succeeded."""

    block_number: int
    ok: bool


@dataclass(frozen=True)
class ChainFacts:
    """What the chain says, read just before deciding."""

    last_epoch_id: int
    epoch_root: str | None
    """``epochRoot(epochId)``; ``None`` when the epoch is not committed."""
    head: int
    """Latest block number."""
    mined_nonce: int
    """Transactions of the operator mined so far (the next nonce that can execute)."""
    pending_nonce: int
    """Next nonce counting the operator's transactions still in the node's pool."""
    receipts: Mapping[str, Receipt] = field(default_factory=dict)
    """Receipts of the epoch's transactions that have one."""


@dataclass(frozen=True)
class Nothing:
    """No chain action: the phase needs none."""

    reason: str


@dataclass(frozen=True)
class Wait:
    """Try again next step; record the inclusion seen so far, if any."""

    reason: str
    tx_hash: str | None = None
    block_number: int | None = None
    confirmations: int | None = None


@dataclass(frozen=True)
class Sign:
    """Sign a commit with ``nonce``, record it in the status, then send it."""

    nonce: int
    reason: str


@dataclass(frozen=True)
class Resend:
    """Broadcast the recorded signed transaction again (same hash: idempotent)."""

    reason: str


@dataclass(frozen=True)
class Confirm:
    """The epoch is committed with its root, deep enough: phase ``Confirmed``."""

    reason: str
    tx_hash: str | None = None
    block_number: int | None = None
    confirmations: int | None = None


@dataclass(frozen=True)
class Fail:
    """The epoch can never be committed as sealed: phase ``Failed`` with the reason."""

    reason: str


Action = Nothing | Wait | Sign | Resend | Confirm | Fail
"""The next step of an epoch's commit."""


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _committed(state: SubmissionState, facts: ChainFacts, root: str, confirmations: int) -> Action:
    mined = [(h, facts.receipts[h]) for h in state.tx_hashes if h in facts.receipts]
    ours = [(h, r) for h, r in mined if r.ok]
    if not ours:
        return Confirm(
            f"epoch {state.epoch_id} is committed on chain with root {root}"
            " (by a transaction not recorded in its status)"
        )
    tx_hash, receipt = ours[-1]
    depth = max(0, facts.head - receipt.block_number + 1)
    if depth >= confirmations:
        return Confirm(
            f"committed in block {receipt.block_number}, {depth} confirmation(s)",
            tx_hash,
            receipt.block_number,
            depth,
        )
    return Wait(
        f"committed in block {receipt.block_number}: {depth}/{confirmations} confirmations",
        tx_hash,
        receipt.block_number,
        depth,
    )


def decide_submission(
    state: SubmissionState,
    facts: ChainFacts | None,
    *,
    confirmations: int,
    earlier_unsettled: int | None = None,
) -> Action:
    """The next action for one epoch's commit.

    Args:
        state: The epoch's status.
        facts: The chain's facts, or ``None`` when the chain could not be read (RPC down).
        confirmations: Blocks (including the commit's own) before the epoch is Confirmed.
        earlier_unsettled: Id of an earlier epoch not Confirmed/Failed yet: epochs are
            committed in order (``epochId`` strictly increases on chain), so this one waits.

    Returns:
        One :data:`Action`; its ``reason`` is what the status message and the log say.
    """
    if confirmations < 1:
        raise ValueError(f"confirmations: must be >= 1, got {confirmations}")
    n = state.epoch_id
    if state.phase not in ("Sealed", "Submitted"):
        return Nothing(f"phase {state.phase}: no chain action")
    if state.root is None or state.total is None:
        return Nothing(f"epoch {n} is not sealed yet (no root)")
    if state.leaf_count == 0:
        return Confirm(f"epoch {n} has nothing to settle: no commit")
    if earlier_unsettled is not None:
        return Wait(f"epoch {earlier_unsettled} is not settled yet: epochs commit in order")
    if facts is None:
        return Wait("chain unreachable: retrying")
    if facts.epoch_root is not None:
        if not _same(facts.epoch_root, state.root):
            return Fail(
                f"epoch {n} is committed on chain with root {facts.epoch_root}, not with the"
                f" sealed root {state.root}: someone else committed it; nothing resubmitted"
            )
        return _committed(state, facts, state.root, confirmations)
    if facts.last_epoch_id >= n:
        return Fail(
            f"the chain's lastEpochId is {facts.last_epoch_id} >= {n} but epoch {n} has no"
            " root: a later epoch was committed first, this one can no longer be committed"
        )
    if state.tx_hash is None or state.tx_nonce is None:
        return Sign(facts.pending_nonce, f"commit epoch {n} (root {state.root})")
    receipt = facts.receipts.get(state.tx_hash)
    if receipt is not None:
        if not receipt.ok:
            return Fail(
                f"commit transaction {state.tx_hash} of epoch {n} reverted in block"
                f" {receipt.block_number} (check the operator role and the contract)"
            )
        return Wait(f"transaction {state.tx_hash} mined but the chain shows no root yet")
    nonce = state.tx_nonce
    if facts.mined_nonce == nonce:
        return Resend(f"transaction {state.tx_hash} (nonce {nonce}) not mined yet: broadcast")
    if facts.mined_nonce > nonce:
        return Sign(
            max(facts.mined_nonce, facts.pending_nonce),
            f"nonce {nonce} of transaction {state.tx_hash} was used by another transaction:"
            " signing the commit again",
        )
    return Sign(
        facts.mined_nonce,
        f"nonce gap: transaction {state.tx_hash} has nonce {nonce} but the operator's next"
        f" executable nonce is {facts.mined_nonce}: signing the commit again with it",
    )
