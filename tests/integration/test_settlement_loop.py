"""The settlement loop against the bed's API server and a real anvil: committed exactly once.

Exactly once: ``lastEpochId`` is 1, one EpochCommitted event for it, the status Confirmed,
after every fault. The loop's step is driven directly (a fake clock moves epochs along;
nothing else runs the loop: they need a real API server with the CRDs, not the hub process;
they use a provider cluster's, where no hub runs), against a fresh anvil and a fresh
Settlement contract per test. The last test runs the full ``kommons hub`` of the bed's stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from kommons.api import DepartedUsage, SettlementEpoch
from kommons.hub.handover import hand_over_to_epoch
from kommons.hub.settlement_loop import SettlementLoop, SettlementOptions
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons.money import parse_units
from kommons.settlement.chain import (
    SettlementChain,
    SignedTx,
    deploy_settlement,
    deploy_token,
    mint,
    web3_for,
)
from kommons.settlement.merkle import LeafValue, build_tree
from kommons_testbed.anvil import mine, rpc, set_automine, snapshot, start_anvil
from kommons_testbed.anvil import revert as evm_revert
from kommons_testbed.bed import Testbed
from kommons_testbed.handles import ChainHandle
from kommons_testbed.processes import stop, wait_for
from kommons_testbed.proxy import TcpProxy
from kommons_testbed.stack import Stack, install_crds
from tests.integration.conftest import lease_body

TENANT = "sl-tenant"
LEASE = "sl-lease"
ACCOUNTS = ("sl-acme", "sl-beta")
PROVIDERS = ("sl-prov-a", "sl-prov-b")
EPOCH = 60
SEAL_DELAY = 5
USAGE = [  # (account, provider, amount): three leaves, one of them from two placements
    ("sl-acme", "sl-prov-a", "1.5", "p1"),
    ("sl-acme", "sl-prov-a", "0.000001", "p2"),
    ("sl-acme", "sl-prov-b", "0.25", "p3"),
    ("sl-beta", "sl-prov-a", "2", "p4"),
]
EPOCH_COMMITTED = "0x" + keccak(text="EpochCommitted(uint64,bytes32,uint256)").hex()


@dataclass
class Clock:
    """The loop's clock, moved by the test."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """One test's chain, contract and API objects."""

    kube: Kube
    handle: ChainHandle
    settlement: str
    operator_key: str
    clock: Clock
    payers: dict[str, str]
    payees: dict[str, str]
    kubeconfig: Path
    """Of the API server the loop uses."""

    def chain(self, rpc_url: str | None = None) -> SettlementChain:
        return SettlementChain.connect(
            rpc_url or self.handle.rpc_url, self.settlement, private_key=self.operator_key
        )

    def loop(
        self, chain: SettlementChain | None = None, *, confirmations: int = 1, claim: bool = False
    ) -> SettlementLoop:
        options = SettlementOptions(
            epoch_seconds=EPOCH,
            seal_delay_seconds=SEAL_DELAY,
            confirmations=confirmations,
            step_seconds=0,
            claim_for_providers=claim,
        )
        return SettlementLoop(self.kube, chain or self.chain(), options, clock=self.clock)

    def epoch(self, epoch_id: int = 1) -> SettlementEpoch:
        return SettlementEpoch.model_validate(
            self.kube.get(r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}")
        )

    def phase(self, epoch_id: int = 1) -> str | None:
        status = self.epoch(epoch_id).status
        return status.phase if status is not None else None

    def expected_root(self) -> str:
        sums: dict[tuple[str, str], int] = {}
        units = {"1.5": 1_500_000, "0.000001": 1, "0.25": 250_000, "2": 2_000_000}
        for account, provider, amount, _ in USAGE:
            sums[(account, provider)] = sums.get((account, provider), 0) + units[amount]
        leaves = [
            LeafValue(1, self.payers[a], self.payees[p], amount) for (a, p), amount in sums.items()
        ]
        return build_tree(leaves).root

    def commits(self) -> list[dict[str, Any]]:
        """The EpochCommitted logs of epoch 1 (read with raw JSON-RPC, not the project's code)."""
        logs = rpc(
            self.handle,
            "eth_getLogs",
            [{"fromBlock": "0x0", "toBlock": "latest", "address": self.settlement}],
        )
        return [
            log
            for log in logs
            if log["topics"][0] == EPOCH_COMMITTED and int(log["topics"][1], 16) == 1
        ]


def root_written(world: World, epoch_id: int = 1) -> bool:
    """Whether the epoch is sealed with its root (frozen alone is not)."""
    status = world.epoch(epoch_id).status
    return status is not None and status.root is not None


def step_until(loop: SettlementLoop, done: Callable[[], bool], *, steps: int = 40) -> None:
    """Step the loop until ``done()``; fail after ``steps`` steps."""
    for _ in range(steps):
        loop.step()
        if done():
            return
    pytest.fail(f"condition not reached after {steps} steps")


def assert_committed_once(world: World) -> None:
    """Epoch 1: lastEpochId = 1, the sealed root, one EpochCommitted event, status Confirmed."""
    epoch = world.epoch()
    assert epoch.status is not None
    assert epoch.status.phase == "Confirmed", epoch.status.message
    root = world.expected_root()
    assert epoch.status.root == root
    chain = world.chain()
    assert chain.last_epoch_id() == 1
    assert chain.epoch_root(1) == root
    commits = world.commits()
    assert len(commits) == 1
    assert epoch.status.tx_hash == commits[0]["transactionHash"]
    assert epoch.status.tx_hash in (epoch.status.tx_hashes or [])
    assert epoch.status.block_number == int(commits[0]["blockNumber"], 16)


def deploy(handle: ChainHandle, key: str) -> str:
    """A TestToken and a Settlement whose admin and operator is anvil account 0."""
    w3 = web3_for(handle.rpc_url)
    operator = handle.accounts[0].address
    token = deploy_token(w3, key)
    settlement = deploy_settlement(
        w3, key, token=token, admin=operator, operator=operator, withdrawal_delay=3600
    )
    for payer in handle.accounts[1:3]:  # the two billing accounts' escrow: 10 tokens each
        mint(w3, key, token, payer.address, 10_000_000)
        as_payer = SettlementChain.connect(handle.rpc_url, settlement, payer.private_key)
        as_payer.approve(10_000_000)
        as_payer.deposit(10_000_000)
    return str(settlement)


# --- fixtures ------------------------------------------------------------------------------


DRIVER_CLUSTER = "prov-c"
"""The API server the driven loop uses: a real one on which no hub runs a settlement loop (the
session's stack may run a hub on the hub cluster, whose loop would act on the same epochs)."""


@pytest.fixture(scope="module")
def kube(testbed: Testbed) -> Kube:
    client = connect(testbed.providers[DRIVER_CLUSTER].kubeconfig, field_manager="settle-tests")
    install_crds(client)
    return client


def _apply_objects(kube: Kube, payers: dict[str, str], payees: dict[str, str]) -> None:
    for name, address in payers.items():
        kube.apply(
            r.BILLING_ACCOUNTS,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "BillingAccount",
                "metadata": {"name": name},
                "spec": {"address": address, "namespaceSelector": {"matchLabels": {"sl": name}}},
            },
        )
    for name, address in payees.items():
        kube.apply(
            r.PROVIDERS,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "Provider",
                "metadata": {"name": name},
                "spec": {
                    "region": "test",
                    "payoutAddress": address,
                    "pricing": {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001"},
                    "cordoned": True,
                },
            },
        )
    if kube.get_or_none(r.NAMESPACES, TENANT) is None:
        kube.create(
            r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT}}
        )
    kube.delete(r.COMPUTE_LEASES, LEASE, TENANT)
    wait_for(
        lambda: kube.get_or_none(r.COMPUTE_LEASES, LEASE, TENANT) is None,
        timeout=60,
        what="the previous test's lease to be gone",
    )
    created = kube.create(r.COMPUTE_LEASES, lease_body(LEASE, TENANT, pool="sl-none"), TENANT)
    assert created["metadata"]["name"] == LEASE


