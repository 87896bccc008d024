"""Unit tests of providers' reputation (``kommons.hub.reputation``) and where its inputs come from.

Behaviour matrix:

- formula, by hand: uptime ``(R + P) / (R + U + P)``, success ``(C + 9) / (C + F + O + 10)``,
  score their product; a new provider is 0.9; one failure ~0.82, ten completions 0.95; the
  worked example of ``docs/reputation.md`` gives the numbers the page shows.
- decay: observed seconds halve every half-life; counts never decay; unobserved time (no
  heartbeat seen yet) only ages the past.
- properties: score and uptime in [0, 1]; a completion never lowers the score, a failure or a
  failover never raises it, unreachable time never raises the uptime; the written record
  restores to the record it came from (up to rounding).
- restore: a record comes back from ``status.reputation`` decayed by the time since
  ``updatedAt``; absent → empty record; restoring a known provider changes nothing.
- book: the first tick only starts the clock; a fresh heartbeat counts reachable, an expired one
  unreachable, none at all neither; an ending counts only if its placement's deletion succeeded,
  once per placement uid (a retried step does not count again), and uids are forgotten after
  ``dedupe_seconds``.
- writes at a bounded rate: a new provider is written at once; then not before
  ``write_seconds``, and after it only when a count changed, score or uptime moved by
  ``change``, or ``refresh_seconds`` passed; a restored record is not rewritten at once.
- plan endings: every placement a plan deletes (lease deleted, scaled down, stale placement
  replaced or surplus) has exactly one ending, ``Completed``, with its uid; nothing deleted →
  no endings.
- the hub consumes endings after the executor wrote the plan: deleted placements count once
  even when the same plan is absorbed twice; endings of placements not deleted do not count.
- settings that make no sense are refused, naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kommons.api import ComputeLease, LeasePlacement, Reputation
from kommons.hub.executor import Outcome
from kommons.hub.handlers import Hub, HubOptions
from kommons.hub.plan import LeasePlan, PlacementEnding
from kommons.hub.reputation import (
    NEUTRAL_SCORE,
    ReputationBook,
    ReputationRecord,
    ReputationSettings,
    decayed,
    ended,
    observed,
    record_from_status,
    reputation,
    score,
    success_ratio,
    uptime_ratio,
)
from kommons.kube import Kube
from tests.unit.test_hub_plan import lease_body, lease_of, market, placed, provider_body, step

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = ReputationSettings()
NO_PRIOR = ReputationSettings(uptime_prior_seconds=0)
HOUR = 3600.0


# --- the formula --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "uptime", "success"),
    [
        (ReputationRecord(), 1.0, 0.9),  # new provider: neutral
        (ReputationRecord(failed=1), 1.0, 9 / 11),  # one failure does not kill it
        (ReputationRecord(completed=10), 1.0, 19 / 20),
        (ReputationRecord(failovers=2, completed=1), 1.0, 10 / 13),
        (ReputationRecord(reachable_seconds=HOUR, unreachable_seconds=HOUR), 2 / 3, 0.9),
        (ReputationRecord(unreachable_seconds=HOUR), 0.5, 0.9),  # the prior: 1 h reachable
        (ReputationRecord(reachable_seconds=9 * HOUR, unreachable_seconds=HOUR), 10 / 11, 0.9),
    ],
)
def test_formula_by_hand(record: ReputationRecord, uptime: float, success: float) -> None:
    assert uptime_ratio(record, S) == pytest.approx(uptime)
    assert success_ratio(record) == pytest.approx(success)
    assert score(record, S) == pytest.approx(uptime * success)


def test_a_new_provider_is_neutral() -> None:
    assert NEUTRAL_SCORE == 0.9
    assert score(ReputationRecord(), S) == NEUTRAL_SCORE
    assert score(ReputationRecord(), NO_PRIOR) == NEUTRAL_SCORE  # nothing observed: 1.0 uptime


def test_worked_example_of_the_docs() -> None:
    # docs/reputation.md: 10 h reachable, 30 min unreachable, 40 completed, 1 failed,
    # 2 failed over (no decay in the example).
    record = ReputationRecord(
        reachable_seconds=36000, unreachable_seconds=1800, completed=40, failed=1, failovers=2
    )
    assert round(uptime_ratio(record, S), 4) == 0.9565  # 39600 / 41400
    assert round(success_ratio(record), 4) == 0.9245  # 49 / 53
    written = reputation(record, S, NOW)
    assert written.score == 0.8843
    assert written.uptime_ratio == 0.9565
    assert (written.completed_leases, written.failed_leases, written.failovers) == (40, 1, 2)
    assert (written.reachable_seconds, written.unreachable_seconds) == (36000, 1800)
    assert written.updated_at == NOW
    assert written.to_api()["uptimeRatio"] == 0.9565


def test_observed_seconds_decay_by_half_every_half_life() -> None:
    record = ReputationRecord(reachable_seconds=100, unreachable_seconds=40, completed=3)
    later = decayed(record, S.half_life_seconds, S)
    assert later.reachable_seconds == pytest.approx(50)
    assert later.unreachable_seconds == pytest.approx(20)
    assert later.completed == 3  # counts never decay
    assert decayed(record, -5, S) == record  # a clock going back changes nothing


def test_observe_adds_after_decaying_and_unobserved_time_only_ages() -> None:
    settings = ReputationSettings(half_life_seconds=10)
    record = ReputationRecord(reachable_seconds=8, unreachable_seconds=8)
    up = observed(record, 10, True, settings)
    assert (up.reachable_seconds, up.unreachable_seconds) == pytest.approx((14, 4))
    down = observed(record, 10, False, settings)
    assert (down.reachable_seconds, down.unreachable_seconds) == pytest.approx((4, 14))
    unknown = observed(record, 10, None, settings)
    assert (unknown.reachable_seconds, unknown.unreachable_seconds) == pytest.approx((4, 4))


def test_endings_count_by_kind() -> None:
    record = ended(ended(ended(ReputationRecord(), "Completed"), "Failed"), "FailedOver")
    assert (record.completed, record.failed, record.failovers) == (1, 1, 1)


# --- properties ---------------------------------------------------------------------------

records = st.builds(
    ReputationRecord,
    reachable_seconds=st.floats(0, 1e7),
    unreachable_seconds=st.floats(0, 1e7),
    completed=st.integers(0, 10_000),
    failed=st.integers(0, 10_000),
    failovers=st.integers(0, 10_000),
)
settings_st = st.builds(
    ReputationSettings,
    half_life_seconds=st.floats(1, 1e7),
    uptime_prior_seconds=st.floats(0, 1e5),
)


@given(records, settings_st)
def test_ratios_stay_in_range(record: ReputationRecord, settings: ReputationSettings) -> None:
    assert 0.0 <= uptime_ratio(record, settings) <= 1.0
    assert 0.0 < success_ratio(record) < 1.0
    assert 0.0 <= score(record, settings) <= 1.0


@given(records, settings_st)
def test_good_news_never_lowers_bad_news_never_raises(
    record: ReputationRecord, settings: ReputationSettings
) -> None:
    before = score(record, settings)
    assert score(ended(record, "Completed"), settings) >= before
    assert score(ended(record, "Failed"), settings) <= before
    assert score(ended(record, "FailedOver"), settings) <= before
    worse = observed(record, 0, False, settings)  # no time passes, nothing to decay
    assert (
        uptime_ratio(observed(worse, 5, False, settings), settings)
        <= uptime_ratio(decayed(worse, 5, settings), settings) + 1e-12
    )


@given(records, settings_st)
def test_written_record_restores_what_it_came_from(
    record: ReputationRecord, settings: ReputationSettings
) -> None:
    back = record_from_status(reputation(record, settings, NOW), now=NOW, settings=settings)
    assert (back.completed, back.failed, back.failovers) == (
        record.completed,
        record.failed,
        record.failovers,
    )
    assert abs(back.reachable_seconds - record.reachable_seconds) <= 0.5
    assert abs(back.unreachable_seconds - record.unreachable_seconds) <= 0.5


# --- restore ------------------------------------------------------------------------------


def test_restore_decays_by_the_time_since_the_last_write() -> None:
    stored = Reputation(
        reachable_seconds=1000,
        unreachable_seconds=200,
        completed_leases=7,
        failed_leases=1,
        failovers=2,
        updated_at=NOW - timedelta(seconds=S.half_life_seconds),
    )
    record = record_from_status(stored, now=NOW, settings=S)
    assert (record.reachable_seconds, record.unreachable_seconds) == pytest.approx((500, 100))
    assert (record.completed, record.failed, record.failovers) == (7, 1, 2)
    assert record_from_status(None, now=NOW, settings=S) == ReputationRecord()


def test_restoring_a_known_provider_changes_nothing() -> None:
    book = ReputationBook(S)
    book.restore("p", Reputation(completed_leases=3), now=NOW, at=0)
    book.restore("p", Reputation(completed_leases=99), now=NOW, at=1)
    assert book.record("p").completed == 3


# --- the book: uptime ticks, endings --------------------------------------------------------


def test_ticks_count_what_the_heartbeat_age_says() -> None:
    book = ReputationBook(ReputationSettings(half_life_seconds=1e12))
    book.restore("p", None, now=NOW, at=0)
    book.tick("p", 1.0, timeout=10, at=100)  # first tick: starts the clock only
    assert book.record("p") == ReputationRecord()
    book.tick("p", 4.0, timeout=10, at=103)  # fresh
    book.tick("p", 11.0, timeout=10, at=106)  # expired
    book.tick("p", None, timeout=10, at=109)  # never seen: not observed
    book.tick("p", 10.0, timeout=10, at=112)  # exactly the timeout: still fresh
    record = book.record("p")
    assert (record.reachable_seconds, record.unreachable_seconds) == pytest.approx((6, 3))


def ending(provider: str, uid: str | None, kind: Any = "Completed") -> PlacementEnding:
    return PlacementEnding(provider, kind, uid)


def test_an_ending_counts_once_and_only_if_its_deletion_succeeded() -> None:
    book = ReputationBook(S)
    endings = [ending("a", "u1"), ending("a", "u2", "FailedOver"), ending("b", "u3", "Failed")]
    changed = book.end(endings, ["u1", "u2"], at=0)  # u3's delete did not happen
    assert changed == {"a"}
    assert (book.record("a").completed, book.record("a").failovers) == (1, 1)
    assert book.record("b") == ReputationRecord()

    assert book.end(endings, ["u1", "u2"], at=1) == set()  # a retried step
    assert book.record("a").completed == 1
    assert book.end([ending("a", None)], ["u1"], at=2) == set()  # no uid: cannot dedupe

    book.end([], [], at=S.dedupe_seconds + 10)  # u1, u2 forgotten (bounded memory)
    assert book.end([ending("a", "u1")], ["u1"], at=S.dedupe_seconds + 11) == {"a"}


# --- the book: bounded writes ---------------------------------------------------------------


def test_writes_are_bounded_and_only_on_change() -> None:
    settings = ReputationSettings(
        write_seconds=30, refresh_seconds=600, half_life_seconds=1e9, uptime_prior_seconds=0
    )
    book = ReputationBook(settings)
    book.restore("p", None, now=NOW, at=0)
    first = book.due("p", now=NOW, at=0)
    assert first is not None
    assert first.score == 0.9  # a new provider gets a record at once
    book.written("p", first, at=0)

    book.end([ending("p", "u1")], ["u1"], at=1)
    assert book.due("p", now=NOW, at=10) is None  # changed, but written 10 s ago
    due = book.due("p", now=NOW, at=30)
    assert due is not None
    assert due.completed_leases == 1
    book.written("p", due, at=30)

    book.tick("p", 0, timeout=10, at=30)
    book.tick("p", 0, timeout=10, at=100)  # always reachable: uptime stays 1.0
    assert book.due("p", now=NOW, at=100) is None  # nothing moved
    book.tick("p", 60, timeout=10, at=101)  # 1 s unreachable of 71: uptime 0.986
    due = book.due("p", now=NOW, at=101)
    assert due is not None
    assert due.uptime_ratio == round(70 / 71, 4)
    book.written("p", due, at=101)

    book.tick("p", 0, timeout=10, at=701)
    refreshed = book.due("p", now=NOW, at=701)  # 600 s: written even if it barely moved
    assert refreshed is not None
    assert refreshed.reachable_seconds == 670


def test_a_restored_record_is_rewritten_only_if_it_moved() -> None:
    book = ReputationBook(S)
    stored = reputation(ReputationRecord(reachable_seconds=500, unreachable_seconds=900), S, NOW)
    book.restore("p", stored, now=NOW, at=0)
    assert book.due("p", now=NOW, at=1) is None  # nothing moved
    assert book.due("p", now=NOW, at=S.refresh_seconds) is not None  # refreshed in time

    # a hub restarted with other settings rewrites the record at once
    other = ReputationBook(ReputationSettings(uptime_prior_seconds=0))
    other.restore("p", stored, now=NOW, at=0)
    due = other.due("p", now=NOW, at=0)
    assert due is not None
    assert due.uptime_ratio == round(500 / 1400, 4)
    other.forget("p")
    assert not other.knows("p")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="half_life_seconds"):
        ReputationSettings(half_life_seconds=0)
    with pytest.raises(ValueError, match="uptime_prior_seconds"):
        ReputationSettings(uptime_prior_seconds=-1)
    with pytest.raises(ValueError, match="write_seconds"):
        ReputationSettings(write_seconds=0)


# --- plan endings (kommons.hub.plan) ---------------------------------------------------------


def assert_endings_match(plan: LeasePlan) -> None:
    """Every deleted placement has exactly one Completed ending with its uid."""
    assert sorted(e.placement_uid or "" for e in plan.endings) == sorted(
        p.metadata.uid or "" for p in plan.delete
    )
    assert [e.provider for e in plan.endings] == [p.spec.provider for p in plan.delete]
    assert {e.kind for e in plan.endings} <= {"Completed"}


def test_plan_endings_for_a_deleted_lease() -> None:
    view = market(provider_body("p1"), provider_body("p2", cpu="1"))
    existing = placed(step(lease_of(replicas=3), view), ready=1)
    body = lease_body(replicas=3)
    body["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    plan = step(ComputeLease.model_validate(body), view, placements=existing)
    assert len(plan.endings) == len(existing) >= 1
    assert_endings_match(plan)


def test_plan_endings_for_scale_down() -> None:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b"))
    existing = placed(step(lease_of(), view), ready=1)
    plan = step(lease_of(replicas=1), view, placements=existing)
    assert [(e.provider, e.kind) for e in plan.endings] == [("b", "Completed")]
    assert_endings_match(plan)


def test_plan_endings_for_a_replaced_placement() -> None:
    view = market(provider_body("p1", cpu_price="0.01", cpu="2"), provider_body("p2", cpu="16"))
    existing = placed(step(lease_of(), view), ready=2)
    plan = step(lease_of(resources={"cpu": "4", "memory": "1Gi"}), view, placements=existing)
    assert [(e.provider, e.kind) for e in plan.endings] == [("p1", "Completed")]
    assert_endings_match(plan)


def test_plan_endings_for_a_stale_surplus_placement() -> None:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b", cpu="1"))
    existing = placed(step(lease_of(), view), ready=1)
    plan = step(lease_of(replicas=1, maxPricePerHour="0.015"), view, placements=existing)
    assert [e.provider for e in plan.endings] == ["b"]
    assert_endings_match(plan)


def test_no_endings_without_deletions() -> None:
    view = market(provider_body("p1"))
    first = step(lease_of(), view)
    assert first.endings == []
    grown = step(lease_of(replicas=3), view, placements=placed(first, ready=2))
    assert grown.delete == []
    assert grown.endings == []


# --- the hub consumes endings after the executor wrote the plan -----------------------------


def hub() -> Hub:
    # _absorb talks to no API server: nothing reaches the client.
    return Hub(HubOptions(kubeconfig=Path("unused")), cast(Kube, None))


def deleting_plan() -> tuple[ComputeLease, LeasePlan, list[LeasePlacement]]:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b"))
    existing = placed(step(lease_of(), view), ready=1)
    return lease_of(replicas=1), step(lease_of(replicas=1), view, placements=existing), existing


def test_the_hub_counts_deleted_placements_once() -> None:
    the_hub = hub()
    lease, plan, _ = deleting_plan()
    the_hub.view.set_lease(lease)
    outcome = Outcome(deleted=list(plan.delete))
    the_hub._absorb("team-a/web", plan, outcome)
    the_hub._absorb("team-a/web", plan, outcome)  # the same step absorbed again
    assert the_hub.reputation.record("b").completed == 1
    assert the_hub.reputation.record("a").completed == 0


def test_the_hub_ignores_endings_of_deletions_that_did_not_happen() -> None:
    the_hub = hub()
    lease, plan, _ = deleting_plan()
    the_hub.view.set_lease(lease)
    the_hub._absorb("team-a/web", plan, Outcome(conflict=True))  # stopped before the delete
    assert the_hub.reputation.record("b") == ReputationRecord()


def test_the_hub_restores_a_provider_before_counting() -> None:
    the_hub = hub()
    lease, plan, _ = deleting_plan()
    body = provider_body("b")
    body["status"]["reputation"] = {"completedLeases": 41, "updatedAt": "2026-12-01T11:00:00Z"}
    the_hub.view.set_provider(body)
    the_hub.view.set_lease(lease)
    the_hub._absorb("team-a/web", plan, Outcome(deleted=list(plan.delete)))
    assert the_hub.reputation.record("b").completed == 42
