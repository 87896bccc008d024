"""A provider claims its earnings with its own credentials: the hub's claims on the real bed.

A settling ``kommons hub`` (short epochs) bills a one-replica lease paid from an escrow of its
own (``fresh_payer``) on the bed's anvil. Once an epoch with the lease's usage is confirmed,
the hub writes the provider's claims (ConfigMap ``kommons-claims-<epochId>`` in
``kommons-provider-<name>``). Everything below is done with the kubeconfig ``kommons onboard``
wrote for the provider (its agent's credentials), against the real hub API server:

- reading the SettlementEpoch -> 403 (RBAC);
- reading and listing its claims ConfigMap -> allowed; it holds the epoch's root, the bed's
  chain id and contract, and exactly the epoch's leaves paying this provider, with their proofs;
- another provider's agent reading it -> 403 (RBAC: another namespace);
- the provider changing it (merge patch) or creating one (``kommons-claims-*``) -> 403 by the
  admission policy ``kommons-agent-claims``, naming the prefix; deleting it -> 403 (RBAC);
  the ConfigMap is unchanged; an ordinary ConfigMap (a ``kommons logs`` answer) is still
  allowed;
- ``kommons claim EPOCH --provider P --kubeconfig <agent kubeconfig>`` (no contract address:
  taken from the claims) -> claims on anvil: the payer's escrow is debited by its leaf, the
  provider's earnings credited with every leaf of the document.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kommons.kube import Forbidden, Kube, connect
from kommons.kube import resources as r
from kommons_testbed.manifests import apply_market, apply_namespace, exists, lease_manifest
from kommons_testbed.processes import wait_for
from kommons_testbed.settlement_bed import fresh_payer
from kommons_testbed.stack import Stack
from tests.integration.conftest import wait_lease

pytestmark = pytest.mark.bed

EPOCH_SECONDS = "10"
SEAL_DELAY = "6"
"""Longer than the bed agents' metering report interval (3 s)."""
RUN = uuid.uuid4().hex[:6]
NAMESPACE = f"proofs-{RUN}"
POOL = "proofs"
LABEL = "kommons.io/proofs"
DEPOSIT = 100 * 10**6
REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]


@pytest.fixture(scope="module")
def settling_hub(stack: Stack) -> Iterator[Stack]:
    """The hub restarted with short epochs and its settlement loop; the default one afterwards."""
    assert stack.settlement is not None, "the bed's stack settles on anvil"
    with stack.hub_with(
        "--epoch-seconds", EPOCH_SECONDS, "--seal-delay-seconds", SEAL_DELAY, settle=True
    ):
        yield stack


def _published_leaf(hub: Kube, payer: str) -> tuple[JSON, JSON] | None:
    """A Confirmed epoch whose claims are published with a leaf paid by ``payer``, and the leaf."""
    for epoch in sorted(hub.list(r.SETTLEMENT_EPOCHS), key=lambda e: e["spec"]["epochId"]):
        status = epoch.get("status") or {}
        if status.get("phase") != "Confirmed" or not status.get("claimsPublishedAt"):
            continue
        for leaf in status.get("leaves") or []:
            if leaf.get("payer", "").lower() == payer.lower():
                return epoch, leaf
    return None


def _claim(stack: Stack, epoch_id: int, provider: str, key_file: Path) -> str:
    """``kommons claim`` with the provider's own hub kubeconfig; returns its output."""
    deployment = stack.settlement
    assert deployment is not None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kommons.cli",
            "claim",
            str(epoch_id),
            "--provider",
            provider,
            "--kubeconfig",
            str(stack.agent_kubeconfig(provider)),
            "--chain-rpc",
            deployment.rpc_url,
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
    return done.stdout


def test_a_provider_claims_with_its_own_credentials(
    hub: Kube, settling_hub: Stack, tmp_path: Path
) -> None:
    stack = settling_hub
    deployment = stack.settlement
    assert deployment is not None
    payer = fresh_payer(deployment, deposit=DEPOSIT).address
    apply_market(
        hub,
        pool=POOL,
        strategy="LowestPrice",
        tenants=exists(LABEL),
        account=NAMESPACE,
        billed={"matchLabels": {LABEL: NAMESPACE}},
        payer=payer,
    )
    apply_namespace(hub, NAMESPACE, {LABEL: NAMESPACE})
    hub.create(
        r.COMPUTE_LEASES,
        lease_manifest(
            "work", NAMESPACE, pool=POOL, replicas=1, cpu="500m", memory="64Mi", max_price="5.00"
        ),
        NAMESPACE,
    )
    try:
        _check_claims(hub, stack, payer, tmp_path)
    finally:
        hub.delete(r.COMPUTE_LEASES, "work", NAMESPACE)


