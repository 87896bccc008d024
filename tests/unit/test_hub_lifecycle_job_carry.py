"""Unit tests of a Job lease's progress carried across providers (``kommons.hub.lifecycle``).

Behaviour matrix (situation -> plan):

- a Job placement with progress fails over (provider Unreachable) -> first step: only the
  status, recording its capped count in ``status.carrying`` (nothing created or deleted);
  next step: the replacement runs only its share minus the count, the old placement is
  deleted, history entry ``FailedOver`` with ``completions``, Event ``CompletionsCarried``.
- a hub restart in the middle: after the delete but before the status write (the placement
  is deleting or gone) -> the record is folded into ``carriedCompletions`` once, nothing new
  is placed; before the delete (replacement written, old one still live) -> the old one is
  deleted as surplus, the count still carried once; the lease ends ``Succeeded`` when the
  carried plus the new counts reach ``completions``.
- a provider claiming more than its share -> carried and counted at most its share; nothing
  left to run -> the placement goes without a replacement, with fewer replicas.
- resume onto another provider with fewer completions left than replicas -> the new
  placement gets as many replicas as completions left.
- a provider that comes back before its replacement exists -> its record is dropped, its own
  report counts again.
- no progress yet -> moved at once, nothing recorded.
- shares: the completions left split over the new placements only, each share >= replicas;
  a placement that stays keeps its share and never gets more replicas (they go elsewhere).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kommons.api import CarriedCompletions, ComputeLease, JobSpec, LeasePlacement
from kommons.hub import lifecycle
from kommons.hub.market_view import MarketView
from kommons.hub.plan import LeasePlan
from tests.unit.test_hub_failover import fo_step
from tests.unit.test_hub_lifecycle import lease_with, written
from tests.unit.test_hub_plan import NOW, market, placed, provider_body, step

UNREACHABLE = {"p1": "no heartbeat for 25s (timeout 20s)"}


def job_status(phase: str, succeeded: int, ready: int = 1) -> dict[str, Any]:
    return {"phase": phase, "succeeded": succeeded, "readyReplicas": ready}


def reporting(placement: LeasePlacement, phase: str, succeeded: int) -> LeasePlacement:
    body = placement.to_api()
    body["status"] = job_status(phase, succeeded, ready=0 if phase == "Succeeded" else 1)
    return LeasePlacement.model_validate(body)


def deleting(placement: LeasePlacement) -> LeasePlacement:
    body = placement.to_api()
    body["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    return LeasePlacement.model_validate(body)


def served(plan: LeasePlan, uid: str) -> LeasePlacement:
    """The plan's only new placement as the API server would serve it back."""
    (placement,) = placed(plan)
    body = placement.to_api()
    body["metadata"]["uid"] = uid
    return LeasePlacement.model_validate(body)


def two_providers_job() -> tuple[MarketView, ComputeLease, list[LeasePlacement]]:
    """10 completions, 2 replicas: one on p1 and one on p2 (5 each); p3 is free and dearer."""
    view = market(
        provider_body("p1", cpu="1"),
        provider_body("p2", cpu="1"),
        provider_body("p3", cpu="1", cpu_price="0.05"),
    )
    lease = lease_with(None, job={"completions": 10, "backoffLimit": 1})
    plan = step(lease, view)
    assert [(p.spec.provider, p.spec.job) for p in plan.create] == [
        ("p1", JobSpec(completions=5, backoff_limit=1)),
        ("p2", JobSpec(completions=5, backoff_limit=1)),
    ]
    return view, written(lease, plan), placed(plan)


def events(plan: LeasePlan, reason: str) -> list[str]:
    return [e.message for e in plan.events if e.reason == reason]


# --- failover -----------------------------------------------------------------------------


def failed_over() -> tuple[MarketView, ComputeLease, LeasePlan, LeasePlan, list[LeasePlacement]]:
    """p1 (3 of 5 done) becomes Unreachable: the record step, then the move."""
    view, lease, (p1, p2) = two_providers_job()
    running = [reporting(p1, "Running", 3), reporting(p2, "Running", 2)]
    record = fo_step(lease, view, running, unreachable=UNREACHABLE)
    move = fo_step(written(lease, record), view, running, unreachable=UNREACHABLE)
    return view, lease, record, move, running


