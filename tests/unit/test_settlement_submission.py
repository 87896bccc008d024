"""The commit decision of one epoch: every row of the state machine."""

from __future__ import annotations

import pytest

from kommons.settlement.submission import (
    Action,
    ChainFacts,
    Confirm,
    Fail,
    Nothing,
    Receipt,
    Resend,
    Sign,
    SubmissionState,
    Wait,
    decide_submission,
)

ROOT = "0x" + "ab" * 32
OTHER = "0x" + "cd" * 32
TX1 = "0x" + "11" * 32
TX2 = "0x" + "22" * 32

SEALED = SubmissionState(epoch_id=5, phase="Sealed", root=ROOT, total=100, leaf_count=2)
SUBMITTED = SubmissionState(
    epoch_id=5,
    phase="Submitted",
    root=ROOT,
    total=100,
    leaf_count=2,
    tx_hash=TX2,
    tx_nonce=7,
    tx_hashes=(TX1, TX2),
)


def facts(
    *,
    last: int = 4,
    root: str | None = None,
    head: int = 100,
    mined: int = 7,
    pending: int = 7,
    receipts: dict[str, Receipt] | None = None,
) -> ChainFacts:
    return ChainFacts(last, root, head, mined, pending, receipts or {})


def decide(
    state: SubmissionState,
    chain: ChainFacts | None,
    confirmations: int = 1,
    earlier: int | None = None,
) -> Action:
    return decide_submission(state, chain, confirmations=confirmations, earlier_unsettled=earlier)


@pytest.mark.parametrize("phase", ["Open", "Confirmed", "Failed"])
def test_no_chain_action_outside_sealed_and_submitted(phase: str) -> None:
    state = SubmissionState(epoch_id=5, phase=phase, root=ROOT, total=1, leaf_count=1)
    assert isinstance(decide(state, facts()), Nothing)


def test_frozen_without_root_waits_for_its_seal() -> None:
    assert isinstance(decide(SubmissionState(epoch_id=5, phase="Sealed"), facts()), Nothing)


def test_an_empty_epoch_is_confirmed_without_a_commit() -> None:
    empty = SubmissionState(epoch_id=5, phase="Sealed", root="0x" + "00" * 32, total=0)
    action = decide(empty, None)  # the chain is not even needed
    assert isinstance(action, Confirm)
    assert action.tx_hash is None
    assert "nothing to settle" in action.reason


def test_epochs_commit_in_order() -> None:
    action = decide(SEALED, facts(), earlier=4)
    assert isinstance(action, Wait)
    assert "epoch 4" in action.reason


def test_chain_unreachable_waits() -> None:
    for state in (SEALED, SUBMITTED):
        action = decide(state, None)
        assert isinstance(action, Wait)
        assert "unreachable" in action.reason


def test_sealed_and_not_on_chain_signs_with_the_pending_nonce() -> None:
    action = decide(SEALED, facts(mined=6, pending=7))
    assert action == Sign(7, action.reason)
    assert isinstance(action, Sign)


@pytest.mark.parametrize("state", [SEALED, SUBMITTED])
def test_committed_with_another_root_fails_loudly(state: SubmissionState) -> None:
    action = decide(state, facts(last=5, root=OTHER))
    assert isinstance(action, Fail)
    assert OTHER in action.reason
    assert ROOT in action.reason


def test_root_comparison_ignores_hex_case() -> None:
    action = decide(SEALED, facts(last=5, root=ROOT.upper().replace("0X", "0x")))
    assert isinstance(action, Confirm)


@pytest.mark.parametrize("state", [SEALED, SUBMITTED])
def test_chain_past_the_epoch_without_its_root_fails(state: SubmissionState) -> None:
    action = decide(state, facts(last=6, root=None))
    assert isinstance(action, Fail)
    assert "lastEpochId is 6" in action.reason


def test_committed_by_an_unrecorded_transaction_is_confirmed() -> None:
    # e.g. sealed status lost its tx fields: the chain has the same root: never resubmitted
    action = decide(SEALED, facts(last=5, root=ROOT))
    assert isinstance(action, Confirm)


@pytest.mark.parametrize(
    ("head", "needed", "expected"),
    [(50, 1, Confirm), (50, 2, Wait), (51, 2, Confirm), (52, 3, Confirm), (51, 3, Wait)],
)
def test_confirmations_counted_from_the_receipts_block(
    head: int, needed: int, expected: type
) -> None:
    chain = facts(last=5, root=ROOT, head=head, receipts={TX2: Receipt(50, True)})
    action = decide(SUBMITTED, chain, confirmations=needed)
    assert isinstance(action, expected)
    assert isinstance(action, Confirm | Wait)
    assert action.tx_hash == TX2
    assert action.block_number == 50
    assert action.confirmations == head - 50 + 1


def test_an_earlier_attempt_that_committed_is_the_one_confirmed() -> None:
    chain = facts(last=5, root=ROOT, head=60, receipts={TX1: Receipt(58, True)})
    action = decide(SUBMITTED, chain, confirmations=2)
    assert isinstance(action, Confirm)
    assert (action.tx_hash, action.block_number, action.confirmations) == (TX1, 58, 3)


def test_a_reverted_commit_fails_with_the_transaction() -> None:
    action = decide(SUBMITTED, facts(receipts={TX2: Receipt(50, False)}, mined=8, pending=8))
    assert isinstance(action, Fail)
    assert TX2 in action.reason
    assert "reverted" in action.reason


def test_mined_but_no_root_seen_yet_waits() -> None:
    action = decide(SUBMITTED, facts(receipts={TX2: Receipt(50, True)}, mined=8, pending=8))
    assert isinstance(action, Wait)


@pytest.mark.parametrize(
    ("mined", "pending", "expected"),
    [
        # next in line: in the pool, dropped, never sent (killed), reorged out: broadcast again
        (
            7,
            7,
            Resend(""),
        ),
        (7, 8, Resend("")),
        # the nonce was used by another transaction: sign again with a fresh nonce
        (8, 8, Sign(8, "")),
        (8, 9, Sign(9, "")),
        # nonce gap below the transaction: sign again with the next executable nonce
        (5, 5, Sign(5, "")),
        (5, 8, Sign(5, "")),
    ],
)
def test_signed_but_not_mined(mined: int, pending: int, expected: Action) -> None:
    action = decide(SUBMITTED, facts(mined=mined, pending=pending))
    assert type(action) is type(expected)
    if isinstance(expected, Sign):
        assert isinstance(action, Sign)
        assert action.nonce == expected.nonce


def test_nonce_gap_reason_names_both_nonces() -> None:
    action = decide(SUBMITTED, facts(mined=5, pending=5))
    assert isinstance(action, Sign)
    assert "nonce gap" in action.reason
    assert "7" in action.reason
    assert "5" in action.reason


def test_submitted_without_a_recorded_transaction_signs() -> None:
    state = SubmissionState(epoch_id=5, phase="Submitted", root=ROOT, total=100, leaf_count=2)
    assert isinstance(decide(state, facts(pending=9)), Sign)


def test_confirmations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="confirmations"):
        decide(SEALED, facts(), confirmations=0)
