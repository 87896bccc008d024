"""The trust boundary, enforced by the real hub API server: forged writes with real credentials.

Every forged write is made with a real provider agent's hub credentials (the kubeconfig
``kommons onboard`` wrote for prov-a) or a real tenant's (a ServiceAccount token bound to the
``kommons-tenant`` role), against the running hub, and must be refused — 403 by RBAC, or 403
by a ``ValidatingAdmissionPolicy`` whose message names the field and says why — and leave the
object as it was. The allowed paths are exercised with the same credentials.

Behaviour matrix (who -> write -> expected):

- agent -> its LeasePlacement spec.pricePerHour / spec.replicas / spec.template /
  spec.billingAccount, by merge patch or PUT -> refused (field named), spec unchanged; a spec or
  label sent through the status subresource -> dropped by the API server.
- agent -> a label on its LeasePlacement / a hub annotation -> refused (key named).
- agent -> remove the hub's finalizer from its LeasePlacement -> refused (finalizer named).
- agent -> create a LeasePlacement in its namespace; write placements in prov-b's -> 403 RBAC.
- agent -> placement status, add/remove its own finalizer kommons.io/agent, its agent.kommons.io/
  annotations -> allowed.
- agent -> its Provider status.reputation / phase / lastHeartbeatTime / conditions /
  observedGeneration -> refused (field named), status unchanged.
- agent -> relabel its Provider, change spec.region / spec.mode, add an annotation or
  finalizer -> refused (field named); update prov-b's Provider, create a Provider -> 403.
- agent -> spec.pricing, spec.cordoned of its Provider, inventory status fields -> allowed; labels
  or region sent along with a status write -> dropped.
- agent -> create a heartbeat Lease (any name, labelled as prov-b) -> 403 RBAC (no create);
  relabel its own heartbeat Lease as prov-b -> refused; update prov-b's Lease -> 403;
  renew its own Lease -> allowed.
- tenant -> create/patch Provider, LeasePlacement, BillingAccount, ComputeLease status, leases in
  another tenant's namespace -> 403; create a lease in its own namespace, read the market ->
  allowed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.kube import Conflict, Forbidden, Invalid, Kube, KubeError, connect
from kommons.kube import resources as r
from kommons.trust.policies import HEARTBEAT_LEASE
from kommons_testbed.stack import Stack
from tests.integration.conftest import (
    ACCOUNT,
    lease_body,
    make_namespace,
    tenant_kubeconfig,
    wait_lease,
)

pytestmark = pytest.mark.bed

AGENT = "prov-a"
OTHER = "prov-b"
AGENT_NS = f"kommons-provider-{AGENT}"
OTHER_NS = f"kommons-provider-{OTHER}"
JSON = dict[str, Any]


def refused(write: Callable[[], object], *fields: str) -> KubeError:
    """Run a forged write; assert the API server refused it, naming every field given."""
    with pytest.raises((Forbidden, Invalid)) as info:
        write()
    error = info.value
    for field in fields:
        assert field in error.message, f"{field!r} not in: {error.message}"
    return error


def rbac_refused(write: Callable[[], object]) -> None:
    """Assert a forged write is refused by RBAC (403, the verb and resource named)."""
    error = refused(write)
    assert error.status == 403
    assert re.search(r"cannot \w+ resource", error.message), error.message


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(stack: Stack) -> Kube:
    """prov-a's agent, with the very credentials its running agent uses."""
    return connect(stack.agent_kubeconfig(AGENT), field_manager="forger")


