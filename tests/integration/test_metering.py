"""Metering on the real bed: what the hub bills equals the pods' own ready time.

The hub is restarted for this module with a short heartbeat timeout (failover within seconds).
Each test creates its own SettlementEpoch objects (as the hub admin would; the settle loop
creates them in production) and computes the ground truth from the pods' own ``Ready``
transitions on the provider clusters, read independently of Kommons' code.

- **accuracy** (:func:`test_metered_time_equals_the_pods_ready_time`): a 2-replica lease on
  prov-a; its pods are made NotReady and Ready again on a known schedule (kwok annotation
  ``testbed.kommons.io/ready``); prov-a's agent is SIGKILLed mid-epoch, so the hub fails the
  replicas over to another provider. Per epoch and placement the usage equals the ground truth
  within 1 s per replica: prov-a's time up to its last heartbeat only (the agent's report of
  the outage is not billed), the new provider's from its pods. Then: confirming an epoch folds
  its usage into ``cost.settled``; a deleted lease goes at once, its usage of the epochs still
  open handed over to them (``SettlementEpoch.status.departed``).
- **crashes** (:func:`test_sigkill_of_agent_and_hub_loses_and_doubles_nothing`): while the
  pods flip on a seeded random schedule, the agent and the hub are SIGKILLed at random moments
  (seeded) and restarted; the totals still equal the ground truth. A pod flips at most once
  while the agent is down: two flips of one pod unseen by the agent cannot be told from the
  pod alone, and are billed conservatively (docs/metering.md).
- **metering finalizer** (:func:`test_placement_left_behind_by_its_lease_is_released_when_its_
  agent_returns`): a lease deleted while its provider is Unreachable goes at once; its
  placement waits for the agent, then the hub releases its ``kommons.io/metering`` finalizer.
- **trust**: an agent's own credentials cannot rewrite ``Provider.status.outages``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.api_names import LABEL_LEASE_UID, LABEL_PLACEMENT, provider_namespace
from kommons.kube import Forbidden, Invalid, Kube, connect
from kommons.kube import resources as r
from kommons.money import format_units, parse_units, prorate
from kommons_testbed.pods import READY_ANNOTATION
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, wait_lease

LOST = "prov-a"
HEARTBEAT_TIMEOUT = "10"
CRASH_HEARTBEAT_TIMEOUT = "90"
"""Test (b) kills the agent for a few seconds (its restart may take 15 s on the bed): no
failover is wanted there."""
DEADLINE = 240.0
"""Generous polling deadline (2 shared cores)."""


@pytest.fixture(scope="module", autouse=True)
def metering_hub(stack: Stack) -> Iterator[Stack]:
    """The hub restarted with a short heartbeat timeout; the bed's default hub afterwards.

    It runs no settlement loop and meters into this module's own epochs; the epochs a settling
    hub left open are frozen first (:meth:`Stack.restart_hub`), or they would be billed too.
    """
    with stack.hub_with("--heartbeat-timeout", HEARTBEAT_TIMEOUT, settle=False):
        yield stack


# --- ground truth from the pods themselves ----------------------------------------------


def _t(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _ready_condition(pod: dict[str, Any]) -> tuple[bool, int]:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", _t(str(cond["lastTransitionTime"]))
    raise AssertionError(f"pod {pod['metadata']['name']} has no Ready condition")


@dataclass
class Truth:
    """Ready intervals per placement uid and pod uid, from the pods' Ready transitions."""

    spans: dict[str, dict[str, list[list[int | None]]]] = field(default_factory=dict)

    def ready(self, placement: str, pod: str, at: int) -> None:
        pods = self.spans.setdefault(placement, {})
        pods.setdefault(pod, []).append([at, None])

    def not_ready(self, placement: str, pod: str, at: int) -> None:
        span = self.spans[placement][pod][-1]
        assert span[1] is None, f"pod {pod} was not ready"
        span[1] = at

    def cut(self, placement: str, at: int) -> None:
        """Billing for the placement stops at ``at`` (its provider's last heartbeat)."""
        for spans in self.spans[placement].values():
            for span in spans:
                start, end = span
                assert start is not None
                span[0] = min(start, at)
                span[1] = at if end is None else min(end, at)

    def seconds(self, placement: str, window: tuple[int, int]) -> int:
        total = 0
        for spans in self.spans.get(placement, {}).values():
            for start, end in spans:
                assert start is not None
                assert end is not None, "an interval is still open"
                total += max(0, min(end, window[1]) - max(start, window[0]))
        return total


