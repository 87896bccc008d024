"""End to end on the real bed and anvil: metered leases settled on chain, to the base unit.

Two tenants (two BillingAccounts paying from two anvil accounts), three providers, leases
spread over all three, short epochs (``--epoch-seconds`` below), and a provider failure in the
middle (its agent SIGKILLed: the hub fails its replicas over and stops billing it at its last
heartbeat). The leases are then suspended (nothing more to meter), every epoch they have usage
in is sealed, committed and confirmed, the providers claim with ``kommons claim`` and withdraw
their earnings.

The chain is then read with raw JSON-RPC (``eth_call`` / ``eth_getLogs`` through
``kommons_testbed.anvil.rpc`` and ``eth_abi``), not with the project's adapter, and must agree
exactly, in base units:

- per epoch: the committed root is the epoch's ``status.root``; the total of its one
  ``EpochCommitted`` log (the contract stores no totals) is Σ of its leaves;
- per payer: escrow debited = Σ of its leaves = Σ of its ``Claimed`` events = Σ of its leases'
  ``status.cost.settled`` (the metered amounts) = Σ of their accrued cost;
- per provider: token balance gained = Σ of the ``Claimed`` events paying it in the window;
- the failed provider has no leaf in an epoch that started after its outage began.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons.money import parse_units
from kommons_testbed.anvil import rpc
from kommons_testbed.manifests import apply_market, apply_namespace, exists, lease_manifest
from kommons_testbed.processes import wait_for
from kommons_testbed.settlement_bed import SettlementDeployment, fresh_payer
from kommons_testbed.stack import Stack
from tests.integration.conftest import wait_lease

pytestmark = pytest.mark.bed

EPOCH_SECONDS = "15"
SEAL_DELAY = "8"
"""Longer than the bed agents' metering report interval (3 s), so no ready second is late."""
HEARTBEAT_TIMEOUT = "10"
POOL = "e2e-settle"
LABEL = "kommons.io/e2e-settle"
PROVIDERS = ("prov-a", "prov-b", "prov-c")
VICTIM = "prov-c"
RUN = uuid.uuid4().hex[:6]
TENANTS = {f"e2e-a-{RUN}": 3, f"e2e-b-{RUN}": 2}
"""Tenant namespace (also the name of its BillingAccount) -> replicas of its lease. Each tenant
pays from an escrow account of its own (``fresh_payer``), so nothing else on the bed touches
the balances compared."""
REPO = Path(__file__).resolve().parents[2]
DEPOSIT = 100 * 10**6
"""Each tenant's escrow: 100 tokens (6 decimals), far more than the test's leases cost."""


# --- raw chain reads (independent of kommons.settlement) ---------------------------------------