def _check_claims(hub: Kube, stack: Stack, payer: str, tmp_path: Path) -> None:
    deployment = stack.settlement
    assert deployment is not None
    lease = wait_lease(
        hub,
        NAMESPACE,
        "work",
        lambda x: (x.get("status") or {}).get("phase") == "Running",
        what="Running",
        timeout=180,
    )
    (placement,) = lease["status"]["placements"]
    provider = str(placement["provider"])
    found: list[tuple[JSON, JSON]] = []

    def published() -> bool:
        hit = _published_leaf(hub, payer)
        if hit is not None:
            found.append(hit)
        return hit is not None

    wait_for(published, timeout=240, what="an epoch of the lease confirmed, claims published")
    epoch, our_leaf = found[-1]
    epoch_id = int(epoch["spec"]["epochId"])
    assert provider in our_leaf["provider"].split(",")
    name, namespace = f"kommons-claims-{epoch_id}", f"kommons-provider-{provider}"

    # --- what the provider's own credentials may read --------------------------------------
    agent = connect(stack.agent_kubeconfig(provider), field_manager="provider")
    with pytest.raises(Forbidden):
        agent.get(r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}")
    body = agent.get(r.CONFIGMAPS, name, namespace)
    assert name in {c["metadata"]["name"] for c in agent.list(r.CONFIGMAPS, namespace)}
    document = json.loads(body["data"]["claims.json"])
    assert (document["epochId"], document["provider"]) == (epoch_id, provider)
    assert document["root"] == epoch["status"]["root"]
    assert document["chainId"] == 31337
    assert document["settlementAddress"].lower() == deployment.settlement.lower()
    expected = sorted(
        (leaf["payer"], leaf["payee"], leaf["amountUnits"], tuple(leaf["proof"]))
        for leaf in epoch["status"]["leaves"]
        if provider in leaf["provider"].split(",")
    )
    got = sorted(
        (leaf["payer"], leaf["payee"], leaf["amountUnits"], tuple(leaf["proof"]))
        for leaf in document["leaves"]
    )
    assert got == expected
    assert body["metadata"]["ownerReferences"][0]["uid"] == epoch["metadata"]["uid"]

    # --- what it may not do -----------------------------------------------------------------
    other = next(p for p in sorted(stack.provider_kubeconfigs) if p != provider)
    other_agent = connect(stack.agent_kubeconfig(other), field_manager="other")
    with pytest.raises(Forbidden):
        other_agent.get(r.CONFIGMAPS, name, namespace)
    with pytest.raises(Forbidden, match="kommons-claims-"):
        agent.patch(r.CONFIGMAPS, name, {"data": {"claims.json": "{}"}}, namespace)
    forged = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"kommons-claims-{epoch_id + 1000}", "namespace": namespace},
        "data": {"claims.json": body["data"]["claims.json"]},
    }
    with pytest.raises(Forbidden, match="kommons-claims-"):
        agent.create(r.CONFIGMAPS, forged, namespace)
    with pytest.raises(Forbidden):
        agent.delete(r.CONFIGMAPS, name, namespace)
    assert hub.get(r.CONFIGMAPS, name, namespace)["data"] == body["data"]
    answer = {**forged, "metadata": {"name": f"kommons-logs-{RUN}", "namespace": namespace}}
    assert (
        agent.create(r.CONFIGMAPS, answer, namespace)["metadata"]["name"]
        == answer["metadata"]["name"]
    )
    hub.delete(r.CONFIGMAPS, f"kommons-logs-{RUN}", namespace)

    # --- the claim, with the same credentials ---------------------------------------------
    chain = deployment.chain()
    payee = our_leaf["payee"]
    escrow_before, earned_before = chain.escrow_of(payer), chain.earnings_of(payee)
    key_file = tmp_path / "claim.key"
    key_file.write_text(deployment.payees[provider].private_key)
    key_file.chmod(0o600)
    output = _claim(stack, epoch_id, provider, key_file)
    assert f"ConfigMap {namespace}/{name}" in output
    assert escrow_before - chain.escrow_of(payer) == int(our_leaf["amountUnits"]) > 0
    assert chain.earnings_of(payee) - earned_before == sum(
        int(leaf["amountUnits"]) for leaf in document["leaves"]
    )