# --- helpers ------------------------------------------------------------------------------


def _epochs(hub: Kube, start: int, lengths: list[int]) -> list[tuple[int, int, int]]:
    """Create Open SettlementEpochs back to back from ``start``; (id, start, end) each."""
    out = []
    base = start  # ids unique per run on a reused bed, strictly increasing
    at = start
    for i, length in enumerate(lengths):
        epoch_id = base + i
        hub.create(
            r.SETTLEMENT_EPOCHS,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "SettlementEpoch",
                "metadata": {"name": f"epoch-{epoch_id}"},
                "spec": {
                    "epochId": epoch_id,
                    "start": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": datetime.fromtimestamp(at + length, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        )
        out.append((epoch_id, at, at + length))
        at += length
    return out


def _set_phase(hub: Kube, epoch_id: int, phase: str) -> None:
    hub.patch(
        r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}", {"status": {"phase": phase}}, subresource="status"
    )


def _delete_epochs(hub: Kube, epochs: list[tuple[int, int, int]]) -> None:
    for epoch_id, _, _ in epochs:
        hub.delete(r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}")


def _placement(hub: Kube, lease_uid: str, provider: str) -> dict[str, Any]:
    found = hub.list(
        r.LEASE_PLACEMENTS,
        provider_namespace(provider),
        label_selector=f"{LABEL_LEASE_UID}={lease_uid}",
    )
    assert len(found) == 1, f"expected one placement of the lease on {provider}: {found}"
    return found[0]


def _pods(kube: Kube, placement_name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in kube.list(r.PODS, label_selector=f"{LABEL_PLACEMENT}={placement_name}")
        if not (p.get("metadata") or {}).get("deletionTimestamp")
    ]


def _flip(kube: Kube, pod: dict[str, Any], ready: bool) -> int:
    """Make a kwok pod (not) Ready; the lastTransitionTime its Ready condition then shows."""
    meta = pod["metadata"]
    kube.patch(
        r.PODS,
        meta["name"],
        {"metadata": {"annotations": {READY_ANNOTATION: "true" if ready else "false"}}},
        meta["namespace"],
    )
    seen: list[int] = []

    def applied() -> bool:
        now_ready, since = _ready_condition(kube.get(r.PODS, meta["name"], meta["namespace"]))
        seen[:] = [since]
        return now_ready is ready

    wait_for(applied, timeout=60, what=f"pod {meta['name']} ready={ready}", every=0.2)
    return seen[0]


def _running_pods(kube: Kube, placement_name: str, count: int) -> list[dict[str, Any]]:
    holder: list[dict[str, Any]] = []

    def ready() -> bool:
        pods = _pods(kube, placement_name)
        holder[:] = pods
        return len(pods) == count and all(_ready_condition(p)[0] for p in pods)

    wait_for(ready, timeout=DEADLINE, what=f"{count} ready pods of {placement_name}", every=0.5)
    return holder


def _usage(lease: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    entries = (lease.get("status") or {}).get("usage") or []
    return {(int(e["epochId"]), str(e["placementUid"])): e for e in entries}


def _wait_billed(
    hub: Kube,
    namespace: str,
    name: str,
    expected: dict[tuple[int, str], int],
    *,
    replicas: dict[str, int],
) -> dict[str, Any]:
    """Poll the lease until every (epoch, placement) usage is the truth within 1 s/replica."""

    def matches(lease: dict[str, Any]) -> bool:
        usage = _usage(lease)
        for (epoch_id, uid), truth in expected.items():
            got = int((usage.get((epoch_id, uid)) or {}).get("readySeconds", 0))
            if abs(got - truth) > replicas[uid]:
                return False
        return True

    try:
        return wait_lease(
            hub, namespace, name, matches, what="usage = ground truth", timeout=DEADLINE
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nexpected replica-seconds: {expected}") from exc


def _check_amounts(lease: dict[str, Any], prices: dict[str, int]) -> None:
    """Each amount is the locked price × its seconds, rounded down once; accrued their sum."""
    status = lease["status"]
    total = 0
    for entry in status.get("usage") or ():
        price = prices[entry["placementUid"]]
        assert entry["amount"] == format_units(prorate(price, int(entry["readySeconds"])))
        total += parse_units(entry["amount"])
    settled = parse_units(status["cost"].get("settled") or "0")
    assert parse_units(status["cost"]["accrued"]) == settled + total


def _last_renew(hub: Kube, provider: str) -> int:
    beat = hub.get(r.LEASES, "kommons-agent", provider_namespace(provider))
    return _t(str(beat["spec"]["renewTime"]))


def _now() -> int:
    return int(time.time())


# --- (a) accuracy -------------------------------------------------------------------------


def test_metered_time_equals_the_pods_ready_time(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    start = _now()
    epochs = _epochs(hub, start, [50, 50, 600])
    truth = Truth()
    name = "metered"
    hub.create(r.COMPUTE_LEASES, lease_body(name, tenant, replicas=2), tenant)
    try:
        lease = wait_lease(
            hub,
            tenant,
            name,
            lambda b: (b.get("status") or {}).get("phase") == "Running",
            what="lease Running",
            timeout=DEADLINE,
        )
        uid = lease["metadata"]["uid"]
        first = _placement(hub, uid, LOST)
        first_uid = first["metadata"]["uid"]
        lost = provider_kube(LOST)
        pods = _running_pods(lost, first["metadata"]["name"], 2)
        for pod in pods:
            truth.ready(first_uid, pod["metadata"]["uid"], _ready_condition(pod)[1])
        a, b = pods
        # the schedule: a flaps, b goes away and comes back, then the provider dies mid-epoch
        time.sleep(4)
        truth.not_ready(first_uid, a["metadata"]["uid"], _flip(lost, a, False))
        time.sleep(6)
        truth.ready(first_uid, a["metadata"]["uid"], _flip(lost, a, True))
        time.sleep(3)
        truth.not_ready(first_uid, b["metadata"]["uid"], _flip(lost, b, False))
        time.sleep(8)
        truth.ready(first_uid, b["metadata"]["uid"], _flip(lost, b, True))
        time.sleep(5)
        stack.kill(f"agent-{LOST}")
        last_beat = _last_renew(hub, LOST)

        # failover: the replicas move to another provider
        moved = wait_lease(
            hub,
            tenant,
            name,
            lambda b: (
                any(
                    e.get("type") == "FailedOver"
                    for e in (b.get("status") or {}).get("history") or ()
                )
                and (b.get("status") or {}).get("phase") == "Running"
            ),
            what="failover off prov-a",
            timeout=DEADLINE,
        )
        target = next(p for p in moved["status"]["placements"] if p["provider"] != LOST)
        second = _placement(hub, uid, target["provider"])
        second_uid = second["metadata"]["uid"]
        other = provider_kube(target["provider"])
        new_pods = _running_pods(other, second["metadata"]["name"], 2)
        for pod in new_pods:
            truth.ready(second_uid, pod["metadata"]["uid"], _ready_condition(pod)[1])

        # the hub recorded the outage from the last heartbeat it saw
        outages = (hub.get(r.PROVIDERS, LOST).get("status") or {}).get("outages") or []
        assert outages, "the hub recorded no outage of prov-a"
        outage_start = _t(outages[-1]["start"])
        assert last_beat - 1 <= outage_start <= last_beat + 2, (outage_start, last_beat)
        truth.cut(first_uid, last_beat)

        # prov-a's agent returns: it writes its final checkpoint (covering the outage, which
        # must not be billed) and removes the superseded workload
        stack.start_agent(LOST)
        c = new_pods[0]
        time.sleep(3)
        truth.not_ready(second_uid, c["metadata"]["uid"], _flip(other, c, False))
        time.sleep(5)
        truth.ready(second_uid, c["metadata"]["uid"], _flip(other, c, True))
        time.sleep(4)
        for pod in new_pods:  # close every interval at a known time
            truth.not_ready(second_uid, pod["metadata"]["uid"], _flip(other, pod, False))
        wait_for(
            lambda: (
                not hub.list(
                    r.LEASE_PLACEMENTS,
                    provider_namespace(LOST),
                    label_selector=f"{LABEL_LEASE_UID}={uid}",
                )
            ),
            timeout=DEADLINE,
            what="the superseded placement to be ingested and gone",
            every=0.5,
        )

        expected = {
            (epoch_id, placement): truth.seconds(placement, (s, e))
            for epoch_id, s, e in epochs
            for placement in (first_uid, second_uid)
        }
        assert sum(expected.values()) > 0
        lease = _wait_billed(hub, tenant, name, expected, replicas={first_uid: 2, second_uid: 2})
        prices = {
            first_uid: parse_units(first["spec"]["pricePerHour"], rounding="up"),
            second_uid: parse_units(second["spec"]["pricePerHour"], rounding="up"),
        }
        _check_amounts(lease, prices)
        assert lease["status"]["cost"]["lastMeteredAt"]

        # confirming the first epoch folds its usage into cost.settled
        first_epoch = epochs[0][0]
        before = lease["status"]
        folded = sum(
            parse_units(e["amount"]) for e in before["usage"] if e["epochId"] == first_epoch
        )
        assert folded > 0
        _set_phase(hub, first_epoch, "Confirmed")
        lease = wait_lease(
            hub,
            tenant,
            name,
            lambda b: all(
                e["epochId"] != first_epoch for e in (b.get("status") or {}).get("usage") or ()
            ),
            what="epoch folded",
            timeout=DEADLINE,
        )
        assert parse_units(lease["status"]["cost"]["settled"]) == folded
        assert lease["status"]["cost"]["accrued"] == before["cost"]["accrued"]
        _check_amounts(lease, prices)

        # a deleted lease goes at once, its usage of the open epochs handed over to them
        open_ids = {epoch_id for epoch_id, _, _ in epochs[1:]}
        owed = {e["epochId"] for e in lease["status"]["usage"] if e["epochId"] in open_ids}
        assert owed, "the lease has no usage in an open epoch to hand over"
        hub.delete(r.COMPUTE_LEASES, name, tenant)
        wait_for(
            lambda: hub.get_or_none(r.COMPUTE_LEASES, name, tenant) is None,
            timeout=DEADLINE,
            what="the deleted lease to go without waiting for its epochs",
            every=0.5,
        )
        for epoch_id in sorted(owed):
            status = hub.get(r.SETTLEMENT_EPOCHS, f"epoch-{epoch_id}").get("status") or {}
            assert status.get("phase") in (None, "Open")  # unsettled: the lease did not wait
            departed = status.get("departed") or []
            assert departed, f"epoch {epoch_id} has none of the lease's usage"
            before = {
                e["placementUid"]: e for e in lease["status"]["usage"] if e["epochId"] == epoch_id
            }
            for entry in departed:
                assert entry["lease"] == f"{tenant}/{name}"
                assert entry["leaseUid"] == lease["metadata"]["uid"]
                price = prices[entry["placementUid"]]
                assert entry["amount"] == format_units(prorate(price, int(entry["readySeconds"])))
                # the final checkpoints may add time, never take any away
                if entry["placementUid"] in before:
                    seen = before[entry["placementUid"]]
                    assert int(entry["readySeconds"]) >= int(seen["readySeconds"])
            assert {e["placementUid"] for e in departed} >= set(before)
    finally:
        if not stack.alive(f"agent-{LOST}"):
            stack.start_agent(LOST)
        _delete_epochs(hub, epochs)


# --- (b) crashes --------------------------------------------------------------------------


def test_sigkill_of_agent_and_hub_loses_and_doubles_nothing(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    rng = random.Random(9)
    stack.stop("hub")
    stack.start_hub("--heartbeat-timeout", CRASH_HEARTBEAT_TIMEOUT, settle=False)
    stack.wait_providers_ready(timeout=120)
    start = _now()
    epochs = _epochs(hub, start, [45, 45, 600])
    truth = Truth()
    name = "crashes"
    hub.create(r.COMPUTE_LEASES, lease_body(name, tenant, replicas=2), tenant)
    try:
        lease = wait_lease(
            hub,
            tenant,
            name,
            lambda b: (b.get("status") or {}).get("phase") == "Running",
            what="lease Running",
            timeout=DEADLINE,
        )
        uid = lease["metadata"]["uid"]
        provider = lease["status"]["placements"][0]["provider"]
        placement = _placement(hub, uid, provider)
        p_uid = placement["metadata"]["uid"]
        kube = provider_kube(provider)
        pods = _running_pods(kube, placement["metadata"]["name"], 2)
        ready = {}
        for pod in pods:
            truth.ready(p_uid, pod["metadata"]["uid"], _ready_condition(pod)[1])
            ready[pod["metadata"]["uid"]] = True
        agent = f"agent-{provider}"
        down: dict[str, float] = {}  # process → when to restart it
        unseen: set[str] = set()  # pods whose last flip the agent's checkpoint does not show

        def seen(pod_uid: str) -> bool:
            body = hub.get(
                r.LEASE_PLACEMENTS,
                placement["metadata"]["name"],
                placement["metadata"]["namespace"],
            )
            metering = (body.get("status") or {}).get("metering") or {}
            pods_seen = {p["uid"]: p for p in metering.get("pods") or ()}
            is_open = bool((pods_seen.get(pod_uid) or {}).get("readySince"))
            return is_open is ready[pod_uid]

        kills = 0
        end = time.monotonic() + 80
        while time.monotonic() < end:
            now = time.monotonic()
            for proc, at in list(down.items()):
                if now >= at:
                    if proc == "hub":
                        stack.start_hub(
                            "--heartbeat-timeout", CRASH_HEARTBEAT_TIMEOUT, settle=False
                        )
                    else:
                        stack.start_agent(provider)
                    del down[proc]
            action = rng.random()
            if action < 0.2 and "hub" not in down:
                stack.kill("hub")
                kills += 1
                down["hub"] = time.monotonic() + rng.uniform(1, 6)
            elif action < 0.4 and agent not in down:
                stack.kill(agent)
                kills += 1
                down[agent] = time.monotonic() + rng.uniform(1, 6)
            else:
                pod = rng.choice(pods)
                pod_uid = pod["metadata"]["uid"]
                if pod_uid in unseen and seen(pod_uid):
                    unseen.discard(pod_uid)
                if pod_uid not in unseen:  # at most one unseen transition per pod (docstring)
                    unseen.add(pod_uid)
                    at = _flip(kube, pod, not ready[pod_uid])
                    if ready[pod_uid]:
                        truth.not_ready(p_uid, pod_uid, at)
                    else:
                        truth.ready(p_uid, pod_uid, at)
                    ready[pod_uid] = not ready[pod_uid]
            time.sleep(rng.uniform(0.5, 4))
        for proc in list(down):
            if proc == "hub":
                stack.start_hub("--heartbeat-timeout", CRASH_HEARTBEAT_TIMEOUT, settle=False)
            else:
                stack.start_agent(provider)
        assert kills >= 4, f"only {kills} kills: the schedule exercised too little"
        for pod in pods:  # close every interval at a known time, once the last flip was seen
            pod_uid = pod["metadata"]["uid"]
            wait_for(
                lambda u=pod_uid: seen(u), timeout=DEADLINE, what="agent saw the flip", every=0.5
            )
            if ready[pod_uid]:
                truth.not_ready(p_uid, pod["metadata"]["uid"], _flip(kube, pod, False))
        lease = hub.get(r.COMPUTE_LEASES, name, tenant)
        assert not any(
            e.get("type") == "FailedOver" for e in lease["status"].get("history") or ()
        ), "the kills were meant to be shorter than the heartbeat timeout"
        expected = {(epoch_id, p_uid): truth.seconds(p_uid, (s, e)) for epoch_id, s, e in epochs}
        assert sum(expected.values()) > 0
        lease = _wait_billed(hub, tenant, name, expected, replicas={p_uid: 2})
        price = parse_units(placement["spec"]["pricePerHour"], rounding="up")
        _check_amounts(lease, {p_uid: price})
    finally:
        if not stack.alive(f"agent-{provider}"):
            stack.start_agent(provider)
        if stack.alive("hub"):
            stack.stop("hub")
        stack.start_hub("--heartbeat-timeout", HEARTBEAT_TIMEOUT, settle=False)
        _delete_epochs(hub, epochs)
        hub.delete(r.COMPUTE_LEASES, name, tenant)


# --- the metering finalizer when the lease went first ---------------------------------------


def test_placement_left_behind_by_its_lease_is_released_when_its_agent_returns(
    hub: Kube, tenant: str, stack: Stack
) -> None:
    """Bounded deletion: a lease does not wait for an Unreachable provider's placement.

    That placement keeps the agent's finalizer and the hub's ``kommons.io/metering``; when the
    agent returns and removes its own, the hub releases the placement although its lease is gone.
    """
    name = "left-behind"
    hub.create(r.COMPUTE_LEASES, lease_body(name, tenant, replicas=1), tenant)
    lease = wait_lease(
        hub,
        tenant,
        name,
        lambda b: (b.get("status") or {}).get("phase") == "Running",
        what="lease Running",
        timeout=DEADLINE,
    )
    uid = lease["metadata"]["uid"]
    assert lease["status"]["placements"][0]["provider"] == LOST
    stack.kill(f"agent-{LOST}")
    try:
        wait_for(
            lambda: (hub.get(r.PROVIDERS, LOST).get("status") or {}).get("phase") == "Unreachable",
            timeout=DEADLINE,
            what="prov-a Unreachable",
            every=0.5,
        )
        hub.delete(r.COMPUTE_LEASES, name, tenant)
        wait_for(
            lambda: hub.get_or_none(r.COMPUTE_LEASES, name, tenant) is None,
            timeout=DEADLINE,
            what="the lease to go without waiting for prov-a",
            every=0.5,
        )
        left = _placement(hub, uid, LOST)
        assert left["metadata"].get("deletionTimestamp")
        assert "kommons.io/metering" in left["metadata"]["finalizers"]
    finally:
        stack.start_agent(LOST)
    wait_for(
        lambda: (
            not hub.list(
                r.LEASE_PLACEMENTS,
                provider_namespace(LOST),
                label_selector=f"{LABEL_LEASE_UID}={uid}",
            )
        ),
        timeout=DEADLINE,
        what="the left-behind placement to be released and gone",
        every=0.5,
    )
    stack.wait_providers_ready(timeout=120)


def test_an_agent_cannot_write_its_outages(hub: Kube, stack: Stack) -> None:
    """Outage windows are the hub's record: the provider's own credentials cannot erase them."""
    agent = connect(stack.agent_kubeconfig(LOST), field_manager="forger")
    before = (hub.get(r.PROVIDERS, LOST).get("status") or {}).get("outages")
    with pytest.raises((Invalid, Forbidden)) as refused:
        agent.patch(r.PROVIDERS, LOST, {"status": {"outages": []}}, subresource="status")
    assert "status.outages" in str(refused.value)
    assert (hub.get(r.PROVIDERS, LOST).get("status") or {}).get("outages") == before