def _write_usage(kube: Kube, epoch_id: int = 1) -> None:
    usage = [
        {
            "epochId": epoch_id,
            "provider": provider,
            "placementUid": uid,
            "billingAccount": account,
            "readySeconds": 60,
            "amount": amount,
        }
        for account, provider, amount, uid in USAGE
    ]
    kube.patch(r.COMPUTE_LEASES, LEASE, {"status": {"usage": usage}}, TENANT, subresource="status")


@pytest.fixture
def world(kube: Kube, testbed: Testbed, tmp_path: Path) -> Iterator[World]:
    for body in kube.list(r.SETTLEMENT_EPOCHS):
        kube.delete(r.SETTLEMENT_EPOCHS, body["metadata"]["name"])
    record, handle = start_anvil(tmp_path)
    try:
        accounts = handle.accounts
        operator = accounts[0]
        settlement = deploy(handle, operator.private_key)
        payers = {name: accounts[1 + i].address for i, name in enumerate(ACCOUNTS)}
        payees = {name: accounts[5 + i].address for i, name in enumerate(PROVIDERS)}
        _apply_objects(kube, payers, payees)
        world = World(
            kube,
            handle,
            settlement,
            operator.private_key,
            Clock(),
            payers,
            payees,
            testbed.providers[DRIVER_CLUSTER].kubeconfig,
        )
        yield world
    finally:
        stop(record)
        kube.delete(r.COMPUTE_LEASES, LEASE, TENANT)  # its usage would bill the next epoch 1


