"""Failover, fencing and bounded deletion on the real bed (hub + 3 provider clusters).

The hub is restarted for this module with short timeouts (``--heartbeat-timeout 10
--replace-after 20``) and with the bed's defaults afterwards. Leases land on prov-a (the
cheapest); each scenario takes prov-a away in a different way:

- **API server stopped**: prov-a's kube-apiserver is stopped (its agent runs on and withholds
  heartbeats), then started again;
- **agent killed**: SIGKILL of prov-a's agent, not restarted until the failover happened;
- **link cut**: prov-a's agent reaches the hub through a TCP proxy, which is cut (its cluster
  and the workload keep running), then restored.

For each: the replicas run on another provider (lease Running, ``status.history`` entry
FailedOver from prov-a, ``Relocated`` condition, Warning Event FailedOver, a higher fencing
token), the old placement is kept on the hub as deleting (never removed before its
replacement); once prov-a is back, its stale workload is removed and there is exactly one
placement and one workload for the lease.

A run-to-completion lease keeps its progress: a Job lease (6 completions, one at a time, each
pod succeeding 5 s after it starts: the bed's ``testbed.kommons.io/complete=slow`` stage) on
prov-a loses its agent after at least 2 completions were reported; the replacement runs only
the completions left (its placement and its provider's Job ask for 6 - carried), the history
entry FailedOver says how many were carried, and the lease ends Succeeded with succeeded 6.

Also: a lease that may run only on prov-a (``spec.placement.providers``) whose API server
stops is ``Degraded`` 0/2 (its replicas there are not counted ready: the hub cannot observe
them) with ``Ready=False ProviderUnreachable`` naming prov-a and saying no other provider
fits, and a Warning Event; its placement is kept, not deleted (fail safe); once prov-a is back
the same placement counts again (``Running`` 2/2, no failover); scaling it down to 1 records
a ``ScaledDown`` history entry (prov-a, 1 replica) and a Normal Event. Deleting a lease whose
only provider is Unreachable (no replacement possible: the
placement is not deleted before, fail safe) finishes while the provider is gone, and the
returning agent removes the orphaned workload; replicas that stay unschedulable on prov-a
(its nodes tainted) are re-placed elsewhere after ``--replace-after`` with the provider's
reason in the history, and prov-a is not used for that lease again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.api_names import LABEL_LEASE_UID, provider_namespace
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import wait_for
from kommons_testbed.proxy import TcpProxy, proxied_kubeconfig, server_address
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, wait_lease

LOST = "prov-a"
PROVIDERS = ("prov-a", "prov-b", "prov-c")
HEARTBEAT_TIMEOUT = "10"
REPLACE_AFTER = "20"
FAILOVER_TIMEOUT = 180.0
"""Generous deadline for the bed (2 shared cores); the timing itself is measured in
bench/bench_failover.py."""


@pytest.fixture(scope="module", autouse=True)
def failover_hub(stack: Stack) -> Iterator[Stack]:
    """The hub restarted with short timeouts; the bed's default hub again afterwards."""
    with stack.hub_with("--heartbeat-timeout", HEARTBEAT_TIMEOUT, "--replace-after", REPLACE_AFTER):
        yield stack


def _back(hub: Kube, provider: str, since: datetime) -> None:
    """Wait until ``provider``'s agent renewed its heartbeat after ``since`` and it is Ready.

    A restarted agent takes a while to start; the hub's last verdict may still be ``Ready``.
    """

    def renewed() -> bool:
        beat = hub.get(r.LEASES, "kommons-agent", provider_namespace(provider))
        renew = (beat.get("spec") or {}).get("renewTime")
        phase = (hub.get(r.PROVIDERS, provider).get("status") or {}).get("phase")
        return bool(renew) and datetime.fromisoformat(str(renew)) > since and phase == "Ready"

    wait_for(renewed, timeout=120, what=f"{provider} heartbeating and Ready", every=0.5)


def _create(hub: Kube, tenant: str, name: str, **kwargs: Any) -> dict[str, Any]:
    body = lease_body(name, tenant, **kwargs)
    hub.create(r.COMPUTE_LEASES, body, tenant)
    return wait_lease(
        hub,
        tenant,
        name,
        lambda lease: (lease.get("status") or {}).get("phase") == "Running",
        what=f"lease {name} Running",
        timeout=120,
    )


def _providers(lease: dict[str, Any]) -> list[str]:
    return sorted(p["provider"] for p in (lease.get("status") or {}).get("placements") or ())


