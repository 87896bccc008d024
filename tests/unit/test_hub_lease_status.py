"""Unit tests of a lease's typed status (``kommons.hub.lease_status``).

Behaviour matrix:

- phase, in order: deleting → Terminating; suspended → Suspended (placed or not); nothing
  placed → Pending; every replica ready → Running; fewer ready after having run → Degraded
  (even none); otherwise Scheduled (placed but never all ready yet).
- ``startedAt``: set (to the second) the first time every replica is ready, then kept (even
  when degraded); never while suspended.
- summaries: one per placement, sorted by provider; ``providers`` column is the sorted set;
  ``readyReplicas`` and ``ready`` ("r/n") add up the placements; a placement's ready replicas
  are capped at its replicas; namespace only when reported; no status → 0 ready.
- conditions: the gates are set, other conditions kept; ``lastTransitionTime`` moves only when
  a condition's status flips; observed generation recorded.
- decision: a new one replaces, ``None`` keeps the current one; billing account recorded.
- ``readiness``: suspended (or 0 replicas) → Ready/Suspended; nothing placed → NotPlaced;
  every replica ready → AllReplicasReady; otherwise ReplicasStarting with ``recheck_after`` =
  what is left of the timeout, counted from the later of the newest placement and the moment
  Ready turned False; after the timeout Ready=False with the first lagging provider's reason
  (its agent's Ready condition; NotReported without a status; ReplicasNotReady otherwise)
  and each lagging provider's message.
- unreachable providers: their placements' replicas count as not ready (summary, totals,
  ``ready``), so a lease that ran is ``Degraded``; ``readiness`` gives Ready=False reason
  ProviderUnreachable at once (no timeout wait) naming each such provider, its replicas and
  why, plus "no other provider fits" when a replacement was tried; the same placements
  reachable again count their reported replicas (Running); a Job placement that reported
  ``Succeeded`` stays complete.
- ``status_changed``: ignores condition ``lastTransitionTime`` and ``decision.decidedAt``;
  sees any other difference; no current status is a change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.api import (
    ComputeLease,
    ComputeLeaseStatus,
    LeasePlacement,
    SchedulingDecision,
    get_condition,
)
from kommons.hub.lease_status import (
    PROVIDER_UNREACHABLE,
    Gate,
    lease_status,
    placement_summary,
    readiness,
    status_changed,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
PLACED = "2026-01-02T03:00:00Z"  # 245 s before NOW
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def lease(
    *,
    replicas: int = 2,
    suspend: bool = False,
    deleting: bool = False,
    status: dict[str, Any] | ComputeLeaseStatus | None = None,
) -> ComputeLease:
    meta: dict[str, Any] = {"namespace": "team-a", "name": "web", "uid": "u1", "generation": 3}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:00:00Z"
    body: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "poolRef": {"name": "pool"},
            "replicas": replicas,
            "suspend": suspend,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "maxPricePerHour": "1",
            "template": TEMPLATE,
        },
    }
    if isinstance(status, ComputeLeaseStatus):
        body["status"] = status.to_api()
    elif status is not None:
        body["status"] = status
    return ComputeLease.model_validate(body)


def placement(
    provider: str,
    replicas: int,
    ready: int | None = 0,
    *,
    namespace: str | None = None,
    created: str = PLACED,
    agent: tuple[str, str] | None = None,
    message: str | None = None,
) -> LeasePlacement:
    """A placement; ``ready=None`` has no status; ``agent`` is its Ready=False condition."""
    body: dict[str, Any] = {
        "metadata": {
            "name": f"web-{provider}",
            "namespace": f"kommons-provider-{provider}",
            "creationTimestamp": created,
        },
        "spec": {
            "leaseRef": {"namespace": "team-a", "name": "web", "uid": "u1"},
            "provider": provider,
            "replicas": replicas,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "template": TEMPLATE,
            "pricePerHour": "0.5",
            "billingAccount": "acct",
        },
    }
    if ready is not None:
        status: dict[str, Any] = {"readyReplicas": ready, "phase": "Pending"}
        if namespace:
            status["namespace"] = namespace
        if message:
            status["message"] = message
        if agent:
            status["conditions"] = [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": agent[0],
                    "message": agent[1],
                    "lastTransitionTime": created,
                }
            ]
        body["status"] = status
    return LeasePlacement.model_validate(body)


def status_of(
    body: ComputeLease,
    placements: list[LeasePlacement],
    gates: tuple[Gate, ...] = (),
    *,
    decision: SchedulingDecision | None = None,
    now: datetime = NOW,
) -> ComputeLeaseStatus:
    return lease_status(body, placements, gates, decision=decision, billing_account="acct", now=now)


def cond(status: ComputeLeaseStatus, type_: str) -> Any:
    found = get_condition(status.conditions, type_)
    assert found is not None, type_
    return found


# --- phase -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "placements", "started", "phase"),
    [
        ({"deleting": True}, [placement("p1", 2, 2)], True, "Terminating"),
        ({"deleting": True}, [], False, "Terminating"),
        ({}, [], False, "Pending"),
        ({}, [], True, "Pending"),
        ({"suspend": True}, [], False, "Suspended"),  # suspended before it was placed
        ({"suspend": True}, [placement("p1", 2, 2)], False, "Suspended"),
        ({}, [placement("p1", 1, 1), placement("p2", 1, 1)], False, "Running"),
        ({}, [placement("p1", 2, 1)], False, "Scheduled"),
        ({}, [placement("p1", 2, 0)], False, "Scheduled"),
        ({}, [placement("p1", 2, None)], False, "Scheduled"),
        ({}, [placement("p1", 2, 1)], True, "Degraded"),
        ({}, [placement("p1", 2, 0)], True, "Degraded"),  # every replica lost after running
        ({}, [placement("p1", 1, 1)], False, "Scheduled"),  # half placed, half ready
    ],
)
def test_phase_rules(
    kwargs: dict[str, Any], placements: list[LeasePlacement], started: bool, phase: str
) -> None:
    current = {"startedAt": "2026-01-01T00:00:00Z"} if started else None
    assert status_of(lease(**kwargs, status=current), placements).phase == phase


def test_started_at_is_set_once_every_replica_is_ready_and_then_kept() -> None:
    first = status_of(lease(), [placement("p1", 2, 2)], now=NOW.replace(microsecond=500))
    assert first.started_at == NOW
    later = status_of(lease(status=first), [placement("p1", 2, 1)], now=LATER)
    assert later.started_at == NOW
    assert later.phase == "Degraded"


def test_started_at_is_not_set_before_every_replica_is_ready() -> None:
    assert status_of(lease(), [placement("p1", 2, 1)]).started_at is None
    assert status_of(lease(), []).started_at is None
    assert status_of(lease(suspend=True), [placement("p1", 2, 2)]).started_at is None


# --- summaries ---------------------------------------------------------------------------


def test_placements_are_summarised_sorted_by_provider() -> None:
    status = status_of(
        lease(replicas=3),
        [placement("zeta", 1, 1, namespace="kommons-web-zeta"), placement("alpha", 2, 1)],
    )
    assert [p.provider for p in status.placements or ()] == ["alpha", "zeta"]
    assert status.providers == "alpha,zeta"
    assert status.replicas == 3
    assert status.ready_replicas == 2
    assert status.ready == "2/3"
    assert status.billing_account == "acct"
    assert status.observed_generation == 3
    alpha, zeta = status.to_api()["placements"]
    assert "namespace" not in alpha
    assert zeta["namespace"] == "kommons-web-zeta"


def test_placement_summary_fields() -> None:
    assert placement_summary(placement("p1", 2, 1, namespace="ns")).to_api() == {
        "provider": "p1",
        "replicas": 2,
        "readyReplicas": 1,
        "pricePerHour": "0.5",
        "placedAt": "2026-01-02T03:00:00Z",
        "placementName": "web-p1",
        "namespace": "ns",
    }


def test_placement_summary_without_status_has_no_ready_replicas() -> None:
    assert placement_summary(placement("p1", 2, None)).ready_replicas == 0


def test_ready_replicas_are_capped_at_the_placements_replicas() -> None:
    """After a scale-down the agent may still report the old count for a while."""
    assert placement_summary(placement("p1", 2, 5)).ready_replicas == 2
    status = status_of(lease(replicas=3), [placement("p1", 2, 5)])
    assert status.ready_replicas == 2
    assert status.phase == "Scheduled"


# --- conditions --------------------------------------------------------------------------


def test_gates_become_conditions_and_others_are_kept() -> None:
    foreign = {
        "type": "Settled",
        "status": "True",
        "reason": "Paid",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    status = status_of(
        lease(status={"conditions": [foreign]}),
        [],
        (Gate("PaymentOK", False, "LowEscrow", "escrow below one hour"),),
    )
    assert {c.type for c in status.conditions or ()} == {"Settled", "PaymentOK"}
    payment = cond(status, "PaymentOK")
    assert (payment.status, payment.reason) == ("False", "LowEscrow")
    assert payment.message == "escrow below one hour"
    assert payment.observed_generation == 3
    assert cond(status, "Settled").last_transition_time == datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_the_status_flips() -> None:
    placed = Gate("Scheduled", True, "Placed", "placed on p1")
    first = status_of(lease(), [placement("p1", 2, 1)], (placed,))
    same = status_of(
        lease(status=first),
        [placement("p1", 2, 1)],
        (Gate("Scheduled", True, "Placed", "placed on p1 again"),),
        now=LATER,
    )
    assert cond(same, "Scheduled").last_transition_time == NOW
    assert cond(same, "Scheduled").message == "placed on p1 again"
    flipped = status_of(
        lease(status=first),
        [placement("p1", 2, 1)],
        (Gate("Scheduled", False, "Unschedulable", "no room"),),
        now=LATER,
    )
    assert cond(flipped, "Scheduled").last_transition_time == LATER


# --- decision ----------------------------------------------------------------------------


def test_new_decision_replaces_and_none_keeps_the_current_one() -> None:
    old = SchedulingDecision(considered=1)
    new = SchedulingDecision(considered=2)
    current = lease(status={"decision": old.to_api()})
    assert status_of(current, [], decision=new).decision == new
    assert status_of(current, []).decision == old
    assert status_of(lease(), []).decision is None


# --- readiness ---------------------------------------------------------------------------


def ready_of(
    body: ComputeLease,
    placements: list[LeasePlacement],
    *,
    now: datetime = NOW,
    timeout: float = 300.0,
) -> tuple[bool, str, str, float | None]:
    result = readiness(body, placements, now=now, timeout=timeout)
    gate = result.gate
    assert gate.type == "Ready"
    return gate.ok, gate.reason, gate.message, result.recheck_after


@pytest.mark.parametrize(
    ("body", "placements", "ok", "reason"),
    [
        (lease(suspend=True), [placement("p1", 2, 0)], True, "Suspended"),
        (lease(replicas=0), [], True, "Suspended"),
        (lease(), [], False, "NotPlaced"),
        (lease(), [placement("p1", 1, 1), placement("p2", 1, 1)], True, "AllReplicasReady"),
    ],
)
def test_readiness_without_waiting(
    body: ComputeLease, placements: list[LeasePlacement], ok: bool, reason: str
) -> None:
    assert ready_of(body, placements)[::3] == (ok, None)
    assert ready_of(body, placements)[1] == reason


def test_replicas_starting_before_the_timeout() -> None:
    ok, reason, message, recheck = ready_of(lease(), [placement("p1", 2, 1)], timeout=300)
    assert (ok, reason) == (False, "ReplicasStarting")
    assert message == "1/2 replicas ready; waiting up to 300s for the rest"
    assert recheck == pytest.approx(300 - 245)


def test_the_wait_counts_from_the_newest_placement() -> None:
    placements = [placement("p1", 1, 0), placement("p2", 1, 0, created="2026-01-02T03:04:00Z")]
    assert ready_of(lease(), placements, timeout=300)[3] == pytest.approx(295)


def test_the_wait_counts_from_when_ready_turned_false() -> None:
    """A lease that ran, then lost a replica, gets the full timeout from that moment."""
    body = lease(
        status={
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ReplicasStarting",
                    "lastTransitionTime": "2026-01-02T03:04:00Z",
                }
            ]
        }
    )
    ok, reason, _, recheck = ready_of(body, [placement("p1", 2, 1)], timeout=60)
    assert (ok, reason) == (False, "ReplicasStarting")
    assert recheck == pytest.approx(55)


def test_a_ready_condition_that_is_true_does_not_restart_the_wait() -> None:
    body = lease(
        status={
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReplicasReady",
                    "lastTransitionTime": "2026-01-02T03:04:00Z",
                }
            ]
        }
    )
    assert ready_of(body, [placement("p1", 2, 1)], timeout=60)[1] != "ReplicasStarting"


def test_after_the_timeout_the_providers_reason_is_given() -> None:
    placements = [
        placement("zeta", 1, 0, agent=("ImagePullBackOff", "image nginx:nope not found")),
        placement("alpha", 1, 0, agent=("PodsUnschedulable", "1 pod(s) Pending: Too many pods")),
        placement("ok", 1, 1),
    ]
    ok, reason, message, recheck = ready_of(lease(replicas=3), placements, timeout=60)
    assert (ok, reason, recheck) == (False, "PodsUnschedulable", None)
    assert message == (
        "1/3 replicas ready after 245s; alpha: 1 pod(s) Pending: Too many pods; "
        "zeta: image nginx:nope not found"
    )


@pytest.mark.parametrize(
    ("lagging", "reason", "detail"),
    [
        (placement("p1", 2, None), "NotReported", "the provider has not reported the placement"),
        (placement("p1", 2, 0, message="pulling"), "ReplicasNotReady", "p1: pulling"),
        (placement("p1", 2, 0), "ReplicasNotReady", "p1: phase Pending"),
    ],
)
def test_reason_without_an_agent_condition(
    lagging: LeasePlacement, reason: str, detail: str
) -> None:
    ok, got, message, _ = ready_of(lease(), [lagging], timeout=60)
    assert (ok, got) == (False, reason)
    assert detail in message


# --- replicas on Unreachable providers -----------------------------------------------------

UNREACHABLE = {"p1": "no heartbeat for 21s (timeout 20s)"}
RAN = {"startedAt": "2026-01-01T00:00:00Z"}


def test_replicas_on_an_unreachable_provider_are_not_counted_ready() -> None:
    placements = [placement("p1", 2, 2), placement("p2", 1, 1)]
    status = lease_status(
        lease(replicas=3, status=RAN),
        placements,
        (),
        decision=None,
        billing_account="acct",
        now=NOW,
        unreachable=UNREACHABLE,
    )
    assert (status.phase, status.ready, status.ready_replicas, status.replicas) == (
        "Degraded",
        "1/3",
        1,
        3,
    )
    assert [(s.provider, s.replicas, s.ready_replicas) for s in status.placements or ()] == [
        ("p1", 2, 0),
        ("p2", 1, 1),
    ]


def test_the_same_replicas_count_again_once_the_provider_is_reachable() -> None:
    placements = [placement("p1", 2, 2), placement("p2", 1, 1)]
    status = status_of(lease(replicas=3, status=RAN), placements)
    assert (status.phase, status.ready) == ("Running", "3/3")
    assert ready_of(lease(replicas=3), placements)[:2] == (True, "AllReplicasReady")


def test_readiness_names_the_unreachable_provider_at_once() -> None:
    # created a second ago: the readiness timeout has not passed, the heartbeat timeout has
    placements = [placement("p1", 2, 2, created="2026-01-02T03:04:04Z"), placement("p2", 1, 1)]
    result = readiness(lease(replicas=3), placements, now=NOW, timeout=300, unreachable=UNREACHABLE)
    assert (result.gate.ok, result.gate.reason, result.recheck_after) == (
        False,
        PROVIDER_UNREACHABLE,
        None,
    )
    assert result.gate.message == (
        "1/3 replicas ready; not counted: 2 replica(s) on p1 (provider p1 is Unreachable:"
        " no heartbeat for 21s (timeout 20s))"
    )


def test_readiness_says_when_no_other_provider_fits() -> None:
    result = readiness(
        lease(),
        [placement("p1", 2, 2)],
        now=NOW,
        timeout=300,
        unreachable=UNREACHABLE,
        nothing_fits="0/3 providers feasible: p2: not enough cpu",
    )
    assert result.gate.reason == PROVIDER_UNREACHABLE
    assert result.gate.message.endswith(
        "; no other provider fits: 0/3 providers feasible: p2: not enough cpu"
    )
    assert result.gate.message.startswith("0/2 replicas ready; not counted: 2 replica(s) on p1")


def test_an_unreachable_provider_without_replicas_of_the_lease_changes_nothing() -> None:
    result = readiness(
        lease(), [placement("p2", 2, 2)], now=NOW, timeout=300, unreachable=UNREACHABLE
    )
    assert (result.gate.ok, result.gate.reason) == (True, "AllReplicasReady")


def test_a_job_that_completed_on_an_unreachable_provider_stays_complete() -> None:
    body = placement("p1", 2, 0).to_api()
    body["spec"]["job"] = {"completions": 2, "backoffLimit": 1}
    body["status"]["phase"] = "Succeeded"
    done = LeasePlacement.model_validate(body)
    assert placement_summary(done, reachable=False).ready_replicas == 2
    running = placement("p1", 2, 2)
    assert placement_summary(running, reachable=False).ready_replicas == 0


# --- status_changed ----------------------------------------------------------------------


def test_recomputed_status_later_is_unchanged() -> None:
    gates = (Gate("Scheduled", True, "Placed", "placed"),)
    first = status_of(lease(), [placement("p1", 2, 1)], gates)
    again = status_of(lease(status=first), [placement("p1", 2, 1)], gates, now=LATER)
    assert not status_changed(first, again)


def test_condition_timestamps_alone_are_not_a_change() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)], (Gate("Scheduled", True, "P", "m"),))
    current = desired.model_copy(
        update={
            "conditions": [
                c.model_copy(update={"last_transition_time": datetime(2020, 1, 1, tzinfo=UTC)})
                for c in desired.conditions or ()
            ]
        }
    )
    assert current != desired
    assert not status_changed(current, desired)


def test_decision_time_alone_is_not_a_change() -> None:
    current = status_of(lease(), [], decision=SchedulingDecision(considered=2, decided_at=NOW))
    desired = status_of(lease(), [], decision=SchedulingDecision(considered=2, decided_at=LATER))
    assert not status_changed(current, desired)
    other = status_of(lease(), [], decision=SchedulingDecision(considered=3, decided_at=NOW))
    assert status_changed(current, other)


def test_unknown_status_fields_are_not_a_change() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    served = ComputeLeaseStatus.model_validate({**desired.to_api(), "futureField": {"cpu": "1"}})
    assert not status_changed(served, desired)


@pytest.mark.parametrize(
    "change",
    [
        {"phase": "Running"},
        {"ready_replicas": 2},
        {"providers": "p2"},
        {"billing_account": "other"},
        {"placements": []},
    ],
)
def test_any_other_difference_is_a_change(change: dict[str, Any]) -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    assert status_changed(desired, desired.model_copy(update=change))


def test_a_condition_reason_is_a_change() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)], (Gate("Scheduled", True, "P", "m"),))
    current = desired.model_copy(
        update={
            "conditions": [
                c.model_copy(update={"reason": "Other"}) for c in desired.conditions or ()
            ]
        }
    )
    assert status_changed(current, desired)


def test_no_current_status_is_a_change() -> None:
    assert status_changed(None, status_of(lease(), []))
