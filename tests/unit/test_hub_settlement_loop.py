"""The settlement loop's pure helpers: the seal's status patch, the state read back, options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kommons.api import SettlementEpoch, SettlementEpochStatus
from kommons.hub.chain_options import ChainOptions
from kommons.hub.handlers import HubOptions
from kommons.hub.settlement_loop import (
    SettlementOptions,
    seal_status,
    settlement_loop,
    submission_state,
)
from kommons.kube import Kube
from kommons.settlement.sealing import seal_epoch

NOW = datetime(2026, 12, 1, 13, 0, 5, tzinfo=UTC)
PAYERS = {"acme": "0x" + "a1" * 20}
PAYEES = {"prov-a": "0x" + "0a" * 20, "prov-b": "0x" + "0b" * 20}


def _epoch(status: dict[str, Any]) -> SettlementEpoch:
    return SettlementEpoch.model_validate(
        {
            "metadata": {"name": "epoch-4"},
            "spec": {"epochId": 4, "start": "2026-12-01T12:00:00Z", "end": "2026-12-01T13:00:00Z"},
            "status": status,
        }
    )


def test_the_seal_patch_is_a_valid_status_and_reads_back() -> None:
    seal = seal_epoch(4, {("acme", "prov-a"): 1_500_000, ("acme", "prov-b"): 1}, PAYERS, PAYEES)
    patch = seal_status(seal, NOW, decimals=6)
    status = SettlementEpochStatus.model_validate(patch)
    assert status.phase == "Sealed"
    assert status.total == "1.500001"
    assert status.leaf_count == 2
    assert status.leaves is not None
    assert [(leaf.amount, leaf.amount_units) for leaf in status.leaves] == [
        ("1.5", "1500000"),
        ("0.000001", "1"),
    ]
    assert all(leaf.proof for leaf in status.leaves)
    state = submission_state(_epoch(patch), decimals=6)
    assert (state.epoch_id, state.phase, state.root, state.total, state.leaf_count) == (
        4,
        "Sealed",
        seal.root,
        1_500_001,
        2,
    )
    assert state.tx_hash is None


def test_submission_state_of_a_submitted_epoch() -> None:
    tx1, tx2 = "0x" + "11" * 32, "0x" + "22" * 32
    epoch = _epoch(
        {
            "phase": "Submitted",
            "root": "0x" + "ab" * 32,
            "total": "2",
            "leafCount": 1,
            "txHash": tx2,
            "txNonce": 9,
            "txHashes": [tx1, tx2],
        }
    )
    state = submission_state(epoch, decimals=6)
    assert (state.tx_hash, state.tx_nonce, state.tx_hashes, state.total) == (
        tx2,
        9,
        (tx1, tx2),
        2_000_000,
    )


def test_no_status_is_open() -> None:
    epoch = SettlementEpoch.model_validate(
        {
            "metadata": {"name": "epoch-4"},
            "spec": {"epochId": 4, "start": "2026-12-01T12:00:00Z", "end": "2026-12-01T13:00:00Z"},
        }
    )
    assert submission_state(epoch, decimals=6).phase == "Open"


@pytest.mark.parametrize(
    ("field", "value"),
    [("epoch_seconds", 0), ("seal_delay_seconds", -1), ("confirmations", 0)],
)
def test_options_are_checked(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        SettlementOptions(**{field: value})  # type: ignore[arg-type]


def test_no_loop_without_a_chain_or_a_key() -> None:
    kube = Kube.__new__(Kube)  # never used: no loop is built
    assert settlement_loop(HubOptions(kubeconfig=None), kube) is None
    read_only = ChainOptions("http://127.0.0.1:8545", "0x" + "12" * 20, None)
    assert settlement_loop(HubOptions(kubeconfig=None, chain=read_only), kube) is None


def test_the_loop_takes_the_hubs_options(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("0x" + "1f" * 32)
    chain = ChainOptions("http://127.0.0.1:8545", "0x" + "12" * 20, key, confirmations=3)
    options = HubOptions(
        kubeconfig=None,
        chain=chain,
        epoch_seconds=30,
        seal_delay_seconds=4,
        claim_for_providers=True,
    )
    loop = settlement_loop(options, Kube.__new__(Kube))
    assert loop is not None
    assert loop.options == SettlementOptions(
        epoch_seconds=30, seal_delay_seconds=4, claim_for_providers=True, confirmations=3
    )
    assert "1f1f" not in repr(loop.chain)