def open_and_end_epoch_1(world: World) -> None:
    """Create epoch 1 at the clock, write its usage, move past its end + seal delay, seal it.

    Steps a loop of its own that does everything but the chain part, so the test's ``loop``
    takes the epoch from ``Sealed`` (with its root) on.
    """
    sealer = world.loop()
    sealer._commit = lambda *_: None  # type: ignore[method-assign]
    sealer.step()
    assert world.phase() == "Open"
    _write_usage(world.kube)
    world.clock.now += timedelta(seconds=EPOCH + SEAL_DELAY)

    step_until(sealer, lambda: root_written(world))
    assert world.phase() == "Sealed"
    assert world.chain().last_epoch_id() == 0


# --- tests -----------------------------------------------------------------------------------


def test_an_epoch_is_sealed_and_committed_once(world: World) -> None:
    loop = world.loop()
    open_and_end_epoch_1(world)
    epoch = world.epoch()
    assert epoch.status is not None
    assert epoch.status.leaf_count == 3
    assert epoch.status.total == "3.750001"
    step_until(loop, lambda: world.phase() == "Confirmed")
    assert_committed_once(world)
    # the next epoch followed back to back and is Open
    nxt = world.epoch(2)
    assert nxt.spec.start == epoch.spec.end
    assert world.phase(2) == "Open"
    # more steps change nothing
    for _ in range(3):
        loop.step()
    assert_committed_once(world)


def test_a_restarted_hub_waits_the_seal_delay_before_freezing_an_overdue_epoch(
    world: World,
) -> None:
    before = world.loop()
    before.step()
    assert world.phase() == "Open"
    # the hub is down past epoch 1's end + seal delay; a new one starts acting
    world.clock.now += timedelta(seconds=EPOCH + SEAL_DELAY + 30)
    restarted = world.loop()
    restarted._commit = lambda *_: None  # type: ignore[method-assign]
    restarted.step()
    assert world.phase() == "Open", "frozen before the agents' reports could be ingested"
    assert world.phase(2) == "Open"  # the missed epoch was created all the same
    # what the agents wrote while no hub acted is ingested in the new hub's first seconds
    _write_usage(world.kube)
    world.clock.now += timedelta(seconds=SEAL_DELAY - 1)
    restarted.step()
    assert world.phase() == "Open"
    world.clock.now += timedelta(seconds=1)

    step_until(restarted, lambda: root_written(world))
    epoch = world.epoch()
    assert epoch.status is not None
    assert epoch.status.total == "3.750001"  # every report billed, none late
    assert epoch.status.leaf_count == 3


