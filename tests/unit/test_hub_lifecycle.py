"""Unit tests of a lease's whole life (``kommons.hub.lifecycle`` and its hooks in the plan).

Behaviour matrix (situation -> outcome):

- term: no duration -> no expiresAt; started -> startedAt + duration; not started and placed
  -> provisional now + duration, kept until it starts; nothing placed -> none.
- re-check: the readiness timeout or the end of the term, whichever is first.
- the term passes -> first the record (phase Expired, a history entry Expired, an Event,
  nothing deleted yet), then, once written, every placement deleted with a Completed ending,
  the lease kept (finalizer kept); next steps stay Expired and place nothing, with no new
  history entry. A Job's end likewise: the record first, then the deletions.
- before the term ends -> placements carry expiresAt; the plan re-checks at expiresAt.
- Job shares: completions split in proportion to replicas, each share >= its replicas.
- Job lease: every placement Succeeded -> Succeeded (Completed endings, counts kept); one
  placement Failed with BackoffLimitExceeded -> Failed with that reason, its ending Failed,
  the others Completed; an InvalidPlacement failure is not the Job's; still running -> runs on.
- phases of a running lease (table): Running, Degraded after having run, Failed when no
  replica is ready for a tenant reason past the timeout (placements kept), Scheduled for a
  provider-side reason.
- suspend: suspended placements hold no capacity in the market view.
- resume: the old provider still has room (counting what its report still reserves for the
  placement) -> the placement goes back (suspend false, locked price kept), its capacity held
  by the plan's decision, Event Resumed; no room any more ->
  re-placed on another provider (old one deleted with a Completed ending); no room anywhere
  -> the old one stays suspended and the lease says why.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kommons.api import ComputeLease, JobSpec, LeasePlacement
from kommons.hub import lifecycle
from kommons.hub.lease_status import TENANT_REASONS, lease_phase
from kommons.hub.market_view import MarketView
from kommons.hub.plan import LeasePlan
from kommons.scheduler import placement_key
from tests.unit.test_hub_plan import NOW, lease_body, market, placed, provider_body, step


def lease_with(status: dict[str, Any] | None = None, **spec: Any) -> ComputeLease:
    body = lease_body(**spec)
    if status is not None:
        body["status"] = status
    return ComputeLease.model_validate(body)


def with_status(placement: LeasePlacement, **status: Any) -> LeasePlacement:
    body = placement.to_api()
    body["status"] = status
    return LeasePlacement.model_validate(body)


def ready_condition(reason: str, message: str = "", ok: bool = False) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-01T11:00:00Z",
    }


def written(lease: ComputeLease, plan: LeasePlan) -> ComputeLease:
    """The lease after the executor wrote the plan's status."""
    assert plan.status is not None
    body = lease.to_api()
    body["status"] = plan.status.to_api()
    return ComputeLease.model_validate(body)


def first_step(lease: ComputeLease, view: MarketView, *, ready: int = 2) -> list[LeasePlacement]:
    plan = step(lease, view)
    assert plan.create, plan.status
    return placed(plan, ready=ready)


# --- the term ----------------------------------------------------------------------------


STARTED = "2026-12-01T10:00:00Z"


@pytest.mark.parametrize(
    ("spec", "status", "placed_now", "expected"),
    [
        ({}, {"startedAt": STARTED}, True, None),
        ({"duration": "2h"}, {"startedAt": STARTED}, True, NOW),
        ({"duration": "30m"}, None, True, NOW + timedelta(minutes=30)),
        ({"duration": "30m"}, None, False, None),
        (
            {"duration": "30m"},
            {"expiresAt": "2026-12-01T12:10:00Z"},
            True,
            NOW + timedelta(minutes=10),
        ),
        (
            {"duration": "30m"},
            {"expiresAt": "2026-12-01T12:10:00Z", "startedAt": STARTED},
            True,
            NOW - timedelta(minutes=90),
        ),
    ],
)
def test_expires_at_rules(
    spec: dict[str, Any], status: dict[str, Any] | None, placed_now: bool, expected: Any
) -> None:
    lease = lease_with(status, **spec)
    assert lifecycle.expires_at(lease, placed=placed_now, now=NOW) == expected


