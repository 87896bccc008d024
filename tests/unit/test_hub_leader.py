"""Leader election's pure part: observation, decision, release; and the deadman thread.

Behaviour matrix of ``decide`` (defaults 15/10/2 s, me = "a"):

| Lease record                         | I lead? | time since seen | → action           |
|--------------------------------------|---------|-----------------|--------------------|
| none                                 | no      | —               | acquire (create)   |
| holder "b", duration 15              | no      | 14.9 s          | wait               |
| holder "b", duration 15              | no      | 15 s            | acquire, +1 trans. |
| holder "b", duration 1 (fresh)       | no      | 1 s             | acquire            |
| holder "" (released)                 | no      | 0 s             | acquire at once    |
| holder "a" (my identity, restarted)  | no      | 0 s             | acquire, same trans|
| holder "a"                           | yes     | renewed 2 s ago | renew, acquire kept|
| holder "a"                           | yes     | renewed 10 s ago| lost (deadline)    |
| holder "b"                           | yes     | renewed 1 s ago | lost (taken)       |

The other replica's ``renewTime`` never matters: only how long *this* replica has seen the
same record.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from kommons.hub.leader import (
    Action,
    Deadman,
    Decision,
    ElectionOptions,
    LeaderRecord,
    Observation,
    decide,
    observe,
    release,
)

OPTIONS = ElectionOptions(identity="a")
WALL = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
STAMP = "2026-12-01T09:00:00.000000Z"
B = LeaderRecord(holder="b", lease_duration=15, acquire_time="t0", renew_time="t1", transitions=4)


def _decide(
    record: LeaderRecord | None, *, age: float, last_renew: float | None = None
) -> Decision:
    now = 1000.0
    return decide(
        Observation(record=record, since=now - age),
        me="a",
        now=now,
        wall=WALL,
        last_renew=None if last_renew is None else now - last_renew,
        options=OPTIONS,
    )


@pytest.mark.parametrize(
    ("record", "age", "last_renew", "action"),
    [
        (None, 0.0, None, Action.ACQUIRE),
        (B, 14.9, None, Action.WAIT),
        (B, 15.0, None, Action.ACQUIRE),
        (LeaderRecord(holder="b", lease_duration=1), 1.0, None, Action.ACQUIRE),
        (LeaderRecord(holder="", lease_duration=1, transitions=4), 0.0, None, Action.ACQUIRE),
        (LeaderRecord(holder="a", lease_duration=15, acquire_time="t0"), 0.0, None, Action.ACQUIRE),
        (LeaderRecord(holder="a", lease_duration=15, acquire_time="t0"), 0.0, 2.0, Action.RENEW),
        (LeaderRecord(holder="a", lease_duration=15), 0.0, 10.0, Action.LOST),
        (B, 0.0, 1.0, Action.LOST),
        (None, 0.0, 9.9, Action.ACQUIRE),
    ],
)
def test_decide_table(
    record: LeaderRecord | None, age: float, last_renew: float | None, action: Action
) -> None:
    assert _decide(record, age=age, last_renew=last_renew).action is action


def test_wait_says_who_holds_and_when_it_may_be_taken() -> None:
    decision = _decide(B, age=5.0)
    assert decision.record is None
    assert "'b'" in decision.reason
    assert "10.0s" in decision.reason


def test_takeover_counts_a_transition_and_stamps_the_record() -> None:
    decision = _decide(B, age=20.0)
    assert decision.record == LeaderRecord(
        holder="a", lease_duration=15, acquire_time=STAMP, renew_time=STAMP, transitions=5
    )


def test_renew_keeps_acquire_time_and_transitions() -> None:
    mine = LeaderRecord(holder="a", lease_duration=15, acquire_time="t0", transitions=7)
    decision = _decide(mine, age=0.0, last_renew=2.0)
    assert decision.record is not None
    assert decision.record.acquire_time == "t0"
    assert decision.record.transitions == 7
    assert decision.record.renew_time == STAMP


def test_missing_duration_falls_back_to_ours() -> None:
    silent = LeaderRecord(holder="b", lease_duration=0)
    assert _decide(silent, age=14.0).action is Action.WAIT
    assert _decide(silent, age=15.0).action is Action.ACQUIRE


def test_observation_keeps_its_time_while_the_record_is_unchanged() -> None:
    first = observe(None, B, 10.0)
    assert observe(first, B, 30.0).since == 10.0
    renewed = LeaderRecord(holder="b", lease_duration=15, renew_time="t2", transitions=4)
    assert observe(first, renewed, 30.0).since == 30.0
    assert observe(first, None, 31.0) == Observation(None, 31.0)


def test_a_renewing_holder_is_never_taken_over_whatever_its_clock_says() -> None:
    """The holder renews every 2 s with a renewTime far in the past: no takeover."""
    observation: Observation | None = None
    for tick in range(30):
        now = 100.0 + 2 * tick
        stale = f"1970-01-01T00:00:{tick:02d}Z"
        record = LeaderRecord(holder="b", lease_duration=15, renew_time=stale)
        observation = observe(observation, record, now)
        decision = decide(observation, me="a", now=now, wall=WALL, last_renew=None, options=OPTIONS)
        assert decision.action is Action.WAIT


def test_release_hands_over_at_once_and_only_our_own() -> None:
    mine = LeaderRecord(holder="a", lease_duration=15, acquire_time="t0", transitions=3)
    released = release(mine, me="a", wall=WALL)
    assert released == LeaderRecord(
        holder="", lease_duration=1, acquire_time=STAMP, renew_time=STAMP, transitions=3
    )
    assert release(B, me="a", wall=WALL) is None
    assert _decide(released, age=0.0).action is Action.ACQUIRE


def test_record_round_trips_through_a_lease_spec() -> None:
    spec = B.to_spec()
    assert spec == {
        "holderIdentity": "b",
        "leaseDurationSeconds": 15,
        "acquireTime": "t0",
        "renewTime": "t1",
        "leaseTransitions": 4,
    }
    assert LeaderRecord.from_spec(spec) == B
    assert LeaderRecord.from_spec({}) == LeaderRecord()


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(15, 15, 2), (15, 10, 10), (10, 15, 2), (15, 10, 0)]
)
def test_options_refuse_a_deadline_that_could_overlap_a_takeover(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        ElectionOptions(
            identity="a", lease_duration=duration, renew_deadline=deadline, retry_period=retry
        )


def test_options_refuse_an_empty_identity() -> None:
    with pytest.raises(ValueError, match="identity"):
        ElectionOptions(identity="")


def test_deadman_fires_once_the_deadline_passes_unless_extended() -> None:
    fired = threading.Event()
    deadman = Deadman(fired.set)
    deadman.extend(time.monotonic() + 0.3)
    time.sleep(0.15)
    deadman.extend(time.monotonic() + 0.3)  # renewed in time
    time.sleep(0.2)
    assert not fired.is_set()
    assert fired.wait(2.0)


def test_deadman_disarmed_never_fires() -> None:
    fired = threading.Event()
    deadman = Deadman(fired.set)
    deadman.extend(time.monotonic() + 0.1)
    deadman.disarm()
    assert not fired.wait(0.3)
