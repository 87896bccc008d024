"""The Settlement contract on a real anvil node (no cluster needed).

Behaviour matrix (issue 9, "Contract tests on anvil"):
- deposit credits escrow (Deposited); withdraw waits for the delay (WithdrawalNotReady before,
  paid after ``evm_increaseTime``), pays at most what is left in escrow (Withdrawn);
- commit by the operator (EpochCommitted); by anyone else → AccessControlUnauthorizedAccount;
  the same or a lower epoch → EpochNotIncreasing, refused already when signing;
- a signed commit broadcast twice is one transaction; two commits of one epoch mined in the same
  block (signed while neither was mined) → the second fails on chain, the epoch holds the first;
  a receipt's confirmations count blocks on top of it and drop to 0 when a reorg (anvil
  snapshot/revert) removes its block; a pending commit is replaced (same nonce) only by one with
  higher fees (``replacement-underpriced`` otherwise);
- claim debits escrow, credits earnings (Claimed); a double claim → AlreadyClaimed; a wrong proof
  → InvalidProof; a claim above escrow → InsufficientEscrow, still claimable after a top-up;
- withdrawEarnings pays the token (EarningsWithdrawn, the provider's ERC-20 balance rises); a
  claim after it credits exactly its amount, at the gas of a claim before it (the earnings slot
  is rewritten, not created again), and withdraws exactly;
- the committed total is read back from the EpochCommitted log (the contract stores no total).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kommons.settlement.chain import ChainError, ContractRevert, SettlementChain
from kommons.settlement.merkle import LeafValue, build_tree
from kommons_testbed import anvil
from kommons_testbed.handles import ChainHandle
from kommons_testbed.processes import stop
from kommons_testbed.settlement_bed import SettlementDeployment, deploy_settlement_bed

pytestmark = [
    pytest.mark.bed,
    pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning"),
]
UNIT = 10**6
DEPOSIT = 100 * UNIT
DELAY = 600


@dataclass
class Chain:
    handle: ChainHandle
    deployment: SettlementDeployment

    def signer(self, index: int) -> SettlementChain:
        return self.deployment.chain(self.handle.accounts[index])

    @property
    def operator(self) -> SettlementChain:
        return self.deployment.chain()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    directory: Path = tmp_path_factory.mktemp("anvil")
    record, handle = anvil.start_anvil(directory)
    try:
        deployment = deploy_settlement_bed(
            handle, directory, deposit=DEPOSIT, withdrawal_delay=DELAY
        )
        yield Chain(handle, deployment)
    finally:
        stop(record)


@pytest.fixture
def chain(deployed: Chain) -> Iterator[Chain]:
    snapshot = anvil.snapshot(deployed.handle)
    yield deployed
    anvil.set_automine(deployed.handle, True)
    assert anvil.revert(deployed.handle, snapshot)


def test_deposit_and_withdraw_after_the_delay(chain: Chain) -> None:
    payer = chain.signer(1)
    me = chain.handle.accounts[1].address
    assert payer.escrow_of(me) == DEPOSIT
    start = payer.block_number()
    payer.deposit(5 * UNIT)
    assert payer.escrow_of(me) == DEPOSIT + 5 * UNIT
    assert [(e["payer"], e["amount"]) for e in payer.events("Deposited", from_block=start + 1)] == [
        (me, 5 * UNIT)
    ]
    payer.request_withdrawal(DEPOSIT)
    with pytest.raises(ContractRevert) as exc:
        payer.withdraw()
    assert exc.value.reason == "WithdrawalNotReady"
    anvil.increase_time(chain.handle, DELAY + 1)
    anvil.mine(chain.handle)  # the clock moves with the next block
    before = payer.token_balance(me)
    payer.withdraw()
    assert payer.token_balance(me) - before == DEPOSIT
    assert payer.escrow_of(me) == 5 * UNIT
    assert [e["amount"] for e in payer.events("Withdrawn", from_block=start + 1)] == [DEPOSIT]


def test_commit_claim_and_withdraw_earnings(chain: Chain) -> None:
    payer_a, payer_b = (chain.handle.accounts[i].address for i in (1, 2))
    prov_a, prov_b = (chain.deployment.payees[p].address for p in ("prov-a", "prov-b"))
    leaves = [
        LeafValue(1, payer_a, prov_a, 12 * UNIT),
        LeafValue(1, payer_a, prov_b, 3 * UNIT),
        LeafValue(1, payer_b, prov_a, 7 * UNIT),
    ]
    tree = build_tree(leaves)
    operator = chain.operator
    start = operator.block_number()
    receipt = operator.commit(1, tree.root, 22 * UNIT)
    assert receipt.ok
    assert operator.epoch_root(1) == tree.root
    assert operator.epoch_total(1) == 22 * UNIT
    provider = chain.deployment.chain(chain.deployment.payees["prov-a"])
    for leaf in leaves:  # prov-a claims its own; prov-b's is claimed by prov-a (anyone may)
        provider.claim(1, leaf.payer, leaf.provider, leaf.amount, tree.proof(leaf))
    assert operator.escrow_of(payer_a) == DEPOSIT - 15 * UNIT
    assert operator.escrow_of(payer_b) == DEPOSIT - 7 * UNIT
    assert operator.earnings_of(prov_a) == 19 * UNIT
    assert operator.earnings_of(prov_b) == 3 * UNIT
    committed = operator.events("EpochCommitted", from_block=start + 1)
    assert [(e["epochId"], e["root"], e["total"]) for e in committed] == [(1, tree.root, 22 * UNIT)]
    claimed = operator.events("Claimed", from_block=start + 1)
    assert sorted((e["payer"], e["provider"], e["amount"]) for e in claimed) == sorted(
        (leaf.payer, leaf.provider, leaf.amount) for leaf in leaves
    )
    before = provider.token_balance(prov_a)
    provider.withdraw_earnings()
    assert provider.token_balance(prov_a) - before == 19 * UNIT
    assert provider.earnings_of(prov_a) == 0
    paid = operator.events("EarningsWithdrawn", from_block=start + 1)
    assert [(e["provider"], e["amount"]) for e in paid] == [(prov_a, 19 * UNIT)]
    # epoch 2, after the withdrawal: exact credit, and no slot creation in the claim's gas
    leaves2 = [LeafValue(2, payer_a, prov_a, 12 * UNIT + 1), LeafValue(2, payer_b, prov_a, 1)]
    tree2 = build_tree(leaves2)
    operator.commit(2, tree2.root, 12 * UNIT + 2)
    assert operator.epoch_total(2, from_block=start + 1) == 12 * UNIT + 2
    gas = provider.claim(2, payer_a, prov_a, 12 * UNIT + 1, tree2.proof(leaves2[0])).gas_used
    assert gas < 60_000  # creating the earnings slot again would cost > 20,000 more
    assert provider.earnings_of(prov_a) == 12 * UNIT + 1
    provider.claim(2, payer_b, prov_a, 1, tree2.proof(leaves2[1]))
    before = provider.token_balance(prov_a)
    provider.withdraw_earnings()
    assert provider.token_balance(prov_a) - before == 12 * UNIT + 2
    assert provider.earnings_of(prov_a) == 0


def test_refusals(chain: Chain) -> None:
    payer, prov = chain.handle.accounts[1].address, chain.deployment.payees["prov-a"].address
    leaf = LeafValue(4, payer, prov, 10 * UNIT)
    other = LeafValue(4, payer, chain.deployment.payees["prov-b"].address, 1)
    tree = build_tree([leaf, other])
    stranger = chain.signer(2)
    with pytest.raises(ContractRevert) as exc:
        stranger.commit(4, tree.root, 10 * UNIT + 1)
    assert exc.value.reason == "AccessControlUnauthorizedAccount"
    chain.operator.commit(4, tree.root, 10 * UNIT + 1)
    for epoch in (4, 3):  # replayed, lower
        with pytest.raises(ContractRevert) as exc:
            chain.operator.sign_commit(epoch, tree.root, 1)
        assert exc.value.reason == "EpochNotIncreasing"
    with pytest.raises(ContractRevert) as exc:
        stranger.claim(4, payer, prov, 11 * UNIT, tree.proof(leaf))
    assert exc.value.reason == "InvalidProof"
    with pytest.raises(ContractRevert) as exc:
        stranger.claim(4, payer, prov, 10 * UNIT, tree.proof(other))
    assert exc.value.reason == "InvalidProof"
    stranger.claim(4, payer, prov, 10 * UNIT, tree.proof(leaf))
    with pytest.raises(ContractRevert) as exc:
        stranger.claim(4, payer, prov, 10 * UNIT, tree.proof(leaf))
    assert exc.value.reason == "AlreadyClaimed"
    assert chain.operator.escrow_of(payer) == DEPOSIT - 10 * UNIT


def test_a_claim_above_escrow_waits_for_a_top_up(chain: Chain) -> None:
    payer_chain = chain.signer(3)
    payer, prov = chain.handle.accounts[3].address, chain.deployment.payees["prov-c"].address
    leaf = LeafValue(1, payer, prov, DEPOSIT + 1)
    tree = build_tree([leaf])
    chain.operator.commit(1, tree.root, leaf.amount)
    with pytest.raises(ContractRevert) as exc:
        payer_chain.claim(1, payer, prov, leaf.amount, [])
    assert exc.value.reason == "InsufficientEscrow"
    assert exc.value.error_args["available"] == DEPOSIT
    assert not chain.operator.is_claimed(1, payer, prov)
    payer_chain.deposit(1)
    payer_chain.claim(1, payer, prov, leaf.amount, [])
    assert chain.operator.escrow_of(payer) == 0
    assert chain.operator.earnings_of(prov) == leaf.amount


def test_an_epoch_is_committed_once_whatever_is_sent(chain: Chain) -> None:
    operator = chain.operator
    root_a = build_tree(
        [LeafValue(9, chain.handle.accounts[1].address, chain.handle.accounts[5].address, 1)]
    ).root
    root_b = "0x" + "77" * 32
    tx = operator.sign_commit(9, root_a, 1)
    assert operator.send(tx) == tx.hash
    assert operator.send(tx) == tx.hash  # mined already: the same transaction
    assert operator.wait_receipt(tx.hash).ok
    assert operator.epoch_root(9) == root_a
    # a reorg (snapshot/revert) takes the commit away: its receipt's confirmations drop to 0
    before = anvil.snapshot(chain.handle)
    undone = operator.sign_commit(11, root_b, 3)
    operator.send(undone)
    receipt = operator.wait_receipt(undone.hash)
    anvil.mine(chain.handle, 2)
    assert operator.confirmations(receipt) == 3
    assert anvil.revert(chain.handle, before)
    assert operator.confirmations(receipt) == 0
    assert operator.epoch_root(11) is None
    # two commits of epoch 10 signed before either is mined: one lands, the other fails
    anvil.set_automine(chain.handle, False)
    first = operator.sign_commit(10, root_a, 1)
    second = operator.sign_commit(10, root_b, 2, nonce=first.nonce + 1)
    operator.send(first)
    operator.send(second)
    assert operator.send(first) == first.hash  # "already known" while pending
    assert operator.receipt(first.hash) is None
    anvil.mine(chain.handle)
    assert operator.wait_receipt(first.hash).ok
    assert not operator.wait_receipt(second.hash).ok
    assert operator.epoch_root(10) == root_a
    assert operator.epoch_total(10) == 1
    assert operator.last_epoch_id() == 10
    # a pending commit is replaced only by one paying more (same nonce)
    pending = operator.sign_commit(12, root_a, 1)
    operator.send(pending)
    same_fee = operator.sign_commit(12, root_b, 2, nonce=pending.nonce)
    with pytest.raises(ChainError) as exc:
        operator.send(same_fee)
    assert exc.value.kind == "replacement-underpriced"
    assert not exc.value.transient
    bumped = operator.sign_commit(12, root_b, 2, nonce=pending.nonce, fee_percent=150)
    operator.send(bumped)
    anvil.mine(chain.handle)
    assert operator.wait_receipt(bumped.hash).ok
    assert operator.receipt(pending.hash) is None
    assert operator.epoch_root(12) == root_b