def _departed(placement_uid: str, amount: str) -> dict[str, Any]:
    return DepartedUsage(
        lease=f"{TENANT}/gone",
        lease_uid="uid-gone",
        placement_uid=placement_uid,
        provider="sl-prov-b",
        billing_account="sl-beta",
        ready_seconds=60,
        amount=amount,
    ).to_api()


def test_usage_handed_over_by_a_deleted_lease_is_sealed_once(world: World) -> None:
    sealer = world.loop()
    sealer._commit = lambda *_: None  # type: ignore[method-assign]
    sealer.step()
    _write_usage(world.kube)  # the lease still there: 3.750001 in three leaves
    world.clock.now += timedelta(seconds=EPOCH + SEAL_DELAY)
    sealer.step()  # frozen: phase Sealed, no root yet
    frozen = world.epoch()
    assert frozen.status is not None
    assert (frozen.status.phase, frozen.status.root) == ("Sealed", None)

    # a lease goes after the seal read the epoch: its usage (one placement new, one the
    # remaining lease also shows) is handed over with the real conditional write
    gone = [_departed("gone-1", "0.5"), _departed("p3", "0.25")]
    assert hand_over_to_epoch(world.kube, 1, gone)
    sealer._seal(frozen, world.clock.now)  # over the stale read: refused by the API server
    status = world.epoch().status
    assert status is not None
    assert status.root is None

    step_until(sealer, lambda: root_written(world))
    epoch = world.epoch()
    assert epoch.status is not None
    assert epoch.status.total == "4.250001"  # + 0.5 once; p3 counted from the lease only
    leaves = {(x.billing_account, x.provider): x.amount for x in epoch.status.leaves or []}
    assert leaves[("sl-beta", "sl-prov-b")] == "0.5"
    # a hand-over after the seal changes nothing: the leaves already bill the lease
    assert hand_over_to_epoch(world.kube, 1, [_departed("gone-2", "9")])
    after = world.epoch().status
    assert after is not None
    assert after.total == "4.250001"
    assert [d.placement_uid for d in after.departed or []] == ["gone-1", "p3"]


class Killed(BaseException):
    """What a SIGKILL does to the step: it stops right there."""


def test_sigkill_between_signing_and_sending(world: World) -> None:
    killed = world.loop()

    def die(_: int, tx: SignedTx) -> None:
        raise Killed(tx.hash)

    killed._send = die  # type: ignore[method-assign,assignment]
    open_and_end_epoch_1(world)
    with pytest.raises(Killed):
        step_until(killed, lambda: False)
    status = world.epoch().status
    assert status is not None
    assert status.phase == "Submitted"
    assert status.tx_hash is not None  # recorded before the send that never happened
    assert world.chain().receipt(status.tx_hash) is None
    # a new hub (fresh loop, nothing in memory) finds it and sends the same transaction
    step_until(world.loop(), lambda: world.phase() == "Confirmed")
    assert_committed_once(world)
    assert world.epoch().status.tx_hashes == [status.tx_hash]  # type: ignore[union-attr]


def test_sigkill_after_sending_before_confirmation(world: World) -> None:
    loop = world.loop(confirmations=3)
    open_and_end_epoch_1(world)
    step_until(loop, lambda: world.phase() == "Submitted")
    status = world.epoch().status
    assert status is not None
    # the first hub is gone; a new one confirms once deep enough, without a second commit
    fresh = world.loop(confirmations=3)
    mine(world.handle, 3)
    step_until(fresh, lambda: world.phase() == "Confirmed")
    assert_committed_once(world)
    assert world.epoch().status.attempts == 1  # type: ignore[union-attr]


def test_rpc_outage(world: World) -> None:
    host, port = world.handle.rpc_url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    try:
        chain = world.chain(f"http://127.0.0.1:{proxy.port}")
        loop = world.loop(chain)
        open_and_end_epoch_1(world)
        proxy.cut()
        for _ in range(5):  # the chain is down: the loop waits, nothing breaks
            loop.step()
        assert world.phase() in ("Sealed", "Submitted")
        proxy.restore()
        step_until(loop, lambda: world.phase() == "Confirmed")
    finally:
        proxy.close()
    assert_committed_once(world)


