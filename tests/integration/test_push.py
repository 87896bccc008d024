"""Push mode on the real bed: prov-c's agent runs inside the hub, as prov-c's agent.

The module switches prov-c of the running stack to push mode the way a hub admin does (its
cluster's admin kubeconfig in a Secret on the hub, ``kommons onboard --mode Push``, no agent
process), and back to pull mode at the end.

Behaviour matrix:

- prov-c in Push mode -> Provider condition PushAgent=True naming the identity the hub's API
  server authenticated the in-hub agent as (its ServiceAccount, not the hub); heartbeats and
  inventory flow without any agent process; phase Ready.
- lease allowed only on prov-c -> pods Running on prov-c's cluster (kwok), placement status
  written by the in-hub agent, lease Running.
- the push agent's hub client (built as the hub builds it: a TokenRequest token for
  ``kommons-provider-prov-c:kommons-agent``) -> forging a placement's spec, another provider's
  status, its own phase, or creating a placement -> refused, as for a pull agent; reading the
  kubeconfig Secret -> 403 (for a pull agent too).
- lease deleted -> the workload's namespace on prov-c removed, lease gone.
- kubeconfigSecretRef.key naming a missing key -> PushAgent=False, reason SecretKeyNotFound,
  message naming the field, Secret and key; the agent stops (no more heartbeats); a key whose
  kubeconfig reaches no server -> ClusterUnreachable; the right key again -> agent restarted.
- prov-c's API server stopped -> after two failed probes the agent is stopped
  (ClusterUnreachable), no heartbeat, the provider Unreachable; started again -> agent back,
  provider Ready.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from kommons.hub.push import agent_hub_kube
from kommons.kube import Forbidden, Invalid, Kube, KubeError, NotFound, connect
from kommons.kube import resources as r
from kommons.kube.credentials import whoami
from kommons.trust.policies import HEARTBEAT_LEASE
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, make_namespace, wait_lease

pytestmark = pytest.mark.bed

PUSH = "prov-c"
PUSH_NS = f"kommons-provider-{PUSH}"
AGENT_USER = f"system:serviceaccount:{PUSH_NS}:kommons-agent"
JSON = dict[str, Any]


def push_condition(hub: Kube) -> JSON:
    """prov-c's PushAgent condition ({} while there is none)."""
    status = hub.get(r.PROVIDERS, PUSH).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "PushAgent"), {})


def wait_condition(hub: Kube, check: Callable[[JSON], bool], what: str) -> JSON:
    seen: JSON = {}

    def done() -> bool:
        seen.clear()
        seen.update(push_condition(hub))
        return check(seen)

    try:
        wait_for(done, timeout=90, what=what, every=0.5)
    except Exception as exc:
        raise AssertionError(f"{exc}; last PushAgent condition: {seen}") from exc
    return dict(seen)


def renew_time(hub: Kube) -> str:
    return str((hub.get(r.LEASES, HEARTBEAT_LEASE, PUSH_NS).get("spec") or {}).get("renewTime"))


def wait_heartbeats(hub: Kube, count: int = 2) -> None:
    """Wait until the heartbeat Lease was renewed ``count`` more times."""
    seen = [renew_time(hub)]

    def renewed() -> bool:
        now = renew_time(hub)
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_for(renewed, timeout=60, what=f"{count} heartbeats of {PUSH}", every=0.5)


@pytest.fixture(scope="module")
def push(stack: Stack, hub: Kube) -> Iterator[datetime]:
    """prov-c in push mode for this module; yields when it was switched."""
    switched = datetime.now(UTC).replace(microsecond=0)
    stack.use_push(PUSH)
    try:
        yield switched
    finally:
        stack.use_pull(PUSH)
        wait_condition(hub, lambda c: not c, "the PushAgent condition to go in pull mode")
        stack.wait_providers_ready(timeout=90)


@pytest.fixture(scope="module")
def lease(hub: Kube, push: datetime) -> Iterator[JSON]:
    """A 2-replica lease allowed only on prov-c, Running."""
    namespace = make_namespace(hub)
    body = lease_body("pushed", namespace, replicas=2)
    body["spec"]["placement"] = {"providers": [PUSH]}
    hub.create(r.COMPUTE_LEASES, body, namespace)
    running = wait_lease(
        hub,
        namespace,
        "pushed",
        lambda lease: (lease.get("status") or {}).get("phase") == "Running",
        what="lease pushed Running on the push provider",
        timeout=120,
    )
    yield running
    hub.delete(r.COMPUTE_LEASES, "pushed", namespace)


