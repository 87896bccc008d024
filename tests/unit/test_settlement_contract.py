"""The Settlement contract's rules, on the in-process py-evm chain (eth-tester) for speed.

The same rules run on a real anvil in tests/integration/test_settlement_contract.py.

Behaviour matrix:
- escrow: deposit / depositFor credit the payer and emit Deposited; zero is refused;
- withdrawal: a request above escrow is refused; withdraw before the delay is refused
  (WithdrawalNotReady), after it pays, capped by what claims left in escrow; no request → refused;
- commit: operator only (AccessControlUnauthorizedAccount); epoch ids strictly increase (same or
  lower → EpochNotIncreasing; gaps allowed); a zero root is refused; root and lastEpochId read
  back from storage, the total from the EpochCommitted log only (no epochTotal view);
- claim: debits escrow, credits earnings, marks the leaf; anyone may send it; a second claim →
  AlreadyClaimed; a wrong amount or another epoch's proof → InvalidProof; an uncommitted epoch →
  UnknownEpoch; more than the escrow → InsufficientEscrow and the leaf stays claimable until a
  top-up; claimed flags of epochs 255/256/511 of one pair are independent;
- withdrawEarnings pays the token and zeroes earnings; nothing to pay → NothingToWithdraw;
  earnings credited after a withdrawal are exact (the slot's +1 sentinel never shows) and
  withdraw exactly, and such a claim costs what a claim of a provider that never withdrew does;
- the adapter: a signed commit sent twice is one transaction; reverts carry the error's name
  and arguments (custom errors, Error(string), Panic, unknown selectors); the key never appears
  in repr; an unreachable node is a transient ChainError.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils.crypto import keccak
from web3 import EthereumTesterProvider, Web3

from kommons.settlement.chain import (
    ChainError,
    ContractRevert,
    PrivateKey,
    SettlementChain,
    decode_revert,
    deploy_settlement,
    deploy_token,
    mint,
)
from kommons.settlement.merkle import LeafValue, build_tree

DELAY = 600
UNIT = 10**6


@dataclass
class Env:
    tester: EthereumTester
    w3: Web3
    operator: SettlementChain
    payer: SettlementChain
    payer2: SettlementChain
    provider: SettlementChain
    provider2: SettlementChain
    stranger: SettlementChain

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        self.tester.time_travel(self.now() + seconds)


@pytest.fixture(scope="module")
def deployed() -> Env:
    """One chain and deployment per module; each test runs from a snapshot of it."""
    backend = PyEVMBackend()
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    keys = [PrivateKey(backend.account_keys[i].to_hex()) for i in range(6)]
    op = keys[0]
    token = deploy_token(w3, op)
    address = deploy_settlement(
        w3, op, token=token, admin=op.address, operator=op.address, withdrawal_delay=DELAY
    )
    base = SettlementChain(w3, address)
    for payer in keys[1:3]:
        mint(w3, op, token, payer.address, 1_000 * UNIT)
    return Env(tester, w3, *(base.with_key(k) for k in keys))


@pytest.fixture
def env(deployed: Env) -> Iterator[Env]:
    snapshot = deployed.tester.take_snapshot()
    yield deployed
    deployed.tester.revert_to_snapshot(snapshot)


def addr(chain: SettlementChain) -> str:
    assert chain.key is not None
    return chain.key.address


def reason(exc: pytest.ExceptionInfo[ContractRevert]) -> str:
    return exc.value.reason


def test_deposit_and_deposit_for_credit_the_payer(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    env.payer2.deposit(5 * UNIT, payer=addr(env.payer))
    assert env.payer.escrow_of(addr(env.payer)) == 105 * UNIT
    assert env.payer.escrow_of(addr(env.payer2)) == 0
    events = env.payer.events("Deposited")
    assert [(e["payer"], e["from"], e["amount"]) for e in events] == [
        (addr(env.payer), addr(env.payer), 100 * UNIT),
        (addr(env.payer), addr(env.payer2), 5 * UNIT),
    ]
    with pytest.raises(ContractRevert) as exc:
        env.payer.deposit(0)
    assert reason(exc) == "ZeroAmount"


def test_withdrawal_waits_for_the_delay_and_is_capped_by_escrow(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    with pytest.raises(ContractRevert) as exc:
        env.payer.request_withdrawal(101 * UNIT)
    assert reason(exc) == "InsufficientEscrow"
    with pytest.raises(ContractRevert) as exc:
        env.payer.withdraw()
    assert reason(exc) == "NoWithdrawalRequested"
    env.payer.request_withdrawal(60 * UNIT)
    pending = env.payer.pending_withdrawal(addr(env.payer))
    assert pending.amount == 60 * UNIT
    assert pending.available_at >= env.now() + DELAY - 1
    with pytest.raises(ContractRevert) as exc:
        env.payer.withdraw()
    assert reason(exc) == "WithdrawalNotReady"
    # meanwhile an epoch charges 70: the withdrawal then pays only the 30 left
    leaf = LeafValue(1, addr(env.payer), addr(env.provider), 70 * UNIT)
    tree = build_tree([leaf])
    env.operator.commit(1, tree.root, leaf.amount)
    env.provider.claim(1, leaf.payer, leaf.provider, leaf.amount, tree.proof(leaf))
    env.travel(DELAY + 1)
    before = env.payer.token_balance(addr(env.payer))
    env.payer.withdraw()
    assert env.payer.token_balance(addr(env.payer)) - before == 30 * UNIT
    assert env.payer.escrow_of(addr(env.payer)) == 0
    assert env.payer.pending_withdrawal(addr(env.payer)).amount == 0
    assert [e["amount"] for e in env.payer.events("Withdrawn")] == [30 * UNIT]


def test_commit_is_operator_only_and_strictly_increasing(env: Env) -> None:
    root = "0x" + "11" * 32
    with pytest.raises(ContractRevert) as exc:
        env.stranger.commit(1, root, 5)
    assert reason(exc) == "AccessControlUnauthorizedAccount"
    assert exc.value.error_args["account"] == addr(env.stranger)
    env.operator.commit(3, root, 5)
    assert env.operator.last_epoch_id() == 3
    assert env.operator.epoch_root(3) == root
    assert env.operator.epoch_total(3) == 5
    assert env.operator.epoch_root(2) is None
    assert env.operator.epoch_total(2) is None
    for epoch in (3, 2):
        with pytest.raises(ContractRevert) as exc:
            env.operator.sign_commit(epoch, "0x" + "22" * 32, 1)
        assert reason(exc) == "EpochNotIncreasing"
        assert exc.value.error_args == {"epochId": epoch, "lastEpochId": 3}
    with pytest.raises(ContractRevert) as exc:
        env.operator.commit(4, "0x" + "00" * 32, 1)
    assert reason(exc) == "EmptyRoot"
    env.operator.commit(7, root, 0)  # gaps are allowed
    assert env.operator.last_epoch_id() == 7
    committed = env.operator.events("EpochCommitted")
    assert [(e["epochId"], e["root"], e["total"]) for e in committed] == [
        (3, root, 5),
        (7, root, 0),
    ]
    assert env.operator.epoch_total(7) == 0
    # the total lives in the log only: the contract has no storage or view for it
    assert "epochTotal" not in {f["name"] for f in env.operator.contract.abi if "name" in f}


def test_claims_pay_once_with_a_valid_proof(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    payer, p1, p2 = addr(env.payer), addr(env.provider), addr(env.provider2)
    leaves = [LeafValue(1, payer, p1, 30 * UNIT), LeafValue(1, payer, p2, 20 * UNIT)]
    tree = build_tree(leaves)
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, 30 * UNIT, tree.proof(leaves[0]))
    assert reason(exc) == "UnknownEpoch"
    env.operator.commit(1, tree.root, 50 * UNIT)
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, 31 * UNIT, tree.proof(leaves[0]))
    assert reason(exc) == "InvalidProof"
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, 30 * UNIT, tree.proof(leaves[1]))
    assert reason(exc) == "InvalidProof"
    env.provider.claim(1, payer, p1, 30 * UNIT, tree.proof(leaves[0]))
    env.stranger.claim(1, payer, p2, 20 * UNIT, tree.proof(leaves[1]))  # anyone may send it
    assert env.payer.escrow_of(payer) == 50 * UNIT
    assert env.payer.earnings_of(p1) == 30 * UNIT
    assert env.payer.earnings_of(p2) == 20 * UNIT
    assert env.payer.is_claimed(1, payer, p1)
    assert not env.payer.is_claimed(2, payer, p1)
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, 30 * UNIT, tree.proof(leaves[0]))
    assert reason(exc) == "AlreadyClaimed"
    claimed = env.payer.events("Claimed")
    assert [(e["epochId"], e["payer"], e["provider"], e["amount"]) for e in claimed] == [
        (1, payer, p1, 30 * UNIT),
        (1, payer, p2, 20 * UNIT),
    ]
    # a later epoch's tree cannot replay an earlier leaf: the epoch id is part of the leaf
    tree2 = build_tree([LeafValue(2, payer, p1, 30 * UNIT)])
    env.operator.commit(2, tree2.root, 30 * UNIT)
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, 30 * UNIT, [])
    assert reason(exc) == "AlreadyClaimed"
    env.provider.claim(2, payer, p1, 30 * UNIT, [])
    assert env.payer.escrow_of(payer) == 20 * UNIT


def test_a_claim_above_escrow_reverts_and_succeeds_after_a_top_up(env: Env) -> None:
    env.payer.deposit(10 * UNIT)
    payer, p1 = addr(env.payer), addr(env.provider)
    leaf = LeafValue(1, payer, p1, 25 * UNIT)
    tree = build_tree([leaf])
    env.operator.commit(1, tree.root, leaf.amount)
    with pytest.raises(ContractRevert) as exc:
        env.provider.claim(1, payer, p1, leaf.amount, tree.proof(leaf))
    assert reason(exc) == "InsufficientEscrow"
    assert exc.value.error_args == {"payer": payer, "available": 10 * UNIT, "amount": 25 * UNIT}
    assert not env.payer.is_claimed(1, payer, p1)
    assert env.payer.escrow_of(payer) == 10 * UNIT
    env.payer.deposit(15 * UNIT)
    env.provider.claim(1, payer, p1, leaf.amount, tree.proof(leaf))
    assert env.payer.escrow_of(payer) == 0
    assert env.payer.earnings_of(p1) == 25 * UNIT


def test_claimed_flags_are_per_epoch_across_bitmap_words(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    payer, p1 = addr(env.payer), addr(env.provider)
    for epoch in (255, 256, 511):
        leaf = LeafValue(epoch, payer, p1, UNIT)
        env.operator.commit(epoch, build_tree([leaf]).root, UNIT)
    env.provider.claim(256, payer, p1, UNIT, [])
    assert [env.payer.is_claimed(e, payer, p1) for e in (255, 256, 511)] == [False, True, False]
    env.provider.claim(511, payer, p1, UNIT, [])
    env.provider.claim(255, payer, p1, UNIT, [])
    assert [env.payer.is_claimed(e, payer, p1) for e in (255, 256, 511)] == [True, True, True]
    assert env.payer.earnings_of(p1) == 3 * UNIT


def test_withdraw_earnings_pays_the_token(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    payer, p1 = addr(env.payer), addr(env.provider)
    leaf = LeafValue(1, payer, p1, 42 * UNIT)
    tree = build_tree([leaf])
    env.operator.commit(1, tree.root, leaf.amount)
    env.stranger.claim(1, payer, p1, leaf.amount, [])
    env.provider.withdraw_earnings()
    assert env.provider.token_balance(p1) == 42 * UNIT
    assert env.provider.earnings_of(p1) == 0
    assert [(e["provider"], e["amount"]) for e in env.provider.events("EarningsWithdrawn")] == [
        (p1, 42 * UNIT)
    ]
    with pytest.raises(ContractRevert) as exc:
        env.provider.withdraw_earnings()
    assert reason(exc) == "NothingToWithdraw"


def test_earnings_after_a_withdrawal_are_exact_and_cost_a_steady_claim(env: Env) -> None:
    env.payer.deposit(100 * UNIT)
    payer, p1 = addr(env.payer), addr(env.provider)
    # 2 and 3 have as many non-zero calldata bytes, so their gas is comparable to the unit
    amounts = {1: 42 * UNIT, 2: 5 * UNIT + 3, 3: 5 * UNIT + 4, 4: 1}
    for epoch, amount in amounts.items():
        env.operator.commit(epoch, build_tree([LeafValue(epoch, payer, p1, amount)]).root, amount)
    assert env.provider.earnings_of(p1) == 0  # never credited
    gas = {1: env.stranger.claim(1, payer, p1, amounts[1], []).gas_used}
    gas[2] = env.stranger.claim(2, payer, p1, amounts[2], []).gas_used
    assert env.provider.earnings_of(p1) == amounts[1] + amounts[2]
    env.provider.withdraw_earnings()
    assert env.provider.token_balance(p1) == amounts[1] + amounts[2]
    assert env.provider.earnings_of(p1) == 0
    with pytest.raises(ContractRevert) as exc:
        env.provider.withdraw_earnings()
    assert reason(exc) == "NothingToWithdraw"
    # a claim after the withdrawal rewrites the existing slot: same gas as the steady claim
    gas[3] = env.stranger.claim(3, payer, p1, amounts[3], []).gas_used
    assert gas[3] == gas[2] < gas[1] - 15_000
    assert env.provider.earnings_of(p1) == amounts[3]  # exact: the slot's + 1 never shows
    env.stranger.claim(4, payer, p1, amounts[4], [])
    env.provider.withdraw_earnings()
    assert env.provider.token_balance(p1) == sum(amounts.values())
    assert env.payer.escrow_of(payer) == 100 * UNIT - sum(amounts.values())
    assert [e["amount"] for e in env.provider.events("EarningsWithdrawn")] == [
        amounts[1] + amounts[2],
        amounts[3] + amounts[4],
    ]


def test_a_signed_commit_sent_twice_is_one_transaction(env: Env) -> None:
    tree = build_tree([LeafValue(1, addr(env.payer), addr(env.provider), 1)])
    nonce = env.operator.next_nonce()
    tx = env.operator.sign_commit(1, tree.root, 1, nonce=nonce)
    assert tx.nonce == nonce
    assert env.operator.send(tx) == tx.hash
    assert env.operator.send(tx) == tx.hash  # already mined: not an error
    receipt = env.operator.wait_receipt(tx.hash)
    assert receipt.ok
    assert receipt.tx_hash == tx.hash
    assert receipt.block_number == env.operator.block_number()
    assert env.operator.next_nonce() == nonce + 1
    assert env.operator.receipt("0x" + "ab" * 32) is None


def test_keys_never_show_and_an_unreachable_node_is_transient(env: Env) -> None:
    key = env.operator.key
    assert key is not None
    secret = key._hex[2:]
    assert secret not in repr(key)
    assert secret not in str(key)
    assert secret not in repr(env.operator)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    offline = SettlementChain.connect("http://127.0.0.1:9", env.operator.address, timeout=2)
    with pytest.raises(ChainError) as exc:
        offline.last_epoch_id()
    assert exc.value.transient
    assert exc.value.kind == "rpc-unavailable"
    with pytest.raises(ChainError, match="no private key"):
        SettlementChain(env.w3, env.operator.address).next_nonce()


def test_key_files(tmp_path: Path) -> None:
    good = tmp_path / "k"
    good.write_text("0x" + "4c" * 32 + "\n")
    assert PrivateKey.from_file(good).address.startswith("0x")
    bad = tmp_path / "bad"
    bad.write_text("not-a-key-but-secretish\n")
    with pytest.raises(ValueError, match="does not hold a private key") as exc:
        PrivateKey.from_file(bad)
    assert "secretish" not in str(exc.value)
    with pytest.raises(ValueError, match="cannot read"):
        PrivateKey.from_file(tmp_path / "missing")


def test_revert_data_is_decoded_by_name() -> None:
    def selector(signature: str) -> bytes:
        return keccak(text=signature)[:4]

    assert decode_revert(selector("Error(string)") + encode(["string"], ["too late"])).reason == (
        "too late"
    )
    assert decode_revert(selector("Panic(uint256)") + encode(["uint256"], [0x11])).reason == (
        "Panic(0x11)"
    )
    custom = decode_revert(selector("UnknownEpoch(uint64)") + encode(["uint64"], [9]))
    assert (custom.reason, custom.error_args) == ("UnknownEpoch", {"epochId": 9})
    assert decode_revert(bytes.fromhex("deadbeef")).reason == "0xdeadbeef"
    assert decode_revert(b"").reason == "unknown"