def test_rpc_outage_after_signing(world: World) -> None:
    host, port = world.handle.rpc_url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    try:
        loop = world.loop(world.chain(f"http://127.0.0.1:{proxy.port}"))
        open_and_end_epoch_1(world)
        real_send = loop.chain.send

        def cut_then_send(tx: SignedTx) -> str:
            proxy.cut()  # the outage starts between the record and the send
            return real_send(tx)

        loop.chain.send = cut_then_send  # type: ignore[method-assign]
        loop.step()
        assert world.phase() == "Submitted"
        loop.chain.send = real_send  # type: ignore[method-assign]
        for _ in range(3):
            loop.step()
        proxy.restore()
        step_until(loop, lambda: world.phase() == "Confirmed")
    finally:
        proxy.close()
    assert_committed_once(world)


def test_dropped_transaction(world: World) -> None:
    loop = world.loop()
    open_and_end_epoch_1(world)
    set_automine(world.handle, False)
    step_until(loop, lambda: world.phase() == "Submitted")
    rpc(world.handle, "anvil_dropAllTransactions")
    set_automine(world.handle, True)
    mine(world.handle)
    status = world.epoch().status
    assert status is not None
    assert status.tx_hash is not None
    assert world.chain().receipt(status.tx_hash) is None  # it is gone
    step_until(loop, lambda: world.phase() == "Confirmed")
    assert_committed_once(world)
    assert world.epoch().status.attempts == 1  # type: ignore[union-attr]  # the same tx again


def test_nonce_gap(world: World) -> None:
    loop = world.loop()
    open_and_end_epoch_1(world)
    operator = world.handle.accounts[0].address
    set_automine(world.handle, False)
    # another operator transaction is pending, so the commit is signed with the nonce after it
    other = rpc(
        world.handle,
        "eth_sendTransaction",
        [{"from": operator, "to": operator, "value": "0x1"}],
    )
    step_until(loop, lambda: world.phase() == "Submitted")
    status = world.epoch().status
    assert status is not None
    mined = int(rpc(world.handle, "eth_getTransactionCount", [operator, "latest"]), 16)
    assert status.tx_nonce == mined + 1
    # ... and that transaction is dropped: a gap below the commit, which can never be mined
    rpc(world.handle, "anvil_dropTransaction", [other])
    set_automine(world.handle, True)
    mine(world.handle)
    assert world.chain().receipt(status.tx_hash or "") is None
    step_until(loop, lambda: world.phase() == "Confirmed")
    mine(world.handle, 2)  # the first commit may now run: it must revert, not commit again
    assert_committed_once(world)
    assert world.epoch().status.attempts == 2  # type: ignore[union-attr]


def test_reorg_before_confirmation(world: World) -> None:
    loop = world.loop(confirmations=3)
    open_and_end_epoch_1(world)
    before = snapshot(world.handle)
    step_until(loop, lambda: (world.epoch().status.block_number or 0) > 0)  # type: ignore[union-attr]
    assert world.chain().epoch_root(1) is not None
    assert evm_revert(world.handle, before)  # the block with the commit is gone
    assert world.chain().epoch_root(1) is None
    assert world.commits() == []
    for _ in range(10):
        loop.step()
        if world.chain().epoch_root(1) is not None:
            break
        mine(world.handle)
    mine(world.handle, 3)
    step_until(loop, lambda: world.phase() == "Confirmed")
    assert_committed_once(world)
    assert world.epoch().status.attempts == 1  # type: ignore[union-attr]  # the same tx again


def test_committed_with_another_root_fails_loudly(world: World) -> None:
    loop = world.loop()
    open_and_end_epoch_1(world)
    world.chain().send(world.chain().sign_commit(1, "0x" + "77" * 32, 5))
    step_until(loop, lambda: world.phase() == "Failed")
    status = world.epoch().status
    assert status is not None
    assert "0x" + "77" * 32 in (status.message or "")
    assert len(world.commits()) == 1  # nothing more was sent
    assert status.tx_hash is None