@pytest.fixture(scope="module")
def placement(hub: Kube) -> Iterator[JSON]:
    """A LeasePlacement of a real lease on prov-a (the lease is deleted at the end)."""
    namespace = make_namespace(hub)
    hub.create(r.COMPUTE_LEASES, lease_body("trust", namespace, replicas=1), namespace)
    lease = wait_lease(
        hub,
        namespace,
        "trust",
        lambda lease: any(
            p.get("provider") == AGENT for p in (lease.get("status") or {}).get("placements") or []
        ),
        what=f"lease trust placed on {AGENT}",
    )
    uid = lease["metadata"]["uid"]
    (found,) = hub.list(r.LEASE_PLACEMENTS, AGENT_NS, label_selector=f"kommons.io/lease-uid={uid}")
    yield found
    hub.delete(r.COMPUTE_LEASES, "trust", namespace)


def current(hub: Kube, placement: JSON) -> JSON:
    return hub.get(r.LEASE_PLACEMENTS, placement["metadata"]["name"], AGENT_NS)


# --- the agent and its placements ---------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"pricePerHour": "99"}, "spec.pricePerHour"),
        ({"replicas": 50}, "spec.replicas"),
        ({"billingAccount": "someone-else"}, "spec.billingAccount"),
        ({"template": {"spec": {"containers": [{"name": "x", "image": "evil"}]}}}, "spec.template"),
    ],
)
def test_agent_cannot_change_placement_spec(
    agent: Kube, hub: Kube, placement: JSON, patch: JSON, field: str
) -> None:
    name = placement["metadata"]["name"]
    error = refused(
        lambda: agent.patch(r.LEASE_PLACEMENTS, name, {"spec": patch}, AGENT_NS),
        field,
        "written by the hub only",
    )
    assert error.status == 403
    assert "kommons-agent-placements" in error.message
    assert current(hub, placement)["spec"] == placement["spec"]


def test_agent_cannot_change_placement_spec_by_put_or_through_status(
    agent: Kube, hub: Kube, placement: JSON
) -> None:
    name = placement["metadata"]["name"]

    def forged_put() -> None:
        # A 409 only says the hub or the agent wrote the placement meanwhile (its status, a
        # metering checkpoint): read it again and retry until admission answers.
        for _ in range(20):
            body = current(hub, placement)
            body["spec"]["pricePerHour"] = "99"
            try:
                agent.request("PUT", r.LEASE_PLACEMENTS.path(AGENT_NS, name), body=body)
                return
            except Conflict:
                continue
        pytest.fail("every PUT of the placement conflicted with a concurrent write")

    refused(forged_put, "spec.pricePerHour")
    # the status subresource keeps everything but status: a spec or label there is dropped
    agent.patch(
        r.LEASE_PLACEMENTS,
        name,
        {"metadata": {"labels": {"forged": "yes"}}, "spec": {"replicas": 50}},
        AGENT_NS,
        subresource="status",
    )
    after = current(hub, placement)
    assert after["spec"] == placement["spec"]
    assert "forged" not in after["metadata"]["labels"]


def test_agent_cannot_label_or_annotate_placement_for_the_hub(
    agent: Kube, hub: Kube, placement: JSON
) -> None:
    name = placement["metadata"]["name"]
    refused(
        lambda: agent.patch(
            r.LEASE_PLACEMENTS,
            name,
            {"metadata": {"labels": {"kommons.io/provider": OTHER}}},
            AGENT_NS,
        ),
        "metadata.labels kommons.io/provider",
        "set by the hub only",
    )
    refused(
        lambda: agent.patch(
            r.LEASE_PLACEMENTS,
            name,
            {"metadata": {"annotations": {"hub.kommons.io/decision": "forged"}}},
            AGENT_NS,
        ),
        "metadata.annotations hub.kommons.io/decision",
        "agent.kommons.io/",
    )
    after = current(hub, placement)["metadata"]
    assert after["labels"] == placement["metadata"]["labels"]
    assert "hub.kommons.io/decision" not in (after.get("annotations") or {})