@pytest.mark.parametrize(
    ("ready_after", "expires_in", "expected"),
    [
        (None, None, None),
        (10.0, None, 10.0),
        (None, 30.0, 30.0),
        (50.0, 30.0, 30.0),
        (5.0, -9, 0.0),
    ],
)
def test_recheck_is_the_first_deadline(
    ready_after: float | None, expires_in: float | None, expected: float | None
) -> None:
    expires = None if expires_in is None else NOW + timedelta(seconds=expires_in)
    assert lifecycle.recheck(ready_after, expires, now=NOW) == expected


def test_placements_carry_the_term_and_the_plan_rechecks_at_its_end() -> None:
    view = market(provider_body("p1"))
    lease = lease_with(None, duration="20s")
    plan = step(lease, view)
    assert plan.create[0].spec.expires_at == NOW + timedelta(seconds=20)
    assert plan.status is not None
    assert plan.status.expires_at == NOW + timedelta(seconds=20)
    assert plan.recheck_after is not None
    assert plan.recheck_after <= 20


def expired_lease_and_placements(view: MarketView) -> tuple[ComputeLease, list[LeasePlacement]]:
    """A lease started at NOW - 10s with a 30s term, and its placements (it ends at NOW + 20s)."""
    lease = lease_with({"phase": "Running", "startedAt": "2026-12-01T11:59:50Z"}, duration="30s")
    placements = first_step(lease, view)
    return lease, placements


def test_term_end_deletes_every_placement_and_keeps_the_lease_expired() -> None:
    view = market(provider_body("p1", cpu="1"), provider_body("p2", cpu="1"))
    lease, placements = expired_lease_and_placements(view)
    assert len(placements) == 2
    later = NOW + timedelta(seconds=21)
    plan = step(lease, view, placements=placements, now=later)
    # first the record: phase, history, Event; nothing deleted yet
    assert plan.delete == []
    assert not plan.create
    assert plan.decision is None
    assert plan.recheck_after is not None
    assert plan.status is not None
    assert plan.status.phase == "Expired"
    assert plan.status.placements == []
    assert [(h.type, h.reason, h.replicas) for h in plan.status.history or []] == [
        ("Expired", "TermEnded", 2)
    ]
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "Expired")]
    # then, once it is written, the placements go
    cleanup = step(written(lease, plan), view, placements=placements, now=later)
    assert cleanup.delete == placements
    endings = [(e.provider, e.kind) for e in cleanup.endings]
    assert endings == [("p1", "Completed"), ("p2", "Completed")]
    assert not cleanup.remove_finalizer
    assert cleanup.status is None
    assert cleanup.events == []


def test_an_expired_lease_stays_expired_and_places_nothing() -> None:
    view = market(provider_body("p1"))
    lease, placements = expired_lease_and_placements(view)
    plan = step(lease, view, placements=placements, now=NOW + timedelta(seconds=21))
    expired = written(lease, plan)
    later = step(expired, MarketView(heartbeat_timeout=30), now=NOW + timedelta(hours=1))
    assert later.create == []
    assert later.decision is None
    assert later.events == []
    assert later.status is None  # unchanged: still Expired, one history entry


# --- Job-style leases --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completions", "replicas", "expected"),
    [
        (10, {"a": 2}, {"a": 10}),
        (10, {"a": 2, "b": 2}, {"a": 5, "b": 5}),
        (7, {"a": 2, "b": 1}, {"a": 5, "b": 2}),
        (3, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}),
        (5, {"a": 0, "b": 3}, {"b": 5}),
    ],
)
def test_job_shares_split_completions_by_replicas(
    completions: int, replicas: dict[str, int], expected: dict[str, int]
) -> None:
    shares = lifecycle.job_shares(JobSpec(completions=completions, backoff_limit=2), replicas)
    assert {p: s.completions for p, s in shares.items()} == expected
    assert sum(s.completions for s in shares.values()) == completions
    assert all(s.completions >= replicas[p] and s.backoff_limit == 2 for p, s in shares.items())


def job_lease_and_placements(view: MarketView) -> tuple[ComputeLease, list[LeasePlacement]]:
    lease = lease_with(None, job={"completions": 4, "backoffLimit": 1})
    plan = step(lease, view)
    assert [p.spec.job for p in plan.create] == [
        JobSpec(completions=2, backoff_limit=1),
        JobSpec(completions=2, backoff_limit=1),
    ]
    return lease, placed(plan)