def _kommons_claim(world: World, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    key_file = tmp_path / "claimer.key"
    key_file.write_text(world.handle.accounts[9].private_key + "\n")  # anyone may claim
    key_file.chmod(0o600)
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "kommons"),
            "claim",
            "1",
            *args,
            "--key-file",
            str(key_file),
            "--chain-rpc",
            world.handle.rpc_url,
            "--settlement-address",
            world.settlement,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_claims_by_the_cli_and_for_providers(world: World, tmp_path: Path) -> None:
    loop = world.loop()
    open_and_end_epoch_1(world)
    step_until(loop, lambda: world.phase() == "Confirmed")
    chain = world.chain()
    prov_a, prov_b = (world.payees[p] for p in PROVIDERS)
    # a provider claims with the CLI, from the object passed along as a file
    epoch_file = tmp_path / "epoch-1.json"
    epoch_file.write_text(json.dumps(world.kube.get(r.SETTLEMENT_EPOCHS, "epoch-1")))
    done = _kommons_claim(
        world, tmp_path, "--provider", "sl-prov-b", "--from-file", str(epoch_file)
    )
    assert done.returncode == 0, done.stderr
    assert "claimed 0.25" in done.stdout
    assert world.handle.accounts[9].private_key not in done.stdout + done.stderr
    assert chain.earnings_of(prov_b) == 250_000
    # reading the epoch from the API server with a kubeconfig (checks the proofs, sends nothing)
    dry = _kommons_claim(
        world,
        tmp_path,
        "--provider",
        "sl-prov-a",
        "--kubeconfig",
        str(world.kubeconfig),
        "--dry-run",
    )
    assert dry.returncode == 0, dry.stderr
    assert "1.500001 from sl-acme" in dry.stdout
    assert "2 from sl-beta" in dry.stdout
    assert chain.earnings_of(prov_a) == 0
    # the hub claims the rest for the providers; the leaf already claimed is only marked
    step_until(
        world.loop(claim=True),
        lambda: all(
            leaf.claimed
            for leaf in world.epoch().status.leaves or []  # type: ignore[union-attr]
        ),
    )
    assert chain.earnings_of(prov_a) == 1_500_001 + 2_000_000
    assert chain.earnings_of(prov_b) == 250_000
    acme, beta = (world.payers[a] for a in ACCOUNTS)
    assert chain.escrow_of(acme) == 10_000_000 - 1_500_001 - 250_000
    assert chain.escrow_of(beta) == 10_000_000 - 2_000_000
    # claiming again pays nothing and says so
    again = _kommons_claim(world, tmp_path, "--payee", prov_b, "--from-file", str(epoch_file))
    assert again.returncode == 0, again.stderr
    assert "already claimed" in again.stdout
    assert chain.earnings_of(prov_b) == 250_000


# --- the full hub process --------------------------------------------------------------------


