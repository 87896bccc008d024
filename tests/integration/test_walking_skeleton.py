"""The walking skeleton end to end on the real bed: lease -> placement -> pods -> status -> delete.

Behaviour matrix (case -> expected):

- CPU lease, 3 ready providers -> cheapest provider (prov-a), Running 2/2, isolation objects.
- GPU model only prov-b has -> placed on prov-b, pods pinned to that GPU product.
- GPU model nobody has -> Pending, Scheduled=False/Unschedulable, a reason per provider.
- namespace without a BillingAccount -> Pending, PaymentOK=False/NoBillingAccount, no placement.
- agent killed (-9) and restarted -> same single Deployment, same pods, lease stays Running.
- replicas raised then lowered -> missing replicas placed, then the surplus removed.
- lease deleted -> provider namespace gone before the lease object is gone.
- agent's hub credentials -> 403 outside its own namespace and Provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kommons.kube import Forbidden, Kube, NotFound, connect
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import ACCOUNT, lease_body, make_namespace, wait_lease

pytestmark = pytest.mark.bed


def _condition(lease: dict[str, Any], type_: str) -> dict[str, Any]:
    for condition in (lease.get("status") or {}).get("conditions") or []:
        if condition["type"] == type_:
            return dict(condition)
    return {}


def _running(lease: dict[str, Any]) -> bool:
    return (lease.get("status") or {}).get("phase") == "Running"


def _workloads(kube: Kube, lease_uid: str) -> list[dict[str, Any]]:
    return kube.list(r.DEPLOYMENTS, label_selector=f"kommons.io/lease-uid={lease_uid}")


def test_cpu_lease_runs_on_cheapest_provider_isolated(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.COMPUTE_LEASES, lease_body("web", tenant), tenant)
    lease = wait_lease(hub, tenant, "web", _running, what="lease web Running")
    status = lease["status"]

    assert status["readyReplicas"] == 2
    assert status["ready"] == "2/2"
    assert [p["provider"] for p in status["placements"]] == ["prov-a"]
    assert _condition(lease, "Scheduled")["status"] == "True"
    assert _condition(lease, "Ready")["status"] == "True"
    # EscrowCovers with the payment guard (the bed's anvil), BillingAccountFound without
    assert _condition(lease, "PaymentOK")["status"] == "True"
    assert _condition(lease, "PaymentOK")["message"].startswith(
        f"billed to BillingAccount {ACCOUNT}"
    )
    decision = status["decision"]
    assert decision["considered"] == 3
    assert decision["feasible"] == 3
    assert decision["chosen"][0]["provider"] == "prov-a"
    # prov-a: 0.5 core x 0.02 + 0.25 GiB x 0.003 = 0.01075 per replica-hour
    assert status["placements"][0]["pricePerHour"] == "0.01075"

    prov_a = provider_kube("prov-a")
    ns_name = status["placements"][0]["namespace"]
    ns = prov_a.get(r.NAMESPACES, ns_name)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = prov_a.get(r.RESOURCE_QUOTAS, "kommons-lease", ns_name)
    assert quota["spec"]["hard"]["requests.cpu"] == "1"
    assert quota["spec"]["hard"]["pods"] == "2"
    limits = prov_a.get(r.LIMIT_RANGES, "kommons-lease", ns_name)["spec"]["limits"][0]
    assert limits["max"] == {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "2Gi"}
    policy = prov_a.get(r.NETWORK_POLICIES, "kommons-default-deny", ns_name)["spec"]
    assert policy.get("ingress", []) == []  # no ingress rule: all ingress denied
    excepted = policy["egress"][0]["to"][0]["ipBlock"]["except"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(excepted)
    pods = prov_a.list(r.PODS, ns_name)
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("prov-a-")
        container = pod["spec"]["containers"][0]
        assert container["resources"]["limits"] == {
            "cpu": "500m",
            "memory": "256Mi",
            "ephemeral-storage": "2Gi",
        }
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["spec"]["automountServiceAccountToken"] is False
    events = hub.list(r.EVENTS, tenant, field_selector="involvedObject.name=web")
    assert any(e["reason"] == "Scheduled" for e in events)


def test_gpu_model_only_one_provider_has_lands_there(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    body = lease_body(
        "train",
        tenant,
        replicas=1,
        cpu="4",
        memory="16Gi",
        gpu={"count": 1, "model": "nvidia-a100"},
    )
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(hub, tenant, "train", _running, what="GPU lease Running")
    placements = lease["status"]["placements"]
    assert [p["provider"] for p in placements] == ["prov-b"]
    rejected = lease["status"]["decision"]["rejected"]
    assert "nvidia-a100" in rejected["prov-a"]
    assert "nvidia-a100" in rejected["prov-c"]
    pods = provider_kube("prov-b").list(r.PODS, placements[0]["namespace"])
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-a100"}
    assert pods[0]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_unsatisfiable_lease_stays_pending_with_reasons(hub: Kube, tenant: str) -> None:
    body = lease_body("h100", tenant, replicas=1, gpu={"count": 1, "model": "nvidia-h100"})
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "h100",
        lambda lease: _condition(lease, "Scheduled").get("reason") == "Unschedulable",
        what="lease h100 Unschedulable",
    )
    assert lease["status"]["phase"] == "Pending"
    assert _condition(lease, "Scheduled")["status"] == "False"
    decision = lease["status"]["decision"]
    assert decision["feasible"] == 0
    assert set(decision["rejected"]) == {"prov-a", "prov-b", "prov-c"}
    assert all("nvidia-h100" in reason for reason in decision["rejected"].values())
    assert (
        hub.list(
            r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={lease['metadata']['uid']}"
        )
        == []
    )
    events = hub.list(r.EVENTS, tenant, field_selector="involvedObject.name=h100")
    assert any(e["reason"] == "Unschedulable" and e["type"] == "Warning" for e in events)


def test_namespace_without_billing_account_is_refused(hub: Kube) -> None:
    namespace = make_namespace(hub, billed=False)
    hub.create(r.COMPUTE_LEASES, lease_body("free-ride", namespace), namespace)
    lease = wait_lease(
        hub,
        namespace,
        "free-ride",
        lambda lease: _condition(lease, "PaymentOK").get("status") == "False",
        what="PaymentOK=False",
    )
    assert _condition(lease, "PaymentOK")["reason"] == "NoBillingAccount"
    assert namespace in _condition(lease, "PaymentOK")["message"]
    assert _condition(lease, "Scheduled")["reason"] == "NoBillingAccount"
    assert lease["status"]["phase"] == "Pending"
    uid = lease["metadata"]["uid"]
    assert hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}") == []


def test_agent_killed_and_restarted_does_not_duplicate(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.COMPUTE_LEASES, lease_body("steady", tenant, replicas=3), tenant)
    lease = wait_lease(hub, tenant, "steady", _running, what="lease steady Running")
    uid = lease["metadata"]["uid"]
    prov_a = provider_kube("prov-a")
    before = _workloads(prov_a, uid)
    assert len(before) == 1

    stack.kill("agent-prov-a")
    stack.start_agent("prov-a")
    # The restarted agent resumes every placement; give it time to do so, then compare.
    wait_for(
        lambda: any(
            "resuming" in line.lower() or "materialised placement" in line
            for line in stack.processes["agent-prov-a"].log.read_text().splitlines()[-200:]
        ),
        timeout=60,
        what="the restarted agent to resume its placements",
    )
    lease = wait_lease(hub, tenant, "steady", _running, what="lease steady still Running")
    after = _workloads(prov_a, uid)
    assert len(after) == 1
    assert after[0]["metadata"]["uid"] == before[0]["metadata"]["uid"]
    assert len(prov_a.list(r.PODS, lease["status"]["placements"][0]["namespace"])) == 3
    assert len(hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}")) == 1


def test_deleting_lease_removes_provider_objects_first(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.COMPUTE_LEASES, lease_body("gone", tenant), tenant)
    lease = wait_lease(hub, tenant, "gone", _running, what="lease gone Running")
    provider_ns = lease["status"]["placements"][0]["namespace"]
    prov_a = provider_kube("prov-a")
    assert prov_a.get_or_none(r.NAMESPACES, provider_ns) is not None

    hub.delete(r.COMPUTE_LEASES, "gone", tenant)
    observed_while_deleting: list[bool] = []

    def lease_gone() -> bool:
        try:
            hub.get(r.COMPUTE_LEASES, "gone", tenant)
        except NotFound:
            return True
        observed_while_deleting.append(True)
        return False

    wait_for(lease_gone, timeout=90, what="the lease to be deleted", every=0.2)
    assert prov_a.get_or_none(r.NAMESPACES, provider_ns) is None
    uid = lease["metadata"]["uid"]
    assert hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}") == []
    assert observed_while_deleting, "the lease vanished at once: the finalizer did not hold it"


def test_agent_credentials_reach_only_its_own_namespace(stack: Stack) -> None:
    agent = connect(stack.agent_kubeconfig("prov-a"), field_manager="tests")
    assert isinstance(agent.list(r.LEASE_PLACEMENTS, "kommons-provider-prov-a"), list)
    assert agent.get(r.PROVIDERS, "prov-a")["metadata"]["name"] == "prov-a"
    with pytest.raises(Forbidden):
        agent.list(r.LEASE_PLACEMENTS, "kommons-provider-prov-b")
    with pytest.raises(Forbidden):
        agent.patch(r.PROVIDERS, "prov-b", {"spec": {"cordoned": True}})
    with pytest.raises(Forbidden):
        agent.list(r.COMPUTE_LEASES)


def test_scaling_a_lease_up_and_down(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.COMPUTE_LEASES, lease_body("elastic", tenant, replicas=1), tenant)
    wait_lease(hub, tenant, "elastic", _running, what="lease elastic Running at 1")

    hub.patch(r.COMPUTE_LEASES, "elastic", {"spec": {"replicas": 3}}, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "elastic",
        lambda lease: _running(lease) and lease["status"]["readyReplicas"] == 3,
        what="lease elastic Running at 3",
    )
    assert sum(p["replicas"] for p in lease["status"]["placements"]) == 3

    hub.patch(r.COMPUTE_LEASES, "elastic", {"spec": {"replicas": 1}}, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "elastic",
        lambda lease: (
            _running(lease) and sum(p["replicas"] for p in lease["status"]["placements"]) == 1
        ),
        what="lease elastic back to 1",
    )
    placement = lease["status"]["placements"][0]
    kube = provider_kube(placement["provider"])
    wait_for(
        lambda: len(kube.list(r.PODS, placement["namespace"])) == 1,
        timeout=60,
        what="the provider to run one pod",
    )
    quota = kube.get(r.RESOURCE_QUOTAS, "kommons-lease", placement["namespace"])
    assert quota["spec"]["hard"]["pods"] == "1"