def test_push_agent_runs_in_the_hub_as_the_providers_agent(
    stack: Stack, hub: Kube, push: datetime
) -> None:
    assert f"agent-{PUSH}" not in stack.processes  # no agent process of its own
    condition = wait_condition(
        hub, lambda c: c.get("status") == "True", "PushAgent=True on the push provider"
    )
    assert condition["reason"] == "AgentRunning"
    assert AGENT_USER in condition["message"]  # as the API server authenticated it
    assert stack.provider_kubeconfigs[PUSH].exists()
    server = yaml.safe_load(stack.provider_kubeconfigs[PUSH].read_text())["clusters"][0]
    assert server["cluster"]["server"] in condition["message"]

    wait_heartbeats(hub)  # only the in-hub agent can renew it now

    def reported() -> bool:
        status = hub.get(r.PROVIDERS, PUSH).get("status") or {}
        seen = status.get("inventoryTime")
        return bool(seen) and datetime.fromisoformat(str(seen)) >= push and status["nodes"] > 0

    wait_for(reported, timeout=60, what="an inventory report from the push agent", every=0.5)
    wait_for(
        lambda: (hub.get(r.PROVIDERS, PUSH).get("status") or {}).get("phase") == "Ready",
        timeout=60,
        what=f"{PUSH} Ready",
    )


def test_lease_on_push_provider_runs_there(
    hub: Kube, lease: JSON, provider_kube: Callable[[str], Kube]
) -> None:
    (placement,) = lease["status"]["placements"]
    assert placement["provider"] == PUSH
    assert lease["status"]["readyReplicas"] == 2
    pods = provider_kube(PUSH).list(r.PODS, placement["namespace"])
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith(f"{PUSH}-")
    uid = lease["metadata"]["uid"]
    (written,) = hub.list(r.LEASE_PLACEMENTS, PUSH_NS, label_selector=f"kommons.io/lease-uid={uid}")
    assert written["status"]["readyReplicas"] == 2  # reported by the in-hub agent
    assert "kommons.io/agent" in written["metadata"]["finalizers"]


def test_push_agents_hub_client_is_held_to_the_trust_boundary(
    stack: Stack, hub: Kube, lease: JSON
) -> None:
    agent, _ = agent_hub_kube(hub, PUSH)  # the client the hub gives its push agent
    assert whoami(agent) == AGENT_USER
    uid = lease["metadata"]["uid"]
    (placement,) = hub.list(
        r.LEASE_PLACEMENTS, PUSH_NS, label_selector=f"kommons.io/lease-uid={uid}"
    )
    name = placement["metadata"]["name"]

    with pytest.raises((Forbidden, Invalid)) as spec:
        agent.patch(r.LEASE_PLACEMENTS, name, {"spec": {"pricePerHour": "99"}}, PUSH_NS)
    assert "spec.pricePerHour" in spec.value.message
    with pytest.raises(Forbidden) as other:
        agent.patch(r.PROVIDERS, "prov-a", {"status": {"nodes": 0}}, subresource="status")
    assert other.value.status == 403
    with pytest.raises((Forbidden, Invalid)) as phase:
        agent.patch(r.PROVIDERS, PUSH, {"status": {"phase": "Cordoned"}}, subresource="status")
    assert "status.phase" in phase.value.message
    forged = dict(placement, metadata={"name": "forged", "namespace": PUSH_NS})
    forged.pop("status", None)
    with pytest.raises(KubeError) as create:
        agent.create(r.LEASE_PLACEMENTS, forged, PUSH_NS)
    assert create.value.status == 403
    after = hub.get(r.LEASE_PLACEMENTS, name, PUSH_NS)
    assert after["spec"] == placement["spec"]
    # the kubeconfig Secret is the hub's: neither this agent nor a pull agent can read it
    ref = stack.push_secret_ref(PUSH)
    pull_agent = connect(stack.agent_kubeconfig("prov-a"), field_manager="forger")
    for client in (agent, pull_agent):
        with pytest.raises(Forbidden):
            client.get(r.SECRETS, ref.name, ref.namespace)