def _condition(lease: dict[str, Any], type_: str) -> dict[str, Any]:
    for condition in (lease.get("status") or {}).get("conditions") or ():
        if condition["type"] == type_:
            return dict(condition)
    return {}


def _moved_off(provider: str, kind: str = "FailedOver") -> Callable[[dict[str, Any]], bool]:
    def check(lease: dict[str, Any]) -> bool:
        status = lease.get("status") or {}
        history = status.get("history") or []
        return (
            status.get("phase") == "Running"
            and provider not in _providers(lease)
            and any(e["type"] == kind and e.get("provider") == provider for e in history)
        )

    return check


def _hub_placements(hub: Kube, uid: str) -> list[dict[str, Any]]:
    return hub.list(r.LEASE_PLACEMENTS, label_selector=f"{LABEL_LEASE_UID}={uid}")


def _workloads(kube: Kube, uid: str) -> list[dict[str, Any]]:
    return kube.list(r.DEPLOYMENTS, label_selector=f"{LABEL_LEASE_UID}={uid}")


def _namespaces(kube: Kube, uid: str) -> list[dict[str, Any]]:
    return [
        ns
        for ns in kube.list(r.NAMESPACES, label_selector=f"{LABEL_LEASE_UID}={uid}")
        if not (ns.get("metadata") or {}).get("deletionTimestamp")
    ]


