"""The whole life of a lease on the real bed: term, suspend/resume, Jobs, failure reasons.

Behaviour matrix (case -> expected):

- a lease with ``duration: 20s`` -> Running with ``status.expiresAt`` (placement carries it);
  after it -> phase ``Expired``, no placement left on the hub, its provider namespace gone,
  the lease kept with a history entry ``Expired`` and an ``Expired`` Event.
- suspend/resume (prov-a offers 64 cpu): lease A (2 x 20 cpu, allowed on prov-a and prov-c)
  runs on prov-a (cheapest) -> suspended: phase ``Suspended``, prov-a's report accounts it
  with 0 replicas -> lease B (2 x 24 cpu, prov-a only) gets prov-a's capacity and runs there
  -> A resumed: prov-a no longer fits (16 cpu left) -> A re-placed on prov-c and Running,
  its prov-a placement gone, a ``Replaced`` Event. B suspended and resumed -> back on prov-a.
- a Job lease (completions 3, parallelism 1) -> kwok completes each pod (its ``pod-complete``
  stage) -> phase ``Succeeded``, ``status.succeeded`` 3, placements removed, lease kept,
  history entry ``Succeeded``.
- a Job lease whose pods fail (kwok stage ``testbed.kommons.io/fail=true`` in the template's
  annotations, backoffLimit 0) -> phase ``Failed`` with reason ``BackoffLimitExceeded``,
  placements removed, history entry ``Failed``.
- a lease whose image cannot be pulled (kwok stage ``testbed.kommons.io/waiting=ErrImagePull``)
  -> after the hub's ready timeout phase ``Failed``, ``Ready`` reason ``ErrImagePull``, no pod
  name in the message, its placement kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed


@pytest.fixture(autouse=True)
def _clean(hub: Kube, tenant: str) -> Iterator[None]:
    """Delete the test's leases, passed or failed, and wait until they are gone.

    The next test then starts from a market with its capacity back.
    """
    yield
    for lease in hub.list(r.COMPUTE_LEASES, tenant):
        hub.delete(r.COMPUTE_LEASES, lease["metadata"]["name"], tenant)
    wait_for(
        lambda: not hub.list(r.COMPUTE_LEASES, tenant),
        timeout=120,
        what=f"the leases of {tenant} to go",
        every=0.5,
    )


def _lease(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    replicas = spec.pop("replicas", 1)
    cpu = spec.pop("cpu", "500m")
    body = lease_body(name, namespace, replicas=replicas, cpu=cpu)
    body["spec"].update(spec)
    return body


def _phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda lease: (lease.get("status") or {}).get("phase") == phase


def _running_on(provider: str) -> Callable[[dict[str, Any]], bool]:
    def check(lease: dict[str, Any]) -> bool:
        status = lease.get("status") or {}
        return status.get("phase") == "Running" and status.get("providers") == provider

    return check


def _placements(hub: Kube, uid: str) -> list[dict[str, Any]]:
    return list(hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}"))


def _condition(lease: dict[str, Any], type_: str) -> dict[str, Any]:
    for condition in (lease.get("status") or {}).get("conditions") or []:
        if condition["type"] == type_:
            return dict(condition)
    raise AssertionError(f"no {type_} condition in {lease.get('status')}")


def _events(hub: Kube, namespace: str, name: str) -> list[tuple[str, str]]:
    return [
        (e.get("reason", ""), e.get("message", ""))
        for e in hub.list(r.EVENTS, namespace)
        if e["involvedObject"]["name"] == name
    ]


def _wait_no_placements(hub: Kube, uid: str, *, timeout: float = 60) -> None:
    wait_for(lambda: not _placements(hub, uid), timeout=timeout, what="placements to go", every=0.5)


def _accounted(hub: Kube, provider: str) -> list[str]:
    status = hub.get(r.PROVIDERS, provider).get("status") or {}
    return list(status.get("accountedLeases") or [])


def _set_suspend(hub: Kube, namespace: str, name: str, suspend: bool) -> None:
    hub.patch(r.COMPUTE_LEASES, name, {"spec": {"suspend": suspend}}, namespace)


def test_a_lease_expires_at_the_end_of_its_term(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.COMPUTE_LEASES, _lease("term", tenant, duration="20s"), tenant)
    running = wait_lease(hub, tenant, "term", _phase("Running"), what="term Running", timeout=90)
    uid = running["metadata"]["uid"]
    assert running["status"]["expiresAt"]

    def placement_agrees() -> bool:
        # the term is provisional (from the first placement) until the replicas started, then
        # startedAt + duration: the placement follows at the hub's next step
        (placement,) = _placements(hub, uid)
        lease = hub.get(r.COMPUTE_LEASES, "term", tenant)
        return bool(placement["spec"]["expiresAt"] == lease["status"]["expiresAt"])

    wait_for(placement_agrees, timeout=30, what="the placement's term to match the lease's")
    (placement,) = _placements(hub, uid)
    provider = placement["spec"]["provider"]
    namespace = placement["status"]["namespace"]

    expired = wait_lease(hub, tenant, "term", _phase("Expired"), what="term Expired", timeout=90)
    _wait_no_placements(hub, uid)
    history = expired["status"]["history"]
    assert [(h["type"], h["reason"]) for h in history] == [("Expired", "TermEnded")]
    assert expired["status"]["placements"] == []
    assert any(reason == "Expired" for reason, _ in _events(hub, tenant, "term"))
    provider_side = provider_kube(provider)
    wait_for(
        lambda: provider_side.get_or_none(r.NAMESPACES, namespace) is None,
        timeout=90,
        what=f"the expired lease's namespace on {provider} to go",
        every=1,
    )
    # kept for the record, and stays Expired
    assert _phase("Expired")(hub.get(r.COMPUTE_LEASES, "term", tenant))


def test_suspend_releases_capacity_and_resume_re_places_elsewhere(hub: Kube, tenant: str) -> None:
    big = {"replicas": 2, "cpu": "20"}
    a = _lease("first", tenant, placement={"providers": ["prov-a", "prov-c"]}, **big)
    hub.create(r.COMPUTE_LEASES, a, tenant)
    first = wait_lease(hub, tenant, "first", _running_on("prov-a"), what="A on prov-a", timeout=90)
    uid = first["metadata"]["uid"]

    _set_suspend(hub, tenant, "first", True)
    wait_lease(hub, tenant, "first", _phase("Suspended"), what="A Suspended", timeout=60)
    wait_for(
        lambda: f"{tenant}/first=0" in _accounted(hub, "prov-a"),
        timeout=60,
        what="prov-a to report A's reservation released",
        every=0.5,
    )

    # 2 x 24 cpu: prov-a keeps 16 of its 64, too little for even one of A's replicas
    b = _lease("second", tenant, placement={"providers": ["prov-a"]}, replicas=2, cpu="24")
    hub.create(r.COMPUTE_LEASES, b, tenant)
    wait_lease(hub, tenant, "second", _running_on("prov-a"), what="B on prov-a", timeout=90)

    _set_suspend(hub, tenant, "first", False)
    resumed = wait_lease(
        hub, tenant, "first", _running_on("prov-c"), what="A resumed on prov-c", timeout=120
    )
    wait_for(
        lambda: [p["spec"]["provider"] for p in _placements(hub, uid)] == ["prov-c"],
        timeout=60,
        what="A's suspended placement on prov-a to go",
        every=0.5,
    )
    assert resumed["status"]["ready"] == "2/2"
    assert any(
        reason == "Replaced" and "prov-a no longer has room" in message
        for reason, message in _events(hub, tenant, "first")
    ), _events(hub, tenant, "first")

    # a suspended lease whose provider still has its room goes back there
    _set_suspend(hub, tenant, "second", True)
    wait_lease(hub, tenant, "second", _phase("Suspended"), what="B Suspended", timeout=60)
    _set_suspend(hub, tenant, "second", False)
    wait_lease(hub, tenant, "second", _running_on("prov-a"), what="B back on prov-a", timeout=90)
    assert any(reason == "Resumed" for reason, _ in _events(hub, tenant, "second"))


def test_a_job_lease_succeeds_once_its_pods_completed(hub: Kube, tenant: str) -> None:
    body = _lease("batch", tenant, job={"completions": 3, "backoffLimit": 1})
    hub.create(r.COMPUTE_LEASES, body, tenant)
    done = wait_lease(
        hub, tenant, "batch", _phase("Succeeded"), what="batch Succeeded", timeout=120
    )
    status = done["status"]
    assert status["succeeded"] == 3
    assert [h["type"] for h in status["history"]] == ["Succeeded"]
    assert _condition(done, "Ready")["reason"] == "JobComplete"
    _wait_no_placements(hub, done["metadata"]["uid"])
    assert _phase("Succeeded")(hub.get(r.COMPUTE_LEASES, "batch", tenant))  # kept


def test_a_job_lease_fails_when_its_pods_exceed_the_backoff_limit(hub: Kube, tenant: str) -> None:
    body = _lease("crash", tenant, job={"completions": 1, "backoffLimit": 0})
    template = copy.deepcopy(body["spec"]["template"])
    template["metadata"]["annotations"] = {"testbed.kommons.io/fail": "true"}
    body["spec"]["template"] = template
    hub.create(r.COMPUTE_LEASES, body, tenant)
    failed = wait_lease(hub, tenant, "crash", _phase("Failed"), what="crash Failed", timeout=120)
    ready = _condition(failed, "Ready")
    assert ready["reason"] == "BackoffLimitExceeded", ready
    assert "testbed.kommons.io/fail=true" in ready["message"]
    assert [h["type"] for h in failed["status"]["history"]] == ["Failed"]
    assert failed["status"]["failed"] >= 1
    _wait_no_placements(hub, failed["metadata"]["uid"])


def test_an_image_that_cannot_be_pulled_fails_the_lease_with_the_reason(
    hub: Kube, tenant: str
) -> None:
    body = _lease("badimage", tenant)
    body["spec"]["template"]["metadata"]["annotations"] = {
        "testbed.kommons.io/waiting": "ErrImagePull"
    }
    hub.create(r.COMPUTE_LEASES, body, tenant)
    failed = wait_lease(
        hub, tenant, "badimage", _phase("Failed"), what="badimage Failed", timeout=120
    )
    ready = _condition(failed, "Ready")
    assert ready["reason"] == "ErrImagePull", ready
    assert "workload-" not in ready["message"]  # reasons, never pod names
    assert len(_placements(hub, failed["metadata"]["uid"])) == 1  # kept: a fix recovers it