def test_agent_cannot_remove_the_hubs_finalizer(agent: Kube, hub: Kube, placement: JSON) -> None:
    name = placement["metadata"]["name"]
    # The hub puts no finalizer on placements today (and its kopf drops ``kommons.io/hub`` from
    # objects it has no deletion handler for): put one there as the hub admin would.
    hub_finalizer = "kommons.io/hub-hold"
    before = list(current(hub, placement)["metadata"].get("finalizers") or [])
    added = hub_finalizer not in before
    if added:
        hub.patch(
            r.LEASE_PLACEMENTS,
            name,
            {"metadata": {"finalizers": [*before, hub_finalizer]}},
            AGENT_NS,
        )
    try:
        without = [f for f in before if f != hub_finalizer]
        refused(
            lambda: agent.patch(
                r.LEASE_PLACEMENTS, name, {"metadata": {"finalizers": without}}, AGENT_NS
            ),
            f"metadata.finalizers {hub_finalizer}",
            "only their own finalizer kommons.io/agent",
        )
        assert hub_finalizer in current(hub, placement)["metadata"]["finalizers"]
    finally:
        if added:
            finalizers = current(hub, placement)["metadata"]["finalizers"]
            hub.patch(
                r.LEASE_PLACEMENTS,
                name,
                {"metadata": {"finalizers": [f for f in finalizers if f != hub_finalizer]}},
                AGENT_NS,
            )


def test_agent_cannot_create_placements_or_reach_another_providers(
    agent: Kube, placement: JSON
) -> None:
    forged = {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "LeasePlacement",
        "metadata": {"name": f"forged-{uuid.uuid4().hex[:6]}", "namespace": AGENT_NS},
        "spec": placement["spec"],
    }
    rbac_refused(lambda: agent.create(r.LEASE_PLACEMENTS, forged, AGENT_NS))
    rbac_refused(lambda: agent.list(r.LEASE_PLACEMENTS, OTHER_NS))
    rbac_refused(
        lambda: agent.create(
            r.LEASE_PLACEMENTS,
            {**forged, "metadata": {"name": "x", "namespace": OTHER_NS}},
            OTHER_NS,
        )
    )
    rbac_refused(
        lambda: agent.patch(
            r.LEASE_PLACEMENTS, placement["metadata"]["name"], {"spec": {"replicas": 0}}, OTHER_NS
        )
    )
    rbac_refused(lambda: agent.delete(r.LEASE_PLACEMENTS, placement["metadata"]["name"], AGENT_NS))


def test_agent_may_report_status_and_manage_its_finalizer_and_annotations(
    agent: Kube, hub: Kube, placement: JSON
) -> None:
    name = placement["metadata"]["name"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    agent.patch(
        r.LEASE_PLACEMENTS,
        name,
        {"status": {"lastReportTime": stamp}},
        AGENT_NS,
        subresource="status",
    )

    finalizers = list(current(hub, placement)["metadata"]["finalizers"])
    assert "kommons.io/agent" in finalizers
    without = [f for f in finalizers if f != "kommons.io/agent"]
    agent.patch(r.LEASE_PLACEMENTS, name, {"metadata": {"finalizers": without}}, AGENT_NS)
    agent.patch(r.LEASE_PLACEMENTS, name, {"metadata": {"finalizers": finalizers}}, AGENT_NS)
    assert "kommons.io/agent" in current(hub, placement)["metadata"]["finalizers"]

    note = {"agent.kommons.io/trust-test": "1"}
    agent.patch(r.LEASE_PLACEMENTS, name, {"metadata": {"annotations": note}}, AGENT_NS)
    agent.patch(
        r.LEASE_PLACEMENTS,
        name,
        {"metadata": {"annotations": {"agent.kommons.io/trust-test": None}}},
        AGENT_NS,
    )
    assert current(hub, placement)["spec"] == placement["spec"]


# --- the agent and its Provider -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "field", "why"),
    [
        ({"reputation": {"score": 1.0, "completedLeases": 10_000}}, "status.reputation", "hub"),
        ({"phase": "<not current>"}, "status.phase", "decided by the hub"),
        ({"lastHeartbeatTime": "2099-01-01T00:00:00Z"}, "status.lastHeartbeatTime", "hub's own"),
        (
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Forged",
                        "message": "trust me",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
            "status.conditions",
            "written by the hub",
        ),
        ({"observedGeneration": 999}, "status.observedGeneration", "inventory"),
    ],
)
def test_agent_cannot_set_provider_standing(
    agent: Kube, hub: Kube, status: JSON, field: str, why: str
) -> None:
    before = (hub.get(r.PROVIDERS, AGENT).get("status") or {}).get(field.split(".")[1])
    if status.get("phase") == "<not current>":  # a write of the same value changes nothing
        status = {"phase": "NotReady" if before == "Ready" else "Ready"}
    error = refused(
        lambda: agent.patch(r.PROVIDERS, AGENT, {"status": status}, subresource="status"),
        field,
        why,
    )
    assert error.status == 403
    assert "kommons-agent-provider-status" in error.message
    after = (hub.get(r.PROVIDERS, AGENT).get("status") or {}).get(field.split(".")[1])
    if field == "status.reputation":  # the hub itself may rewrite its record meanwhile
        assert (after or {}).get("completedLeases") != 10_000
    elif field != "status.phase":  # the hub itself may move the phase meanwhile
        assert after == before