def test_job_lease_succeeds_when_every_placement_completed() -> None:
    view = market(provider_body("p1", cpu="1"), provider_body("p2", cpu="1"))
    lease, placements = job_lease_and_placements(view)
    done = [
        with_status(p, phase="Succeeded", succeeded=2, failed=1, readyReplicas=0)
        for p in placements
    ]
    running = [done[0], with_status(placements[1], phase="Running", succeeded=1, readyReplicas=1)]
    assert step(lease, view, placements=running).delete == []
    plan = step(lease, view, placements=done)
    assert plan.delete == []
    cleanup = step(written(lease, plan), view, placements=done)
    assert cleanup.delete == done
    assert {e.kind for e in cleanup.endings} == {"Completed"}
    assert plan.status is not None
    assert (plan.status.phase, plan.status.succeeded, plan.status.failed) == ("Succeeded", 4, 2)
    assert [h.type for h in plan.status.history or []] == ["Succeeded"]


def test_job_lease_fails_with_the_providers_reason() -> None:
    view = market(provider_body("p1", cpu="1"), provider_body("p2", cpu="1"))
    lease, placements = job_lease_and_placements(view)
    failed = with_status(
        placements[1],
        phase="Failed",
        failed=2,
        conditions=[ready_condition("BackoffLimitExceeded", "the Job failed: backoff limit")],
    )
    plan = step(lease, view, placements=[placements[0], failed])
    cleanup = step(written(lease, plan), view, placements=[placements[0], failed])
    endings = [(e.provider, e.kind) for e in cleanup.endings]
    # a Job over its backoffLimit does not count against its provider (the tenant's code may fail)
    assert endings == [("p1", "Completed"), ("p2", "Completed")]
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    ready = next(c for c in plan.status.conditions or [] if c.type == "Ready")
    assert ready.reason == "BackoffLimitExceeded"
    assert "p2" in ready.message
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "Failed")]


def test_an_unreadable_placement_is_not_a_failed_job() -> None:
    view = market(provider_body("p1", cpu="1"), provider_body("p2", cpu="1"))
    lease, placements = job_lease_and_placements(view)
    invalid = with_status(
        placements[0], phase="Failed", conditions=[ready_condition("InvalidPlacement")]
    )
    assert lifecycle.lease_end(lease, [invalid, placements[1]], now=NOW) is None


# --- phases of a lease that runs on ------------------------------------------------------


@pytest.mark.parametrize(
    ("ready", "started", "reason", "phase"),
    [
        (2, False, "AllReplicasReady", "Running"),
        (1, True, "ReplicasStarting", "Degraded"),
        (1, True, "CrashLoopBackOff", "Degraded"),
        (0, True, "ContainersNotReady", "Degraded"),
        (0, False, "ErrImagePull", "Failed"),
        (0, True, "CrashLoopBackOff", "Failed"),
        (0, False, "PodsUnschedulable", "Scheduled"),
        (1, False, "ReplicasStarting", "Scheduled"),
    ],
)
def test_phase_rules_of_a_running_lease(ready: int, started: bool, reason: str, phase: str) -> None:
    got = lease_phase(
        deleting=False,
        placed=2,
        suspended=False,
        ready=ready,
        wanted=2,
        started=started,
        ready_reason=reason,
    )
    assert got == phase


def test_tenant_reasons_are_the_five_of_the_contract() -> None:
    assert (
        frozenset(
            {
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
                "CrashLoopBackOff",
                "CreateContainerConfigError",
            }
        )
        == TENANT_REASONS
    )


def test_bad_image_past_the_timeout_fails_the_lease_but_keeps_its_placements() -> None:
    view = market(provider_body("p1"))
    lease = lease_with(None)
    placements = [
        with_status(
            p,
            phase="Pending",
            readyReplicas=0,
            conditions=[ready_condition("ErrImagePull", "2 pod(s) ErrImagePull: container app")],
        )
        for p in first_step(lease, view, ready=0)
    ]
    plan = step(lease, view, placements=placements, now=NOW + timedelta(minutes=5), timeout=60)
    assert plan.delete == []
    assert plan.endings == []
    assert plan.status is not None
    assert plan.status.phase == "Failed"
    ready = next(c for c in plan.status.conditions or [] if c.type == "Ready")
    assert ready.reason == "ErrImagePull"
    assert "workload-" not in ready.message  # reasons, never pod names