def _events(hub: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in hub.list(r.EVENTS, namespace)
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def _assert_failed_over(
    hub: Kube, tenant: str, name: str, lease: dict[str, Any], *, token_before: int
) -> None:
    """What the tenant sees after a failover off ``LOST``; the old placement still deleting."""
    status = lease["status"]
    entry = [e for e in status["history"] if e["type"] == "FailedOver"][-1]
    assert entry["provider"] == LOST
    assert entry["reason"] == "ProviderUnreachable"
    assert entry["replicas"] == 2
    assert entry["to"] == _providers(lease)
    relocated = _condition(lease, "Relocated")
    assert (relocated["status"], relocated["reason"]) == ("True", "FailedOver")
    assert f"moved from {LOST}" in relocated["message"]
    assert status["lastFencingToken"] > token_before
    events = _events(hub, tenant, name)
    warnings = [e for e in events if (e["type"], e["reason"]) == ("Warning", "FailedOver")]
    assert warnings, "a Warning Event FailedOver is posted on the lease"
    uid = lease["metadata"]["uid"]
    live = [p for p in _hub_placements(hub, uid) if not p["metadata"].get("deletionTimestamp")]
    assert sum(p["spec"]["replicas"] for p in live) <= lease["spec"]["replicas"]
    assert [p["spec"]["provider"] for p in live] == _providers(lease)
    assert all(p["spec"]["fencingToken"] > token_before for p in live)


def _assert_stale_copy_removed(
    hub: Kube, provider_kube: Callable[[str], Kube], lease: dict[str, Any]
) -> None:
    """Once ``LOST`` is back: its workload and placement are gone, one of each elsewhere."""
    uid = lease["metadata"]["uid"]
    lost = provider_kube(LOST)
    wait_for(
        lambda: not _namespaces(lost, uid) and not _workloads(lost, uid),
        timeout=120,
        what=f"the stale workload on {LOST} to be removed",
        every=1,
    )
    wait_for(
        lambda: all(p["spec"]["provider"] != LOST for p in _hub_placements(hub, uid)),
        timeout=60,
        what=f"the superseded placement on {LOST} to go from the hub",
        every=1,
    )
    placements = _hub_placements(hub, uid)
    assert len(placements) == 1
    assert not placements[0]["metadata"].get("deletionTimestamp")
    serving = placements[0]["spec"]["provider"]
    for provider in PROVIDERS:
        workloads = _workloads(provider_kube(provider), uid)
        assert len(workloads) == (1 if provider == serving else 0), provider


def test_provider_api_server_stopped_fails_over(
    hub: Kube, tenant: str, testbed: Testbed, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    lease = _create(hub, tenant, "fo-api")
    assert _providers(lease) == [LOST]
    token = lease["status"]["lastFencingToken"]

    testbed.stop_apiserver(LOST)
    try:
        lease = wait_lease(
            hub, tenant, "fo-api", _moved_off(LOST), what="failover", timeout=FAILOVER_TIMEOUT
        )
        _assert_failed_over(hub, tenant, "fo-api", lease, token_before=token)
        # the superseded placement waits on the hub for its agent (fencing on return)
        old = hub.get(r.LEASE_PLACEMENTS, _placement_name(lease), provider_namespace(LOST))
        assert old["metadata"].get("deletionTimestamp")
    finally:
        since = datetime.now(UTC)
        testbed.start_apiserver(LOST)
    _assert_stale_copy_removed(hub, provider_kube, lease)
    _back(hub, LOST, since)


def test_killed_agent_fails_over_and_fences_on_return(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    lease = _create(hub, tenant, "fo-kill")
    assert _providers(lease) == [LOST]
    token = lease["status"]["lastFencingToken"]
    uid = lease["metadata"]["uid"]

    stack.kill(f"agent-{LOST}")
    try:
        lease = wait_lease(
            hub, tenant, "fo-kill", _moved_off(LOST), what="failover", timeout=FAILOVER_TIMEOUT
        )
        _assert_failed_over(hub, tenant, "fo-kill", lease, token_before=token)
        # no agent: the old workload still runs on prov-a until the agent comes back
        assert len(_workloads(provider_kube(LOST), uid)) == 1
    finally:
        since = datetime.now(UTC)
        stack.start_agent(LOST)
    _assert_stale_copy_removed(hub, provider_kube, lease)
    _back(hub, LOST, since)


def test_agent_cut_off_from_the_hub_is_fenced_when_the_link_returns(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    host, port = server_address(stack.hub_kubeconfig)
    proxy = TcpProxy(host, port)
    try:
        stack.stop(f"agent-{LOST}")
        proxied = proxied_kubeconfig(
            stack.agent_kubeconfig(LOST), stack.dir / f"{LOST}.proxied.kubeconfig", proxy
        )
        since = datetime.now(UTC)
        stack.start_agent(LOST, hub_kubeconfig=proxied)
        _back(hub, LOST, since)
        lease = _create(hub, tenant, "fo-cut")
        assert _providers(lease) == [LOST]
        token = lease["status"]["lastFencingToken"]
        uid = lease["metadata"]["uid"]

        proxy.cut()
        lease = wait_lease(
            hub, tenant, "fo-cut", _moved_off(LOST), what="failover", timeout=FAILOVER_TIMEOUT
        )
        _assert_failed_over(hub, tenant, "fo-cut", lease, token_before=token)
        # the agent runs but cannot hear the hub: its workload keeps running until fenced
        assert stack.alive(f"agent-{LOST}")
        workloads = _workloads(provider_kube(LOST), uid)
        assert len(workloads) == 1
        assert not workloads[0]["metadata"].get("deletionTimestamp")

        proxy.restore()
        _assert_stale_copy_removed(hub, provider_kube, lease)
    finally:
        proxy.close()
        stack.stop(f"agent-{LOST}")
        since = datetime.now(UTC)
        stack.start_agent(LOST)
    _back(hub, LOST, since)


def _phase(phase: str, ready: str) -> Callable[[dict[str, Any]], bool]:
    def check(lease: dict[str, Any]) -> bool:
        status = lease.get("status") or {}
        return (status.get("phase"), status.get("ready")) == (phase, ready)

    return check


def test_the_only_provider_unreachable_degrades_the_lease_until_it_returns(
    hub: Kube, tenant: str, testbed: Testbed
) -> None:
    body = lease_body("fo-only", tenant)
    body["spec"]["placement"] = {"providers": [LOST]}  # nowhere else to go
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(hub, tenant, "fo-only", _phase("Running", "2/2"), what="Running 2/2")
    uid = lease["metadata"]["uid"]
    [before] = _hub_placements(hub, uid)

    testbed.stop_apiserver(LOST)
    try:
        lease = wait_lease(
            hub,
            tenant,
            "fo-only",
            lambda item: (
                _phase("Degraded", "0/2")(item)
                and _condition(item, "Ready").get("reason") == "ProviderUnreachable"
            ),
            what="Degraded 0/2 while prov-a is Unreachable",
            timeout=FAILOVER_TIMEOUT,
        )
        ready = _condition(lease, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ProviderUnreachable")
        assert f"2 replica(s) on {LOST} (provider {LOST} is Unreachable" in ready["message"]
        assert "no other provider fits" in ready["message"]
        assert [p["readyReplicas"] for p in lease["status"]["placements"]] == [0]
        warnings = [
            e
            for e in _events(hub, tenant, "fo-only")
            if (e["type"], e["reason"]) == ("Warning", "ProviderUnreachable")
        ]
        assert warnings, "a Warning Event ProviderUnreachable is posted on the lease"
        assert LOST in warnings[0]["message"]
        # fail safe: the hub never asked prov-a to remove the replicas it cannot see
        [kept] = _hub_placements(hub, uid)
        assert kept["metadata"]["uid"] == before["metadata"]["uid"]
        assert not kept["metadata"].get("deletionTimestamp")
    finally:
        since = datetime.now(UTC)
        testbed.start_apiserver(LOST)
    _back(hub, LOST, since)

    lease = wait_lease(
        hub,
        tenant,
        "fo-only",
        _phase("Running", "2/2"),
        what="Running 2/2 once prov-a is back",
        timeout=FAILOVER_TIMEOUT,
    )
    assert _condition(lease, "Ready")["reason"] == "AllReplicasReady"
    [same] = _hub_placements(hub, uid)
    assert same["metadata"]["uid"] == before["metadata"]["uid"]
    assert not any(e["type"] == "FailedOver" for e in lease["status"].get("history") or ())

    hub.patch(r.COMPUTE_LEASES, "fo-only", {"spec": {"replicas": 1}}, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "fo-only",
        lambda item: any(
            e["type"] == "ScaledDown" for e in (item.get("status") or {}).get("history") or ()
        ),
        what="a ScaledDown history entry",
    )
    [entry] = [e for e in lease["status"]["history"] if e["type"] == "ScaledDown"]
    assert (entry["provider"], entry["replicas"], entry["reason"]) == (LOST, 1, "ScaledDown")
    assert "spec.replicas lowered to 1" in entry["message"]
    scaled = [
        e
        for e in _events(hub, tenant, "fo-only")
        if (e["type"], e["reason"]) == ("Normal", "ScaledDown")
    ]
    assert [e["message"] for e in scaled] == [entry["message"]]
    hub.delete(r.COMPUTE_LEASES, "fo-only", tenant)


def test_deleting_a_lease_whose_provider_is_gone_finishes(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    body = lease_body("fo-del", tenant)
    body["spec"]["placement"] = {"providers": [LOST]}  # nowhere else to go
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "fo-del",
        lambda item: (item.get("status") or {}).get("phase") == "Running",
        what="lease fo-del Running",
        timeout=120,
    )
    uid = lease["metadata"]["uid"]

    stack.kill(f"agent-{LOST}")
    try:
        lease = wait_lease(
            hub,
            tenant,
            "fo-del",
            lambda item: _condition(item, "Scheduled").get("reason") == "ReplacementPending",
            what="ReplacementPending",
            timeout=FAILOVER_TIMEOUT,
        )
        # fail safe: no replacement, so the placement on prov-a is not deleted
        [placement] = _hub_placements(hub, uid)
        assert not placement["metadata"].get("deletionTimestamp")
        assert f"{LOST} is Unreachable" in _condition(lease, "Scheduled")["message"]

        hub.delete(r.COMPUTE_LEASES, "fo-del", tenant)
        wait_for(
            lambda: hub.get_or_none(r.COMPUTE_LEASES, "fo-del", tenant) is None,
            timeout=60,
            what="the lease to be deleted while its provider is Unreachable",
            every=0.5,
        )
        # the orphaned workload still runs on prov-a: its agent is away
        assert len(_workloads(provider_kube(LOST), uid)) == 1
    finally:
        since = datetime.now(UTC)
        stack.start_agent(LOST)
    wait_for(
        lambda: not _namespaces(provider_kube(LOST), uid) and not _hub_placements(hub, uid),
        timeout=120,
        what="the returning agent to remove the orphaned workload",
        every=1,
    )
    _back(hub, LOST, since)


def _taint(kube: Kube, *, on: bool) -> None:
    for node in kube.list(r.NODES):
        taints = [
            t for t in (node.get("spec") or {}).get("taints") or () if t["key"] != "kommons-test"
        ]
        if on:
            taints.append({"key": "kommons-test", "value": "stuck", "effect": "NoSchedule"})
        kube.patch(r.NODES, node["metadata"]["name"], {"spec": {"taints": taints}})


def test_replicas_stuck_unschedulable_are_replaced_elsewhere(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    lost = provider_kube(LOST)
    _taint(lost, on=True)
    try:
        hub.create(r.COMPUTE_LEASES, lease_body("fo-stuck", tenant), tenant)
        lease = wait_lease(
            hub,
            tenant,
            "fo-stuck",
            _moved_off(LOST, "Replaced"),
            what="stuck replicas re-placed",
            timeout=FAILOVER_TIMEOUT,
        )
    finally:
        _taint(lost, on=False)
    entry = [e for e in lease["status"]["history"] if e["type"] == "Replaced"][-1]
    assert entry["reason"] == "PodsUnschedulable"
    assert "not ready after" in entry["message"]
    relocated = _condition(lease, "Relocated")
    assert (relocated["status"], relocated["reason"]) == ("True", "Replaced")
    _assert_stale_copy_removed(hub, provider_kube, lease)
    # the history keeps the lease off prov-a: scaling up does not go back there
    hub.patch(r.COMPUTE_LEASES, "fo-stuck", {"spec": {"replicas": 3}}, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "fo-stuck",
        lambda item: (item.get("status") or {}).get("readyReplicas") == 3,
        what="scaled to 3",
        timeout=120,
    )
    assert LOST not in _providers(lease)


def _placement_name(lease: dict[str, Any]) -> str:
    return str(lease["status"]["placements"][0]["placementName"])


def _succeeded(at_least: int) -> Callable[[dict[str, Any]], bool]:
    return lambda lease: ((lease.get("status") or {}).get("succeeded") or 0) >= at_least


def _failed_over_from(provider: str) -> Callable[[dict[str, Any]], bool]:
    def check(lease: dict[str, Any]) -> bool:
        history = (lease.get("status") or {}).get("history") or []
        return any(e["type"] == "FailedOver" and e.get("provider") == provider for e in history)

    return check


def test_a_job_lease_keeps_its_progress_when_it_fails_over(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    completions = 6
    body = lease_body("fo-job", tenant, replicas=1)
    body["spec"]["job"] = {"completions": completions, "backoffLimit": 1}
    body["spec"]["template"]["metadata"]["annotations"] = {"testbed.kommons.io/complete": "slow"}
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(hub, tenant, "fo-job", _succeeded(2), what="2 completions", timeout=120)
    assert _providers(lease) == [LOST]
    uid = lease["metadata"]["uid"]

    stack.kill(f"agent-{LOST}")
    try:
        lease = wait_lease(
            hub,
            tenant,
            "fo-job",
            _failed_over_from(LOST),
            what="failover",
            timeout=FAILOVER_TIMEOUT,
        )
        entry = [e for e in lease["status"]["history"] if e["type"] == "FailedOver"][-1]
        carried = entry["completions"]
        assert 2 <= carried < completions, entry
        # the replacement is asked for the completions left, and its provider's Job runs them
        [replacement] = [
            p
            for p in _hub_placements(hub, uid)
            if p["spec"]["provider"] != LOST and not p["metadata"].get("deletionTimestamp")
        ]
        assert replacement["spec"]["job"]["completions"] == completions - carried
        there = provider_kube(replacement["spec"]["provider"])
        jobs: list[dict[str, Any]] = []

        def job_there() -> bool:
            jobs[:] = there.list(r.JOBS, label_selector=f"{LABEL_LEASE_UID}={uid}")
            return bool(jobs)

        wait_for(job_there, timeout=120, what="the replacement's Job", every=0.5)
        assert [j["spec"]["completions"] for j in jobs] == [completions - carried]
        done = wait_lease(
            hub,
            tenant,
            "fo-job",
            lambda item: (item.get("status") or {}).get("phase") == "Succeeded",
            what="the Job lease Succeeded",
            timeout=FAILOVER_TIMEOUT,
        )
        status = done["status"]
        assert status["succeeded"] == completions
        assert status["carriedCompletions"] == carried
        assert [h["type"] for h in status["history"]][-2:] == ["FailedOver", "Succeeded"]
        messages = [
            e["message"]
            for e in _events(hub, tenant, "fo-job")
            if e["reason"] == "CompletionsCarried"
        ]
        assert any(f"{carried} completion(s) done on {LOST}" in m for m in messages)
    finally:
        since = datetime.now(UTC)
        stack.start_agent(LOST)
    wait_for(
        lambda: not _namespaces(provider_kube(LOST), uid) and not _hub_placements(hub, uid),
        timeout=120,
        what=f"the superseded Job on {LOST} and every placement to go",
        every=1,
    )
    _back(hub, LOST, since)