@pytest.mark.parametrize(
    ("patch", "fields"),
    [
        ({"metadata": {"labels": {"kommons.io/tier": "gold"}}}, ["metadata.labels", "onboarding"]),
        ({"metadata": {"labels": {"kommons.io/tier": None}}}, ["metadata.labels kommons.io/tier"]),
        ({"spec": {"region": "us-east"}}, ["spec.region is set by the hub admin at onboarding"]),
        (
            {
                "spec": {
                    "mode": "Push",
                    "kubeconfigSecretRef": {"name": "k", "namespace": "n", "key": "c"},
                }
            },
            ["spec.mode"],
        ),
        ({"metadata": {"annotations": {"hub.kommons.io/x": "y"}}}, ["metadata.annotations"]),
        ({"metadata": {"finalizers": ["example.com/block"]}}, ["metadata.finalizers"]),
    ],
)
def test_agent_cannot_change_provider_identity(
    agent: Kube, hub: Kube, patch: JSON, fields: list[str]
) -> None:
    before = hub.get(r.PROVIDERS, AGENT)
    refused(lambda: agent.patch(r.PROVIDERS, AGENT, patch), *fields)
    after = hub.get(r.PROVIDERS, AGENT)
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    assert after["metadata"]["labels"]["kommons.io/tier"] == "community"
    assert after["spec"]["region"] == before["spec"]["region"]
    assert after["spec"]["mode"] == "Pull"
    assert after["metadata"].get("finalizers") == before["metadata"].get("finalizers")


def test_provider_status_writes_cannot_carry_identity(agent: Kube, hub: Kube) -> None:
    before = hub.get(r.PROVIDERS, AGENT)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    agent.patch(
        r.PROVIDERS,
        AGENT,
        {
            "metadata": {"labels": {"kommons.io/tier": "gold"}},
            "spec": {"region": "us-east"},
            "status": {"inventoryTime": stamp},
        },
        subresource="status",
    )
    after = hub.get(r.PROVIDERS, AGENT)
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["spec"]["region"] == before["spec"]["region"] != "us-east"


def test_agent_cannot_create_or_touch_another_provider(agent: Kube, hub: Kube) -> None:
    before = hub.get(r.PROVIDERS, OTHER)
    rbac_refused(lambda: agent.patch(r.PROVIDERS, OTHER, {"spec": {"cordoned": True}}))
    rbac_refused(
        lambda: agent.patch(
            r.PROVIDERS, OTHER, {"status": {"available": {"cpu": "0"}}}, subresource="status"
        )
    )
    body = {**before, "metadata": {"name": f"sybil-{uuid.uuid4().hex[:6]}"}}
    body.pop("status", None)
    rbac_refused(lambda: agent.create(r.PROVIDERS, body))
    after = hub.get(r.PROVIDERS, OTHER)
    assert after["spec"] == before["spec"]