# --- suspend and resume ------------------------------------------------------------------


def cpu_left(view: MarketView, provider: str) -> int:
    got = view.market.get(provider)
    assert got is not None
    held = sum(
        h.resources.cpu_milli
        for h in [view.market.get_hold(placement_key("team-a/web", provider), provider)]
        if h is not None
    )
    return got.available.cpu_milli - held


def suspended_placement(view: MarketView) -> tuple[ComputeLease, LeasePlacement]:
    lease = lease_with(None, replicas=2)
    (placement,) = first_step(lease, view)
    body = placement.to_api()
    body["spec"]["suspend"] = True
    return lease, LeasePlacement.model_validate(body)


def test_a_suspended_placement_holds_no_capacity() -> None:
    view = market(provider_body("p1", cpu="4"))
    _, suspended = suspended_placement(view)
    running = suspended.to_api()
    running["spec"]["suspend"] = False
    view.set_placement(LeasePlacement.model_validate(running))
    assert cpu_left(view, "p1") == 2000
    view.set_placement(suspended)
    assert cpu_left(view, "p1") == 4000


def resume(view: MarketView, placement: LeasePlacement) -> LeasePlan:
    return step(lease_with(None, replicas=2), view, placements=[placement])


def test_resume_goes_back_where_it_still_fits() -> None:
    view = market(provider_body("p1", cpu="4"))
    _, suspended = suspended_placement(view)
    view.set_provider(provider_body("p2", cpu="4", cpu_price="0.01"))
    view.heartbeat("p2", "t1")
    plan = resume(view, suspended)
    assert plan.create == []
    assert plan.delete == []
    assert [(p.spec.provider, p.spec.suspend, p.spec.price_per_hour) for p in plan.update] == [
        ("p1", False, suspended.spec.price_per_hour)  # locked price kept, cheaper p2 ignored
    ]
    assert plan.decision is not None
    assert [(c.provider, c.replicas) for c in plan.decision.chosen] == [("p1", 2)]
    assert ("Normal", "Resumed") in [(e.type, e.reason) for e in plan.events]


def test_resume_counts_the_room_the_providers_report_still_reserves_for_it() -> None:
    view = market(provider_body("p1", cpu="4"), provider_body("p2", cpu="4"))
    _, suspended = suspended_placement(view)
    report = provider_body("p1", cpu="1")  # quota not shrunk yet: its 2 cpu still counted
    report["status"]["accountedLeases"] = ["team-a/web=2"]
    view.set_provider(report)
    plan = resume(view, suspended)
    assert plan.create == []
    assert [(p.spec.provider, p.spec.suspend) for p in plan.update] == [("p1", False)]
    assert ("Normal", "Resumed") in [(e.type, e.reason) for e in plan.events]


def test_resume_re_places_when_the_old_provider_is_full() -> None:
    view = market(provider_body("p1", cpu="4"), provider_body("p2", cpu="4"))
    _, suspended = suspended_placement(view)
    view.set_provider(provider_body("p1", cpu="500m"))  # another lease took the room meanwhile
    plan = resume(view, suspended)
    assert [(p.spec.provider, p.spec.suspend, p.spec.replicas) for p in plan.create] == [
        ("p2", False, 2)
    ]
    assert plan.delete == [suspended]
    assert [(e.provider, e.kind) for e in plan.endings] == [("p1", "Completed")]
    assert any(e.reason == "Replaced" and "no longer has room" in e.message for e in plan.events)


def test_resume_with_no_room_anywhere_keeps_it_suspended() -> None:
    view = market(provider_body("p1", cpu="4"))
    _, suspended = suspended_placement(view)
    view.set_provider(provider_body("p1", cpu="1"))
    plan = resume(view, suspended)
    assert plan.create == []
    assert plan.delete == []
    assert all(p.spec.suspend for p in plan.update)
    assert plan.status is not None
    scheduled = next(c for c in plan.status.conditions or [] if c.type == "Scheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "ReplacementPending")
