"""The bed's settlement deployment, as the hub and the other streams' tests see it.

Behaviour matrix:
- the stack deploys a TestToken + Settlement on the bed's anvil: ``Stack.settlement`` is set,
  the operator (anvil account 0) holds OPERATOR_ROLE, the withdrawal delay is the bed's;
- the operator key file is mode 0600 and holds account 0's key;
- payers (accounts 1-4) have the initial escrow; payees (accounts 5-7) are exactly the
  ``Provider.spec.payoutAddress`` the hub has for prov-a/b/c;
- the suite's shared hub has the chain for reads only (it says so); a settling hub says
  once that settlement is enabled, never printing the key.
"""

from __future__ import annotations

import stat

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons.settlement.chain import PrivateKey
from kommons_testbed.processes import wait_for
from kommons_testbed.settlement_bed import DEFAULT_DEPOSIT, SettlementDeployment
from kommons_testbed.stack import Stack

pytestmark = [
    pytest.mark.bed,
    pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning"),
]


@pytest.fixture(scope="module")
def deployment(stack: Stack) -> SettlementDeployment:
    assert stack.settlement is not None, "start_stack deployed no Settlement on the bed's anvil"
    return stack.settlement


def test_the_operator_commits_and_its_key_file_is_private(
    deployment: SettlementDeployment,
) -> None:
    chain = deployment.chain()
    assert chain.has_operator_role(deployment.operator.address)
    assert not chain.has_operator_role(deployment.payers[0].address)
    mode = deployment.operator_key_file.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    key = PrivateKey.from_file(deployment.operator_key_file)
    assert key.address == deployment.operator.address
    assert chain.token_address() == deployment.token


def test_payers_have_escrow_and_payees_are_the_providers_payout_addresses(
    deployment: SettlementDeployment, hub: Kube
) -> None:
    chain = deployment.chain()
    for payer in deployment.payers:
        assert chain.escrow_of(payer.address) >= DEFAULT_DEPOSIT
    assert sorted(deployment.payees) == ["prov-a", "prov-b", "prov-c"]
    for name, payee in deployment.payees.items():
        provider = hub.get(r.PROVIDERS, name)
        assert provider["spec"]["payoutAddress"] == payee.address
    addresses = {a.address for a in (deployment.operator, *deployment.payers)}
    assert addresses.isdisjoint(p.address for p in deployment.payees.values())


def test_the_shared_hub_reads_the_chain_and_a_settling_hub_says_settlement_is_enabled(
    stack: Stack, deployment: SettlementDeployment
) -> None:
    log = stack.dir / "logs" / "hub.log"
    shared = log.read_text()  # the log is appended across restarts
    with stack.hub_with(settle=True):
        wait_for(
            lambda: "settlement enabled" in log.read_text()[len(shared) :],
            timeout=60,
            what="the settling hub to log that settlement is enabled",
        )
    settling = log.read_text()[len(shared) :]
    assert "settlement read-only" in shared
    assert deployment.settlement in settling
    assert deployment.operator.private_key[2:].lower() not in log.read_text().lower()