def test_agent_may_declare_prices_cordon_and_inventory(agent: Kube, hub: Kube) -> None:
    spec = hub.get(r.PROVIDERS, AGENT)["spec"]
    pricing = spec["pricing"]
    try:
        agent.patch(r.PROVIDERS, AGENT, {"spec": {"pricing": {"cpuCoreHour": "0.021"}}})
        agent.patch(r.PROVIDERS, AGENT, {"spec": {"cordoned": bool(spec.get("cordoned"))}})
        assert hub.get(r.PROVIDERS, AGENT)["spec"]["pricing"]["cpuCoreHour"] == "0.021"
    finally:
        agent.patch(r.PROVIDERS, AGENT, {"spec": {"pricing": pricing}})
    assert hub.get(r.PROVIDERS, AGENT)["spec"]["pricing"] == pricing
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    agent.patch(
        r.PROVIDERS,
        AGENT,
        {"status": {"inventoryTime": stamp, "namespace": AGENT_NS}},
        subresource="status",
    )


# --- heartbeats ---------------------------------------------------------------------------


def test_agent_cannot_forge_heartbeats(agent: Kube, hub: Kube) -> None:
    other_before = hub.get(r.LEASES, HEARTBEAT_LEASE, OTHER_NS)
    forged = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"labels": {"kommons.io/provider": OTHER}},
        "spec": {"holderIdentity": "forger", "renewTime": now_micro()},
    }
    for name in (HEARTBEAT_LEASE + "-2", f"hb-{uuid.uuid4().hex[:6]}"):
        rbac_refused(
            lambda name=name: agent.create(
                r.LEASES, {**forged, "metadata": {**forged["metadata"], "name": name}}, AGENT_NS
            )
        )
    rbac_refused(lambda: agent.create(r.LEASES, {**forged, "metadata": {"name": "x"}}, OTHER_NS))
    rbac_refused(
        lambda: agent.patch(
            r.LEASES, HEARTBEAT_LEASE, {"spec": {"renewTime": now_micro()}}, OTHER_NS
        )
    )
    refused(
        lambda: agent.patch(
            r.LEASES,
            HEARTBEAT_LEASE,
            {"metadata": {"labels": {"kommons.io/provider": OTHER}}},
            AGENT_NS,
        ),
        "metadata.labels kommons.io/provider",
        "namespace",
    )
    own = hub.get(r.LEASES, HEARTBEAT_LEASE, AGENT_NS)
    assert own["metadata"]["labels"]["kommons.io/provider"] == AGENT
    assert [lease["metadata"]["name"] for lease in hub.list(r.LEASES, AGENT_NS)] == [
        HEARTBEAT_LEASE
    ]
    other_after = hub.get(r.LEASES, HEARTBEAT_LEASE, OTHER_NS)
    assert other_after["metadata"]["labels"] == other_before["metadata"]["labels"]


def test_agent_renews_its_own_heartbeat(agent: Kube, hub: Kube) -> None:
    stamp = now_micro()
    agent.patch(
        r.LEASES,
        HEARTBEAT_LEASE,
        {"spec": {"renewTime": stamp, "holderIdentity": "trust-test/prov-a"}},
        AGENT_NS,
    )
    lease = hub.get(r.LEASES, HEARTBEAT_LEASE, AGENT_NS)
    assert lease["spec"]["renewTime"] >= stamp  # ours, or the running agent's since
    assert lease["metadata"]["labels"]["kommons.io/provider"] == AGENT


# --- tenants ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant_kube(hub: Kube, stack: Stack) -> tuple[Kube, str]:
    """A tenant: ServiceAccount ``alice`` bound to ``kommons-tenant`` in its own namespace."""
    namespace = make_namespace(hub)
    path = tenant_kubeconfig(hub, stack, namespace, "alice")
    return connect(path, field_manager="tenant"), namespace