def _call(url: str, to: str, signature: str, types: Sequence[str], args: Sequence[Any]) -> int:
    """``eth_call`` of a view returning one uint/bytes32, decoded as an int."""
    data = keccak(text=signature)[:4] + encode(list(types), list(args))
    out = rpc(url, "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
    (value,) = decode(["uint256"], bytes.fromhex(str(out)[2:]))
    return int(value)


def _claimed_logs(url: str, settlement: str, from_block: int) -> list[tuple[int, str, str, int]]:
    """Every ``Claimed(epochId, payer, provider, amount)`` since ``from_block``."""
    topic = "0x" + keccak(text="Claimed(uint64,address,address,uint256)").hex()
    logs = rpc(
        url,
        "eth_getLogs",
        [
            {
                "address": settlement,
                "fromBlock": hex(from_block),
                "toBlock": "latest",
                "topics": [topic],
            }
        ],
    )
    out: list[tuple[int, str, str, int]] = []
    for log in logs:
        epoch = int(log["topics"][1], 16)
        payer = to_checksum_address("0x" + log["topics"][2][-40:])
        provider = to_checksum_address("0x" + log["topics"][3][-40:])
        (amount,) = decode(["uint256"], bytes.fromhex(log["data"][2:]))
        out.append((epoch, payer, provider, int(amount)))
    return out


class Chain:
    """The balances the test compares, read with raw JSON-RPC."""

    def __init__(self, deployment: SettlementDeployment) -> None:
        self.url = deployment.rpc_url
        self.settlement = deployment.settlement
        self.token = deployment.token

    def escrow(self, payer: str) -> int:
        return _call(self.url, self.settlement, "escrowOf(address)", ["address"], [payer])

    def earnings(self, provider: str) -> int:
        return _call(self.url, self.settlement, "earningsOf(address)", ["address"], [provider])

    def tokens(self, account: str) -> int:
        return _call(self.url, self.token, "balanceOf(address)", ["address"], [account])

    def root(self, epoch: int) -> str:
        value = _call(self.url, self.settlement, "epochRoot(uint64)", ["uint64"], [epoch])
        return "0x" + value.to_bytes(32, "big").hex()

    def total(self, epoch: int) -> int:
        """The ``total`` of the epoch's ``EpochCommitted`` log (it must have exactly one)."""
        topic = "0x" + keccak(text="EpochCommitted(uint64,bytes32,uint256)").hex()
        epoch_topic = "0x" + encode(["uint64"], [epoch]).hex()
        query = {
            "address": self.settlement,
            "fromBlock": "0x0",
            "toBlock": "latest",
            "topics": [topic, epoch_topic],
        }
        logs = rpc(self.url, "eth_getLogs", [query])
        assert len(logs) == 1, f"epoch {epoch} has {len(logs)} EpochCommitted logs"
        _root, total = decode(["bytes32", "uint256"], bytes.fromhex(logs[0]["data"][2:]))
        return int(total)

    def block(self) -> int:
        return int(str(rpc(self.url, "eth_blockNumber")), 16)


# --- the market ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settling_hub(stack: Stack) -> Iterator[Stack]:
    """The hub restarted with short epochs and heartbeat timeout; the default one afterwards."""
    assert stack.settlement is not None, "the bed's stack settles on anvil"
    with stack.hub_with(
        "--epoch-seconds",
        EPOCH_SECONDS,
        "--seal-delay-seconds",
        SEAL_DELAY,
        "--heartbeat-timeout",
        HEARTBEAT_TIMEOUT,
        settle=True,
    ):
        yield stack


def _market(hub: Kube, deployment: SettlementDeployment) -> dict[str, str]:
    """The pool, the two accounts and namespaces; returns namespace -> payer address."""
    payers = {}
    for namespace in TENANTS:
        payer = fresh_payer(deployment, deposit=DEPOSIT).address
        apply_market(
            hub,
            pool=POOL,
            strategy="Spread",
            tenants=exists(LABEL),
            account=namespace,
            billed={"matchLabels": {LABEL: namespace}},
            payer=payer,
        )
        apply_namespace(hub, namespace, {LABEL: namespace})
        payers[namespace] = payer
    return payers


def _lease(hub: Kube, namespace: str) -> dict[str, Any]:
    return hub.get(r.COMPUTE_LEASES, "work", namespace)


def _providers_of(lease: dict[str, Any]) -> set[str]:
    return {p["provider"] for p in (lease.get("status") or {}).get("placements") or []}


def _epochs(hub: Kube) -> dict[int, dict[str, Any]]:
    return {int(e["spec"]["epochId"]): e for e in hub.list(r.SETTLEMENT_EPOCHS)}


def _settled(hub: Kube) -> Callable[[], bool]:
    def done() -> bool:
        for namespace in TENANTS:
            status = _lease(hub, namespace).get("status") or {}
            cost = status.get("cost") or {}
            if status.get("usage") or not cost.get("settled"):
                return False
            if cost.get("settled") != cost.get("accrued"):
                return False
        return True

    return done


def _claim(
    stack: Stack, deployment: SettlementDeployment, epoch: int, provider: str, key_dir: Path
) -> None:
    key_file = key_dir / f"{provider}.key"
    key_file.write_text(deployment.payees[provider].private_key)
    key_file.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kommons.cli",
            "claim",
            str(epoch),
            "--provider",
            provider,
            "--kubeconfig",
            str(stack.hub_kubeconfig),
            "--chain-rpc",
            deployment.rpc_url,
            "--settlement-address",
            deployment.settlement,
            "--key-file",
            str(key_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_tenants_three_providers_failover_settle_to_the_base_unit(
    hub: Kube, settling_hub: Stack, tmp_path: Path
) -> None:
    stack = settling_hub
    deployment = stack.settlement
    assert deployment is not None
    chain = Chain(deployment)
    payers = _market(hub, deployment)
    payees = {p: deployment.payees[p].address for p in PROVIDERS}
    start_block = chain.block()
    escrow_before = {ns: chain.escrow(payer) for ns, payer in payers.items()}
    paid_before = {p: chain.tokens(a) + chain.earnings(a) for p, a in payees.items()}

    for namespace, replicas in TENANTS.items():
        hub.create(
            r.COMPUTE_LEASES,
            lease_manifest(
                "work",
                namespace,
                pool=POOL,
                replicas=replicas,
                cpu="500m",
                memory="64Mi",
                max_price="5.00",
            ),
            namespace,
        )
    for namespace in TENANTS:
        wait_lease(
            hub,
            namespace,
            "work",
            lambda x: (x.get("status") or {}).get("phase") == "Running",
            what="Running",
            timeout=180,
        )
    assert VICTIM in _providers_of(_lease(hub, next(iter(TENANTS))))

    time.sleep(2 * int(EPOCH_SECONDS))  # two epochs of metering on all three providers
    stack.kill(f"agent-{VICTIM}")
    outage_began = datetime.now(UTC)
    try:
        for namespace in TENANTS:
            wait_lease(
                hub,
                namespace,
                "work",
                lambda x: (
                    (x.get("status") or {}).get("phase") == "Running"
                    and VICTIM not in _providers_of(x)
                ),
                what=f"failed over off {VICTIM}",
                timeout=240,
            )
        time.sleep(int(EPOCH_SECONDS))  # one more epoch on the two providers left
    finally:
        stack.start_agent(VICTIM)
    for namespace in TENANTS:
        hub.patch(r.COMPUTE_LEASES, "work", {"spec": {"suspend": True}}, namespace)
    for namespace in TENANTS:
        wait_lease(
            hub,
            namespace,
            "work",
            lambda x: (x.get("status") or {}).get("phase") == "Suspended",
            what="Suspended",
            timeout=120,
        )
    wait_for(_settled(hub), timeout=300, what="every epoch of the leases confirmed", every=2)

    # --- claims: each provider claims every epoch it has a leaf in, then withdraws --------
    epochs = _epochs(hub)
    ours = {payer for payer in payers.values()}
    leaves: list[tuple[int, dict[str, Any]]] = []
    for epoch_id, epoch in sorted(epochs.items()):
        status = epoch.get("status") or {}
        for leaf in status.get("leaves") or []:
            if leaf.get("payer") in ours:
                leaves.append((epoch_id, leaf))
    assert leaves, "the leases were billed"
    for epoch_id in sorted({e for e, _ in leaves}):
        assert epochs[epoch_id]["status"]["phase"] == "Confirmed"
        for provider in sorted({leaf["provider"] for e, leaf in leaves if e == epoch_id}):
            _claim(stack, deployment, epoch_id, provider, tmp_path)
    for provider in PROVIDERS:
        payee_chain = deployment.chain(deployment.payees[provider])
        if chain.earnings(payees[provider]):
            payee_chain.withdraw_earnings()

    # --- the chain, read independently, agrees to the base unit ---------------------------
    claimed = _claimed_logs(chain.url, chain.settlement, start_block)
    for epoch_id in sorted({e for e, _ in leaves}):
        status = epochs[epoch_id]["status"]
        assert chain.root(epoch_id) == status["root"]
        assert chain.total(epoch_id) == sum(int(x["amountUnits"]) for x in status["leaves"])
    for namespace, payer in payers.items():
        debited = escrow_before[namespace] - chain.escrow(payer)
        in_leaves = sum(int(leaf["amountUnits"]) for _, leaf in leaves if leaf["payer"] == payer)
        in_claims = sum(a for _, p, _, a in claimed if p == payer)
        cost = _lease(hub, namespace)["status"]["cost"]
        metered = parse_units(cost["settled"], decimals=deployment.decimals)
        assert debited == in_leaves == in_claims == metered > 0, namespace
        assert parse_units(cost["accrued"], decimals=deployment.decimals) == metered
    for provider, address in payees.items():
        gained = chain.tokens(address) + chain.earnings(address) - paid_before[provider]
        assert gained == sum(a for _, _, to, a in claimed if to == address), provider
    victim_late = [
        (e, leaf)
        for e, leaf in leaves
        if leaf["provider"] == VICTIM
        and datetime.fromisoformat(epochs[e]["spec"]["start"]) > outage_began
    ]
    assert victim_late == [], f"{VICTIM} billed for epochs after its outage began"

    for namespace in TENANTS:
        hub.delete(r.COMPUTE_LEASES, "work", namespace)
