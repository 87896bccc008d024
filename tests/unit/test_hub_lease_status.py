"""Unit tests of a lease's status (``kommons.hub.lease_status``).

Behaviour matrix:

- phase, in order: deleting → Terminating; nothing placed → Pending; suspended → Suspended;
  every replica ready → Running; fewer ready after having run → Degraded (even none);
  otherwise Scheduled (placed but never all ready yet).
- ``startedAt``: set the first time every replica is ready, then kept (even when degraded).
- summaries: one per placement, sorted by provider; ``providers`` column is the sorted set;
  ``readyReplicas`` and ``ready`` ("r/n") add up the placements; namespace only when reported.
- conditions: the hub's gates are set, others kept; a ``Ready`` condition is always added
  (NotPlaced / ReplicasNotReady / AllReplicasReady); ``lastTransitionTime`` moves only when
  the status flips; observed generation recorded.
- decision: a new one replaces, ``None`` keeps the current one; billing account recorded.
- ``status_changed``: ignores condition timestamps and keys the desired status does not
  carry; sees any other difference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.hub.lease_status import Gate, lease_status, placement_summary, status_changed

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def lease(
    *,
    replicas: int = 2,
    suspend: bool = False,
    deleting: bool = False,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "team-a", "name": "web", "generation": 3}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:00:00Z"
    body: dict[str, Any] = {
        "metadata": meta,
        "spec": {"replicas": replicas, "suspend": suspend},
    }
    if status is not None:
        body["status"] = status
    return body


def placement(
    provider: str, replicas: int, ready: int = 0, namespace: str | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"readyReplicas": ready}
    if namespace:
        status["namespace"] = namespace
    return {
        "metadata": {"name": f"web-{provider}", "creationTimestamp": "2026-01-02T03:00:00Z"},
        "spec": {"provider": provider, "replicas": replicas, "pricePerHour": "0.5"},
        "status": status,
    }


def status_of(
    body: dict[str, Any],
    placements: list[dict[str, Any]],
    gates: tuple[Gate, ...] = (),
    *,
    decision: dict[str, Any] | None = None,
    now: datetime = NOW,
) -> dict[str, Any]:
    return lease_status(body, placements, gates, decision=decision, billing_account="acct", now=now)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


# --- phase -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "placements", "started", "phase"),
    [
        ({"deleting": True}, [placement("p1", 2, 2)], True, "Terminating"),
        ({"deleting": True}, [], False, "Terminating"),
        ({}, [], False, "Pending"),
        ({}, [], True, "Pending"),
        ({"suspend": True}, [], False, "Pending"),
        ({"suspend": True}, [placement("p1", 2, 2)], False, "Suspended"),
        ({}, [placement("p1", 1, 1), placement("p2", 1, 1)], False, "Running"),
        ({}, [placement("p1", 2, 1)], False, "Scheduled"),
        ({}, [placement("p1", 2, 0)], False, "Scheduled"),
        ({}, [placement("p1", 2, 1)], True, "Degraded"),
        ({}, [placement("p1", 2, 0)], True, "Degraded"),  # every replica lost after running
        ({}, [placement("p1", 1, 1)], False, "Scheduled"),  # half placed, half ready
    ],
)
def test_phase_rules(
    kwargs: dict[str, Any], placements: list[dict[str, Any]], started: bool, phase: str
) -> None:
    current = {"startedAt": "2026-01-01T00:00:00Z"} if started else None
    assert status_of(lease(**kwargs, status=current), placements)["phase"] == phase


def test_started_at_is_set_once_every_replica_is_ready_and_then_kept() -> None:
    first = status_of(lease(), [placement("p1", 2, 2)])
    assert first["startedAt"] == "2026-01-02T03:04:05Z"
    later = status_of(lease(status=first), [placement("p1", 2, 1)], now=LATER)
    assert later["startedAt"] == "2026-01-02T03:04:05Z"
    assert later["phase"] == "Degraded"


def test_started_at_is_not_set_before_every_replica_is_ready() -> None:
    assert "startedAt" not in status_of(lease(), [placement("p1", 2, 1)])
    assert "startedAt" not in status_of(lease(), [])


# --- summaries ---------------------------------------------------------------------------


def test_placements_are_summarised_sorted_by_provider() -> None:
    status = status_of(
        lease(replicas=3),
        [placement("zeta", 1, 1, namespace="kommons-web-zeta"), placement("alpha", 2, 1)],
    )
    assert [p["provider"] for p in status["placements"]] == ["alpha", "zeta"]
    assert status["providers"] == "alpha,zeta"
    assert status["replicas"] == 3
    assert status["readyReplicas"] == 2
    assert status["ready"] == "2/3"
    assert status["billingAccount"] == "acct"
    assert status["observedGeneration"] == 3
    alpha, zeta = status["placements"]
    assert "namespace" not in alpha
    assert zeta["namespace"] == "kommons-web-zeta"


def test_placement_summary_fields() -> None:
    assert placement_summary(placement("p1", 2, 1, namespace="ns")) == {
        "provider": "p1",
        "replicas": 2,
        "readyReplicas": 1,
        "pricePerHour": "0.5",
        "placedAt": "2026-01-02T03:00:00Z",
        "placementName": "web-p1",
        "namespace": "ns",
    }


def test_placement_summary_without_status_has_no_ready_replicas() -> None:
    body = placement("p1", 2)
    del body["status"]
    assert placement_summary(body)["readyReplicas"] == 0


# --- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placements", "ok", "reason"),
    [
        ([], "False", "NotPlaced"),
        ([placement("p1", 2, 1)], "False", "ReplicasNotReady"),
        ([placement("p1", 2, 2)], "True", "AllReplicasReady"),
    ],
)
def test_ready_condition(placements: list[dict[str, Any]], ok: str, reason: str) -> None:
    ready = condition(status_of(lease(), placements), "Ready")
    assert ready["status"] == ok
    assert ready["reason"] == reason
    assert ready["observedGeneration"] == 3


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
    assert {c["type"] for c in status["conditions"]} == {"Settled", "PaymentOK", "Ready"}
    payment = condition(status, "PaymentOK")
    assert (payment["status"], payment["reason"]) == ("False", "LowEscrow")
    assert payment["message"] == "escrow below one hour"
    assert condition(status, "Settled")["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_transition_time_moves_only_when_the_status_flips() -> None:
    gate_ok = (Gate("Scheduled", True, "Placed", "placed on p1"),)
    first = status_of(lease(), [placement("p1", 2, 1)], gate_ok)
    same = status_of(lease(status=first), [placement("p1", 2, 1)], gate_ok, now=LATER)
    assert (
        condition(same, "Scheduled")["lastTransitionTime"]
        == (condition(first, "Scheduled")["lastTransitionTime"])
    )
    assert condition(same, "Ready") == condition(first, "Ready")
    flipped = status_of(lease(status=first), [placement("p1", 2, 2)], gate_ok, now=LATER)
    assert (
        condition(flipped, "Ready")["lastTransitionTime"]
        != (condition(first, "Ready")["lastTransitionTime"])
    )


# --- decision ----------------------------------------------------------------------------


def test_new_decision_replaces_and_none_keeps_the_current_one() -> None:
    old = {"message": "old"}
    new = {"message": "new"}
    assert status_of(lease(status={"decision": old}), [], decision=new)["decision"] == new
    assert status_of(lease(status={"decision": old}), [])["decision"] == old
    assert "decision" not in status_of(lease(), [])


# --- status_changed ----------------------------------------------------------------------


def test_recomputed_status_later_is_unchanged() -> None:
    first = status_of(lease(), [placement("p1", 2, 1)])
    again = status_of(lease(status=first), [placement("p1", 2, 1)], now=LATER)
    assert not status_changed(first, again)


def test_condition_timestamps_alone_are_not_a_change() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    current = {
        **desired,
        "conditions": [
            {**c, "lastTransitionTime": "2020-01-01T00:00:00Z"} for c in desired["conditions"]
        ],
    }
    assert not status_changed(current, desired)


def test_keys_the_desired_status_does_not_carry_are_ignored() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    assert not status_changed({**desired, "usage": {"cpu": "1"}}, desired)


@pytest.mark.parametrize(
    "change",
    [
        {"phase": "Running"},
        {"readyReplicas": 2},
        {"providers": "p2"},
        {"billingAccount": "other"},
    ],
)
def test_any_other_difference_is_a_change(change: dict[str, Any]) -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    assert status_changed(desired, {**desired, **change})


def test_a_condition_reason_is_a_change() -> None:
    desired = status_of(lease(), [placement("p1", 2, 1)])
    current = {
        **desired,
        "conditions": [{**c, "reason": "Other"} for c in desired["conditions"]],
    }
    assert status_changed(current, desired)


def test_no_current_status_is_a_change() -> None:
    assert status_changed(None, status_of(lease(), []))