def test_failover_records_the_progress_first_and_moves_nothing_yet() -> None:
    _, _, record, _, _ = failed_over()
    assert (record.create, record.update, record.delete) == ([], [], [])
    assert record.status is not None
    assert record.status.carrying == [
        CarriedCompletions(placement_uid="p-0", provider="p1", completions=3)
    ]
    assert record.status.succeeded == 5  # p1 by its record, p2 by its report
    assert record.recheck_after is not None
    assert record.recheck_after <= 1.0


def test_failover_gives_the_replacement_only_the_completions_left() -> None:
    _, _, _, move, running = failed_over()
    assert [(p.spec.provider, p.spec.replicas, p.spec.job) for p in move.create] == [
        ("p3", 1, JobSpec(completions=2, backoff_limit=1))
    ]
    assert move.delete == [running[0]]
    assert move.status is not None
    assert move.status.succeeded == 5
    last = (move.status.history or [])[-1]
    assert (last.type, last.provider, last.to, last.completions) == ("FailedOver", "p1", ["p3"], 3)
    (carried,) = events(move, "CompletionsCarried")
    assert "3 completion(s) done on p1" in carried
    assert "p3 runs 2" in carried


def test_a_restart_after_the_delete_folds_the_count_once() -> None:
    view, lease, record, move, (p1, p2) = failed_over()
    p3 = reporting(served(move, "p-3"), "Running", 1)
    for status_seen in (record, move):  # the status write of the move may be lost or not
        again = fo_step(
            written(lease, status_seen), view, [deleting(p1), p2, p3], unreachable=UNREACHABLE
        )
        assert (again.create, again.delete) == ([], [])
        assert again.status is not None
        assert (again.status.carried_completions, again.status.carrying) == (3, None)
        assert again.status.succeeded == 3 + 2 + 1
        gone = fo_step(written(lease, status_seen), view, [p2, p3])  # p1 gone altogether
        assert gone.status is not None
        assert (gone.status.carried_completions, gone.status.succeeded) == (3, 6)


def test_a_restart_before_the_delete_removes_the_old_placement_without_a_second_carry() -> None:
    view, lease, record, move, (p1, p2) = failed_over()
    p3 = reporting(served(move, "p-3"), "Running", 0)
    again = fo_step(written(lease, record), view, [p1, p2, p3], unreachable=UNREACHABLE)
    assert again.create == []
    assert again.delete == [p1]
    assert again.status is not None
    assert again.status.succeeded == 3 + 2 + 0


def test_the_lease_succeeds_once_the_carried_and_the_new_counts_reach_completions() -> None:
    view, lease, _, move, (_, p2) = failed_over()
    after_move = written(lease, move)
    p3 = served(move, "p-3")
    done = [reporting(p2, "Succeeded", 5), reporting(p3, "Succeeded", 2)]
    folded = fo_step(after_move, view, done)
    assert folded.status is not None
    assert folded.status.phase == "Succeeded"
    assert (folded.status.succeeded, folded.status.carried_completions) == (10, 3)
    assert "3 carried from earlier placements" in folded.events[-1].message
    short = [reporting(p2, "Succeeded", 5), reporting(p3, "Running", 1)]
    assert lifecycle.lease_end(after_move, short, now=NOW) is None


# --- caps, fewer completions left than replicas ------------------------------------------


def test_a_provider_is_believed_at_most_its_share() -> None:
    view, lease, (p1, p2) = two_providers_job()
    claims = [reporting(p1, "Running", 99), reporting(p2, "Running", 1)]
    record = fo_step(lease, view, claims, unreachable=UNREACHABLE)
    assert record.status is not None
    assert [c.completions for c in record.status.carrying or []] == [5]
    assert record.status.succeeded == 5 + 1
    both = [reporting(p1, "Running", 99), reporting(p2, "Running", 99)]
    end = fo_step(lease, view, both)
    assert end.status is not None
    assert (end.status.phase, end.status.succeeded) == ("Succeeded", 10)


