"""The agent on the real bed: pod slots in the inventory, provider-side reasons in the status.

Behaviour matrix (case -> expected):

- prov-a (3 kwok nodes x ``pods: 110``) -> Provider ``status.capacity/allocatable.pods`` = 330;
  a 3-replica lease placed there -> ``status.available.pods`` drops by exactly 3 once the lease
  is accounted, and comes back once the lease is deleted and its namespace is gone.
- every prov-a node tainted (the provider's scheduler refuses the pods) -> the LeasePlacement
  is ``Pending``, ``Ready=False/PodsUnschedulable``, message "1 pod(s) Pending: 0/3 nodes are
  available: 3 node(s) had untolerated taint(s)." (the scheduler's first sentence, without
  its post-filter tail or pod names); taint removed ->
  ``Running``, ``Ready=True/AllReplicasReady``, with ``lastReportTime`` and
  ``observedGeneration`` set; then an unchanged placement is not written again (same
  resourceVersion over several report intervals).
- pods that run but never become ready (kwok stage ``testbed.kommons.io/ready=false``) ->
  ``Ready=False/ContainersNotReady`` with the pods' Ready message, counted ("2 pod(s) not
  ready: ...").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed

PROVIDER = "prov-a"
TAINT_KEY = "testbed.kommons.io/full"


def _pinned(name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    """A lease that may only go to prov-a."""
    body = lease_body(name, namespace, **kwargs)
    body["spec"]["placement"] = {"providers": [PROVIDER]}
    return body


def _available_pods(hub: Kube) -> tuple[int, str, list[str]]:
    status = hub.get(r.PROVIDERS, PROVIDER).get("status") or {}
    return (
        int((status.get("available") or {}).get("pods", -1)),
        str(status.get("inventoryTime")),
        list(status.get("accountedLeases") or []),
    )


def _stable_available_pods(hub: Kube) -> int:
    """available.pods once it has not changed for a few report intervals.

    The agent writes its inventory when it changes, and refreshes it every 30 s.
    """
    seen: list[tuple[int, float]] = []

    def stable() -> bool:
        pods, _, _ = _available_pods(hub)
        if not seen or seen[-1][0] != pods:
            seen.append((pods, time.monotonic()))
        return pods >= 0 and time.monotonic() - seen[-1][1] >= 6

    wait_for(stable, timeout=90, what="a stable inventory report of prov-a", every=0.5)
    return seen[-1][0]


def _placement(hub: Kube, lease_uid: str) -> dict[str, Any]:
    items = hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={lease_uid}")
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    return dict(items[0])


def _ready_condition(placement: dict[str, Any]) -> dict[str, Any]:
    for condition in (placement.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return {}


def _wait_placement(
    hub: Kube,
    lease_uid: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        items = hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={lease_uid}")
        if len(items) != 1:
            return False
        seen.clear()
        seen.update(items[0])
        return check(seen)

    try:
        wait_for(done, timeout=timeout, what=what, every=0.5)
    except Exception as exc:
        raise AssertionError(f"{exc}; last placement status: {seen.get('status')}") from exc
    return dict(seen)


def _wait_lease_uid(hub: Kube, namespace: str, name: str) -> str:
    lease = wait_lease(
        hub,
        namespace,
        name,
        lambda lease: bool((lease.get("status") or {}).get("placements")),
        what=f"lease {name} placed",
    )
    assert [p["provider"] for p in lease["status"]["placements"]] == [PROVIDER]
    return str(lease["metadata"]["uid"])


@pytest.fixture
def tainted(provider_kube: Callable[[str], Kube]) -> Iterator[Callable[[], None]]:
    """Taint every prov-a node NoSchedule; the returned function (and teardown) lifts it."""
    kube = provider_kube(PROVIDER)
    names = [n["metadata"]["name"] for n in kube.list(r.NODES)]
    taint = [{"key": TAINT_KEY, "effect": "NoSchedule"}]
    for name in names:
        kube.patch(r.NODES, name, {"spec": {"taints": taint}})

    def untaint() -> None:
        for name in names:
            kube.patch(r.NODES, name, {"spec": {"taints": None}})

    try:
        yield untaint
    finally:
        untaint()


def test_available_pods_drop_by_the_replicas_of_a_placed_lease(hub: Kube, tenant: str) -> None:
    status = hub.get(r.PROVIDERS, PROVIDER)["status"]
    assert status["capacity"]["pods"] == 3 * 110
    assert status["allocatable"]["pods"] == 3 * 110
    before = _stable_available_pods(hub)
    assert 0 <= before <= 3 * 110

    hub.create(r.COMPUTE_LEASES, _pinned("slots", tenant, replicas=3), tenant)
    key = f"{tenant}/slots=3"  # the lease's placement, with the replicas it accounts for

    def accounted() -> bool:
        pods, _, leases = _available_pods(hub)
        return key in leases and pods == before - 3

    try:
        wait_for(accounted, timeout=60, what="prov-a to account 3 pod slots", every=0.5)
    except Exception as exc:
        raise AssertionError(f"{exc}; before={before}, now={_available_pods(hub)}") from exc

    hub.delete(r.COMPUTE_LEASES, "slots", tenant)

    def released() -> bool:
        pods, _, leases = _available_pods(hub)
        return not any(entry.startswith(f"{tenant}/slots") for entry in leases) and pods == before

    wait_for(released, timeout=90, what="prov-a to release the 3 pod slots", every=0.5)


def test_unschedulable_pods_give_the_placement_the_schedulers_reason(
    hub: Kube, tenant: str, tainted: Callable[[], None]
) -> None:
    hub.create(r.COMPUTE_LEASES, _pinned("blocked", tenant, replicas=1), tenant)
    uid = _wait_lease_uid(hub, tenant, "blocked")

    placement = _wait_placement(
        hub,
        uid,
        lambda p: _ready_condition(p).get("reason") == "PodsUnschedulable",
        what="placement Ready=False/PodsUnschedulable",
    )
    status, ready = placement["status"], _ready_condition(placement)
    assert ready["status"] == "False"
    assert status["phase"] == "Pending"
    assert status["readyReplicas"] == 0
    assert re.fullmatch(
        r"1 pod\(s\) Pending: 0/3 nodes are available: 3 node\(s\) had untolerated taint.*\.",
        ready["message"],
    ), ready["message"]
    assert "preemption" not in ready["message"]
    assert "workload-" not in ready["message"]  # no pod names
    assert status["message"] == ready["message"]
    assert status["observedGeneration"] == placement["metadata"]["generation"]
    assert status["lastReportTime"]

    tainted()  # the provider frees its nodes: the same pod is scheduled and becomes ready
    placement = _wait_placement(
        hub,
        uid,
        lambda p: _ready_condition(p).get("reason") == "AllReplicasReady",
        what="placement Ready=True/AllReplicasReady",
    )
    assert _ready_condition(placement)["status"] == "True"
    assert placement["status"]["phase"] == "Running"
    assert placement["status"]["readyReplicas"] == 1
    assert placement["status"]["message"] == "1/1 replicas ready"

    # Nothing changes any more: the agent's reports (every 2 s) rewrite nothing; only its
    # metering checkpoint (and the time of that report) moves on while the pod is ready
    # (docs/metering.md).
    moving = {"metering", "lastReportTime"}
    before = {k: v for k, v in placement["status"].items() if k not in moving}
    time.sleep(7)
    after = _placement(hub, uid)["status"]
    assert {k: v for k, v in after.items() if k not in moving} == before
    assert after["metering"]["observedAt"] > placement["status"]["metering"]["observedAt"]
    hub.delete(r.COMPUTE_LEASES, "blocked", tenant)


def test_pods_that_never_become_ready_are_containers_not_ready(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    body = _pinned("unready", tenant, replicas=2)
    body["spec"]["template"]["metadata"]["annotations"] = {"testbed.kommons.io/ready": "false"}
    hub.create(r.COMPUTE_LEASES, body, tenant)
    uid = _wait_lease_uid(hub, tenant, "unready")

    placement = _wait_placement(
        hub,
        uid,
        lambda p: (
            _ready_condition(p).get("reason") == "ContainersNotReady"
            # the pods are first Pending, then running but not ready: wait for the latter
            and "2 pod(s) not ready: testbed" in _ready_condition(p).get("message", "")
        ),
        what="placement Ready=False/ContainersNotReady for 2 pods",
    )
    ready = _ready_condition(placement)
    assert ready["message"] == "2 pod(s) not ready: testbed.kommons.io/ready=false"
    assert placement["status"]["phase"] == "Pending"
    assert placement["status"]["replicas"] == 2
    pods = provider_kube(PROVIDER).list(r.PODS, placement["status"]["namespace"])
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["name"] not in ready["message"]
    hub.delete(r.COMPUTE_LEASES, "unready", tenant)
    wait_for(
        lambda: not hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}"),
        timeout=90,
        what="the placement to be removed",
    )