def test_deleting_the_lease_removes_the_workload_on_the_push_provider(
    hub: Kube, lease: JSON, provider_kube: Callable[[str], Kube]
) -> None:
    namespace = lease["metadata"]["namespace"]
    provider_ns = lease["status"]["placements"][0]["namespace"]
    hub.delete(r.COMPUTE_LEASES, "pushed", namespace)

    def gone() -> bool:
        try:
            hub.get(r.COMPUTE_LEASES, "pushed", namespace)
        except NotFound:
            return True
        return False

    wait_for(gone, timeout=90, what="lease pushed deleted", every=0.3)
    assert provider_kube(PUSH).get_or_none(r.NAMESPACES, provider_ns) is None


def test_bad_kubeconfig_secret_is_shown_and_fixing_it_restarts_the_agent(
    stack: Stack, hub: Kube, push: datetime
) -> None:
    wait_condition(hub, lambda c: c.get("status") == "True", "the push agent running")
    ref = stack.push_secret_ref(PUSH)

    def use_key(key: str) -> None:
        hub.patch(r.PROVIDERS, PUSH, {"spec": {"kubeconfigSecretRef": {"key": key}}})

    use_key("nope")
    condition = wait_condition(
        hub, lambda c: c.get("reason") == "SecretKeyNotFound", "PushAgent=False SecretKeyNotFound"
    )
    assert condition["status"] == "False"
    assert condition["message"].startswith(
        f"spec.kubeconfigSecretRef.key: key 'nope' not in Secret {ref.namespace}/{ref.name}"
        " (its keys: "
    )
    assert "kubeconfig" in condition["message"].split("its keys: ")[1]
    # the agent was stopped before the condition was written: three heartbeat periods (the
    # bed's 2.5 s) pass with no renewal
    stopped = renew_time(hub)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert renew_time(hub) == stopped, "the heartbeat was renewed: the agent still runs"
        time.sleep(0.5)

    # a kubeconfig whose server does not answer
    doc = yaml.safe_load(stack.provider_kubeconfigs[PUSH].read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    hub.patch(
        r.SECRETS,
        ref.name,
        {"data": {"closed": base64.b64encode(yaml.safe_dump(doc).encode()).decode()}},
        ref.namespace,
    )
    try:
        use_key("closed")
        condition = wait_condition(
            hub, lambda c: c.get("reason") == "ClusterUnreachable", "PushAgent=False unreachable"
        )
        assert "spec.kubeconfigSecretRef" in condition["message"]
        assert "https://127.0.0.1:1" in condition["message"]
        assert "connection refused" in condition["message"]
    finally:
        use_key(ref.key)
        hub.patch(r.SECRETS, ref.name, {"data": {"closed": None}}, ref.namespace)

    wait_condition(hub, lambda c: c.get("status") == "True", "the push agent restarted")
    wait_heartbeats(hub)


def test_push_cluster_down_stops_the_agent_until_it_answers_again(
    testbed: Testbed, hub: Kube, push: datetime
) -> None:
    wait_condition(hub, lambda c: c.get("status") == "True", "the push agent running")
    testbed.stop_apiserver(PUSH)
    try:
        condition = wait_condition(
            hub, lambda c: c.get("reason") == "ClusterUnreachable", "PushAgent=False unreachable"
        )
        assert testbed.providers[PUSH].server in condition["message"]
        # the stopped agent heartbeats no more: the hub marks the provider Unreachable
        wait_for(
            lambda: (hub.get(r.PROVIDERS, PUSH).get("status") or {}).get("phase") == "Unreachable",
            timeout=60,
            what=f"{PUSH} Unreachable while its cluster is down",
        )
    finally:
        testbed.start_apiserver(PUSH)
    wait_condition(hub, lambda c: c.get("status") == "True", "the push agent back")
    wait_for(
        lambda: (hub.get(r.PROVIDERS, PUSH).get("status") or {}).get("phase") == "Ready",
        timeout=60,
        what=f"{PUSH} Ready again",
    )