def test_nothing_left_for_a_leaving_placement_means_no_replacement() -> None:
    view, lease, (p1, p2) = two_providers_job()
    finished_part = [reporting(p1, "Running", 5), reporting(p2, "Running", 1)]
    record = fo_step(lease, view, finished_part, unreachable=UNREACHABLE)
    move = fo_step(written(lease, record), view, finished_part, unreachable=UNREACHABLE)
    assert move.create == []
    assert move.delete == [finished_part[0]]
    assert move.decision is None
    (carried,) = events(move, "CompletionsCarried")
    assert "no new placement is needed" in carried


def suspended_job(view: MarketView, *, completions: int, done: int) -> tuple[ComputeLease, Any]:
    lease = lease_with(None, replicas=2, job={"completions": completions})
    plan = step(lease, view)
    (placement,) = placed(plan)
    body = placement.to_api()
    body["spec"]["suspend"] = True
    body["status"] = job_status("Suspended", done, ready=0)
    return written(lease, plan), LeasePlacement.model_validate(body)


def test_resume_elsewhere_runs_only_what_is_left_with_no_more_replicas_than_that() -> None:
    view = market(provider_body("p1", cpu="4"), provider_body("p2", cpu="4", cpu_price="0.05"))
    lease, suspended = suspended_job(view, completions=5, done=4)
    view.set_provider(provider_body("p1", cpu="500m"))  # its room went to another lease
    record = step(lease, view, placements=[suspended])
    assert (record.create, record.delete) == ([], [])
    assert record.status is not None
    assert [c.completions for c in record.status.carrying or []] == [4]
    move = step(written(lease, record), view, placements=[suspended])
    assert [(p.spec.provider, p.spec.replicas, p.spec.job) for p in move.create] == [
        ("p2", 1, JobSpec(completions=1))
    ]
    assert move.delete == [suspended]
    assert any("4 completion(s) done on p1" in m for m in events(move, "CompletionsCarried"))


def test_a_job_with_fewer_completions_left_than_replicas_is_not_shown_short() -> None:
    view = market(provider_body("p1", cpu="4"), provider_body("p2", cpu="4", cpu_price="0.05"))
    lease, suspended = suspended_job(view, completions=5, done=4)  # 2 replicas, 1 left
    view.set_provider(provider_body("p1", cpu="500m"))
    record = step(lease, view, placements=[suspended])
    moving = written(lease, record)
    move = step(moving, view, placements=[suspended])
    replacement = reporting(served(move, "uid-p2"), "Running", 0)  # its one pod ready
    settled = step(written(moving, move), view, placements=[replacement])
    assert settled.status is not None
    assert settled.status.phase == "Running"  # 1 replica is all that 1 completion needs
    assert settled.status.ready == "1/1"
    assert settled.status.replicas == 2  # what the tenant asked stays visible
    ready = next(c for c in settled.status.conditions or [] if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "AllReplicasReady")


def test_a_job_short_of_capacity_is_still_shown_short() -> None:
    # 6 completions, 2 replicas; only p1 holds a part (1 replica, 3 completions): the other 3
    # completions are nobody's yet, so the lease still needs its 2 replicas
    _, _, (p1, _) = two_providers_job()
    six = lease_with(None, replicas=2, job={"completions": 6})
    body = p1.to_api()
    body["spec"]["job"] = {"completions": 3}
    part = LeasePlacement.model_validate(body)
    assert lifecycle.job_wanted(six, [part]) == 2
    # the same part with 3 completions carried: nothing is left for anyone else
    carried = lifecycle.JobCarry(folded=3)
    assert lifecycle.job_wanted(six, [part], carried) == 1
    # a lease that is not a Job needs its replicas
    assert lifecycle.job_wanted(lease_with(None, replicas=3), [part]) == 3


# --- records that no longer apply, nothing to carry ---------------------------------------