def test_the_hub_commits_each_epoch_once_across_a_sigkill(stack: Stack) -> None:
    """``kommons hub`` SIGKILLed with a commit pending (and lost by the node): each epoch once.

    8 s epochs on the bed's Settlement; the restarted hub commits every epoch exactly once and
    claims for the providers.
    """
    deployment = stack.settlement
    assert deployment is not None, "the bed's stack runs without a chain"
    kube = stack.hub_kube()
    chain = deployment.chain()
    stack.stop_hubs()
    for body in kube.list(r.SETTLEMENT_EPOCHS):
        kube.delete(r.SETTLEMENT_EPOCHS, body["metadata"]["name"])
    first = chain.last_epoch_id() + 1
    earned = {p: chain.earnings_of(deployment.payees[p].address) for p in ("prov-a", "prov-b")}
    namespace = f"sl-hub-{uuid.uuid4().hex[:6]}"
    kube.create(
        r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    kube.create(r.COMPUTE_LEASES, lease_body("sl-hub-lease", namespace, pool="sl-none"), namespace)
    args = ("--epoch-seconds", "8", "--seal-delay-seconds", "1", "--claim-for-providers")
    stack.start_hub(*args, settle=True)
    try:
        # the hub writes the (unplaceable) lease's status once; then the usage of the two
        # epochs checked below is written as metering would (the hub's status writes leave it
        # alone). No more: a deleted lease waits for every epoch it has usage in to settle.
        wait_for(
            lambda: bool(kube.get(r.COMPUTE_LEASES, "sl-hub-lease", namespace).get("status")),
            timeout=120,
            what="the hub to write the lease's status",
        )
        usage = [
            {
                "epochId": epoch_id,
                "provider": provider,
                "placementUid": f"u-{provider}",
                "billingAccount": "it-account",
                "readySeconds": 8,
                "amount": amount,
            }
            for epoch_id in (first, first + 1)
            for provider, amount in (("prov-a", "0.5"), ("prov-b", "0.25"))
        ]
        kube.patch(
            r.COMPUTE_LEASES,
            "sl-hub-lease",
            {"status": {"usage": usage}},
            namespace,
            subresource="status",
        )
        rpc(deployment.rpc_url, "evm_setAutomine", [False])
        epoch_name = f"epoch-{first}"

        def phase(name: str) -> str | None:
            body = kube.get_or_none(r.SETTLEMENT_EPOCHS, name)
            return ((body or {}).get("status") or {}).get("phase")

        wait_for(lambda: phase(epoch_name) == "Submitted", timeout=180, what="a pending commit")
        stack.kill("hub")  # SIGKILL with the commit signed, recorded, sent, not mined
        rpc(deployment.rpc_url, "anvil_dropAllTransactions")  # ... and lost by the node
        rpc(deployment.rpc_url, "evm_setAutomine", [True])
        stack.start_hub(*args, settle=True)
        later = f"epoch-{first + 1}"
        wait_for(
            lambda: phase(epoch_name) == "Confirmed" and phase(later) == "Confirmed",
            timeout=240,
            what=f"{epoch_name} and {later} confirmed",
        )

        def claimed(name: str) -> bool:
            leaves = (kube.get(r.SETTLEMENT_EPOCHS, name).get("status") or {}).get("leaves")
            return bool(leaves) and all(leaf.get("claimed") for leaf in leaves or [])

        wait_for(lambda: claimed(epoch_name) and claimed(later), timeout=120, what="claims")
    finally:
        rpc(deployment.rpc_url, "evm_setAutomine", [True])
        kube.delete(r.COMPUTE_LEASES, "sl-hub-lease", namespace)  # finalized by the hub
        wait_for(
            lambda: kube.get_or_none(r.COMPUTE_LEASES, "sl-hub-lease", namespace) is None,
            timeout=120,
            what="the test's lease to be gone",
        )
        kube.delete(r.NAMESPACES, namespace)
        stack.stop_hubs()
        stack.restart_hub()
    logs = rpc(
        deployment.rpc_url,
        "eth_getLogs",
        [{"fromBlock": "0x0", "toBlock": "latest", "address": deployment.settlement}],
    )
    for epoch_id in (first, first + 1):
        commits = [
            log
            for log in logs
            if log["topics"][0] == EPOCH_COMMITTED and int(log["topics"][1], 16) == epoch_id
        ]
        assert len(commits) == 1, f"epoch {epoch_id} committed {len(commits)} times"
        status = kube.get(r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}")["status"]
        assert status["txHash"] == commits[0]["transactionHash"]
        # this test's usage, plus whatever the session's other leases ran in the epoch
        _root, committed_total = decode(
            ["bytes32", "uint256"], bytes.fromhex(commits[0]["data"][2:])
        )
        assert parse_units(status["total"]) == committed_total >= 750_000
    assert chain.last_epoch_id() >= first + 1
    # two epochs claimed (at least: the hub may have settled more before it was stopped)
    assert chain.earnings_of(deployment.payees["prov-a"].address) >= earned["prov-a"] + 1_000_000
    assert chain.earnings_of(deployment.payees["prov-b"].address) >= earned["prov-b"] + 500_000