def test_tenant_cannot_write_market_objects(
    tenant_kube: tuple[Kube, str], hub: Kube, placement: JSON
) -> None:
    tenant, _ = tenant_kube
    provider = hub.get(r.PROVIDERS, AGENT)
    rbac_refused(lambda: tenant.patch(r.PROVIDERS, AGENT, {"spec": {"cordoned": True}}))
    rbac_refused(
        lambda: tenant.patch(
            r.PROVIDERS, AGENT, {"status": {"reputation": {"score": 0}}}, subresource="status"
        )
    )
    body = {**provider, "metadata": {"name": f"fake-{uuid.uuid4().hex[:6]}"}}
    body.pop("status", None)
    rbac_refused(lambda: tenant.create(r.PROVIDERS, body))
    rbac_refused(
        lambda: tenant.patch(
            r.LEASE_PLACEMENTS,
            placement["metadata"]["name"],
            {"spec": {"pricePerHour": "0.000001"}},
            AGENT_NS,
        )
    )
    rbac_refused(lambda: tenant.list(r.LEASE_PLACEMENTS, AGENT_NS))
    rbac_refused(
        lambda: tenant.patch(
            r.BILLING_ACCOUNTS, ACCOUNT, {"spec": {"namespaceSelector": {"matchLabels": {}}}}
        )
    )
    account = hub.get(r.BILLING_ACCOUNTS, ACCOUNT)
    forged_account = {
        "apiVersion": account["apiVersion"],
        "kind": "BillingAccount",
        "metadata": {"name": f"mine-{uuid.uuid4().hex[:6]}"},
        "spec": account["spec"],
    }
    rbac_refused(lambda: tenant.create(r.BILLING_ACCOUNTS, forged_account))
    assert hub.get(r.PROVIDERS, AGENT)["spec"] == provider["spec"]
    assert hub.get(r.BILLING_ACCOUNTS, ACCOUNT)["spec"] == account["spec"]


def test_tenant_manages_only_its_own_leases(tenant_kube: tuple[Kube, str], hub: Kube) -> None:
    tenant, namespace = tenant_kube
    other = make_namespace(hub)
    hub.create(r.COMPUTE_LEASES, lease_body("theirs", other, replicas=1), other)

    mine = tenant.create(r.COMPUTE_LEASES, lease_body("mine", namespace, replicas=1), namespace)
    assert mine["metadata"]["namespace"] == namespace
    assert tenant.get(r.COMPUTE_LEASES, "mine", namespace)["spec"]["replicas"] == 1
    tenant.patch(r.COMPUTE_LEASES, "mine", {"spec": {"replicas": 1}}, namespace)
    assert isinstance(tenant.list(r.PROVIDERS), list)  # the market is readable
    assert isinstance(tenant.list(r.PROVIDER_POOLS), list)

    rbac_refused(
        lambda: tenant.patch(
            r.COMPUTE_LEASES,
            "mine",
            {"status": {"phase": "Running", "readyReplicas": 1}},
            namespace,
            subresource="status",
        )
    )
    rbac_refused(
        lambda: tenant.create(r.COMPUTE_LEASES, lease_body("squat", other, replicas=1), other)
    )
    rbac_refused(lambda: tenant.get(r.COMPUTE_LEASES, "theirs", other))
    rbac_refused(lambda: tenant.patch(r.COMPUTE_LEASES, "theirs", {"spec": {"replicas": 0}}, other))
    rbac_refused(lambda: tenant.delete(r.COMPUTE_LEASES, "theirs", other))
    rbac_refused(lambda: tenant.list(r.COMPUTE_LEASES))
    assert hub.get(r.COMPUTE_LEASES, "theirs", other)["spec"]["replicas"] == 1
    tenant.delete(r.COMPUTE_LEASES, "mine", namespace)
    hub.delete(r.COMPUTE_LEASES, "theirs", other)