def test_a_provider_back_before_its_replacement_counts_by_its_own_report_again() -> None:
    view, lease, (p1, p2) = two_providers_job()
    status = lease.status.to_api() if lease.status else {}
    status["carrying"] = [{"placementUid": "p-0", "provider": "p1", "completions": 3}]
    recorded = lease_with(status, job={"completions": 10, "backoffLimit": 1})
    back = [reporting(p1, "Running", 4), reporting(p2, "Running", 2)]
    plan = fo_step(recorded, view, back)  # p1 reachable again: it stays
    assert (plan.create, plan.delete) == ([], [])
    assert plan.status is not None
    assert plan.status.carrying is None
    assert plan.status.succeeded == 4 + 2


def test_a_placement_without_progress_moves_at_once_and_records_nothing() -> None:
    view, lease, (p1, p2) = two_providers_job()
    fresh = [reporting(p1, "Running", 0), reporting(p2, "Running", 0)]
    plan = fo_step(lease, view, fresh, unreachable=UNREACHABLE, now=NOW + timedelta(seconds=5))
    assert [(p.spec.provider, p.spec.job) for p in plan.create] == [
        ("p3", JobSpec(completions=5, backoff_limit=1))
    ]
    assert plan.status is not None
    assert plan.status.carrying is None
    assert events(plan, "CompletionsCarried") == []


# --- the pure pieces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completions", "carried", "kept_shares", "kept_replicas", "replicas", "left", "wanted"),
    [
        (10, 0, [], 0, 2, 10, 2),  # first placement: everything
        (10, 3, [5], 1, 2, 2, 2),  # failover of one of two
        (5, 4, [], 0, 2, 1, 1),  # fewer left than replicas
        (10, 5, [5], 1, 2, 0, 1),  # nothing left: no new placement
        (10, 7, [5], 1, 2, 0, 1),  # over-assigned (a restart in between): never negative
    ],
)
def test_completions_left_and_replicas_needed(
    completions: int,
    carried: int,
    kept_shares: list[int],
    kept_replicas: int,
    replicas: int,
    left: int,
    wanted: int,
) -> None:
    _, _, (p1, _) = two_providers_job()
    kept = []
    for share in kept_shares:
        body = p1.to_api()
        body["spec"]["job"]["completions"] = share
        kept.append(LeasePlacement.model_validate(body))
    lease = lease_with(None, replicas=replicas, job={"completions": completions})
    assert lease.spec.job is not None
    got = lifecycle.job_left(lease.spec.job, lifecycle.JobCarry(folded=carried), kept)
    assert got == left
    assert lifecycle.job_replicas(lease, kept_replicas=kept_replicas, left=got) == wanted


def test_shares_of_what_is_left_cover_it_exactly() -> None:
    job = JobSpec(completions=10, backoff_limit=2)
    shares = lifecycle.job_shares(job, {"a": 2, "b": 1}, completions=7)
    assert {p: s.completions for p, s in shares.items()} == {"a": 5, "b": 2}
    assert lifecycle.job_shares(job, {"a": 1}, completions=0) == {}


def test_a_placement_that_stays_never_grows_its_running_job() -> None:
    view = market(
        provider_body("p1", cpu="1", cpu_price="0.01"),
        provider_body("p2", cpu="2"),  # room for one more, and cheaper than p3
        provider_body("p3", cpu="1", cpu_price="0.05"),
    )
    lease = lease_with(None, job={"completions": 10, "backoffLimit": 1})
    first = step(lease, view)
    assert sorted(p.spec.provider for p in first.create) == ["p1", "p2"]
    p1, p2 = placed(first)
    running = [reporting(p1, "Running", 0), reporting(p2, "Running", 1)]
    plan = fo_step(written(lease, first), view, running, unreachable=UNREACHABLE)
    assert [(p.spec.provider, p.spec.job) for p in plan.create] == [
        ("p3", JobSpec(completions=5, backoff_limit=1))
    ]
    assert plan.update == []  # p2's Job keeps its replicas and its 5 completions
