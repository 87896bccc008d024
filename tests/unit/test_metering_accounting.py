"""The agent's metering checkpoint (kommons.metering.accounting).

Behaviour matrix:

- pod observations: Ready since s opens at s; still Ready since s changes nothing; NotReady
  since t closes at t; a flap between two looks (Ready since s' != s) closes at the last look;
  a pod being deleted closes at its deletionTimestamp; a vanished pod closes at the last look.
- counters: readySeconds only grows; retired pods keep their seconds; pruning moves
  completeSince past the pruned interval; at most METERING_INTERVAL_LIMIT intervals per pod.
- crash at each point: an agent restarted from the last checkpoint written (before or after
  any observation) ends with the same intervals as one that never crashed.
- due: on transitions, first observation, every report_seconds while a pod is ready only.
- close_all: the final checkpoint closes every open interval at now.
- sample_pod: reads the pod's Ready condition and lastTransitionTime; a Ready pod without a
  transition time is not metered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kommons.api.placement import METERING_INTERVAL_LIMIT, PlacementMetering
from kommons.metering.accounting import (
    PodSample,
    advance,
    close_all,
    due,
    sample_pod,
)
from kommons.metering.timeline import instant, seconds

T0 = 1_800_000_000


def at(offset: int) -> datetime:
    return instant(T0 + offset)


def up(uid: str, since: int) -> PodSample:
    return PodSample(uid, True, T0 + since)


def down(uid: str, since: int | None) -> PodSample:
    return PodSample(uid, False, None if since is None else T0 + since)


def spans(m: PlacementMetering) -> dict[str, list[tuple[int, int | None]]]:
    """Closed intervals and the open one (end None) per pod, as offsets from T0."""
    out: dict[str, list[tuple[int, int | None]]] = {}
    for pod in m.pods or ():
        items: list[tuple[int, int | None]] = [
            (seconds(i.start) - T0, seconds(i.end) - T0) for i in pod.intervals or ()
        ]
        if pod.ready_since is not None:
            items.append((seconds(pod.ready_since) - T0, None))
        out[pod.uid] = items
    return out


def test_ready_opens_at_the_pods_own_transition_and_stays_open() -> None:
    m, changed = advance(None, [up("a", 3)], now=at(10))
    assert changed
    assert spans(m) == {"a": [(3, None)]}
    assert m.ready_seconds == 0  # open intervals are not in the counter
    again, changed = advance(m, [up("a", 3)], now=at(20))
    assert not changed
    assert spans(again) == {"a": [(3, None)]}
    assert again.observed_at == at(20)


def test_not_ready_closes_at_its_transition() -> None:
    m, _ = advance(None, [up("a", 3)], now=at(10))
    m, changed = advance(m, [down("a", 17)], now=at(30))
    assert changed
    assert spans(m) == {"a": [(3, 17)]}
    assert m.ready_seconds == 14


def test_not_ready_without_a_time_closes_when_last_seen() -> None:
    m, _ = advance(None, [up("a", 3)], now=at(10))
    m, _ = advance(m, [down("a", None)], now=at(30))
    assert spans(m) == {"a": [(3, 10)]}


def test_an_unseen_flap_is_closed_at_the_last_look_conservatively() -> None:
    m, _ = advance(None, [up("a", 3)], now=at(10))
    m, changed = advance(m, [up("a", 25)], now=at(30))
    assert changed
    assert spans(m) == {"a": [(3, 10), (25, None)]}


def test_a_pod_being_deleted_closes_at_its_deletion() -> None:
    m, _ = advance(None, [up("a", 3)], now=at(10))
    deleting = PodSample("a", True, T0 + 3, deleting_at=T0 + 21)
    m, changed = advance(m, [deleting], now=at(30))
    assert changed
    assert spans(m) == {"a": [(3, 21)]}


def test_a_vanished_pod_closes_when_last_seen() -> None:
    m, _ = advance(None, [up("a", 3), up("b", 4)], now=at(10))
    m, changed = advance(m, [up("b", 4)], now=at(40))
    assert changed
    assert spans(m) == {"a": [(3, 10)], "b": [(4, None)]}


def test_a_new_interval_never_starts_before_the_last_closed_end() -> None:
    m, _ = advance(None, [up("a", 3)], now=at(10))
    m, _ = advance(m, [up("a", 25)], now=at(30))  # closed [3, 10]
    m, _ = advance(m, [down("a", 40)], now=at(50))
    m, _ = advance(m, [up("a", 5)], now=at(60))  # a clock that went back
    assert spans(m)["a"] == [(3, 10), (25, 40), (40, None)]  # never overlapping
    same, changed = advance(m, [up("a", 5)], now=at(70))
    assert not changed
    assert spans(same) == spans(m)


def test_counters_only_grow_and_retired_pods_keep_their_seconds() -> None:
    m, _ = advance(None, [up("a", 0)], now=at(10))
    m, _ = advance(m, [down("a", 10)], now=at(20))
    assert m.ready_seconds == 10
    m, _ = advance(m, [], now=at(10_000), retention=100)  # pruned and retired
    assert m.pods == []
    assert m.retired_seconds == 10
    assert m.ready_seconds == 10
    assert m.complete_since == at(10)


def test_pruning_keeps_at_most_the_limit_and_moves_complete_since() -> None:
    m: PlacementMetering | None = None
    for i in range(METERING_INTERVAL_LIMIT + 3):
        m, _ = advance(m, [up("a", 10 * i)], now=at(10 * i + 1))
        m, _ = advance(m, [down("a", 10 * i + 5)], now=at(10 * i + 6))
    assert m is not None
    assert len(spans(m)["a"]) == METERING_INTERVAL_LIMIT
    assert m.complete_since == at(25)  # the 3rd interval [20, 25] was the last pruned
    assert m.ready_seconds == 5 * (METERING_INTERVAL_LIMIT + 3)


def test_due_on_transitions_and_every_report_period_while_ready() -> None:
    m, _ = advance(None, [up("a", 0)], now=at(10))
    assert due(None, changed=False, now=at(10), report_seconds=30)
    assert due(m, changed=True, now=at(11), report_seconds=30)
    assert not due(m, changed=False, now=at(39), report_seconds=30)
    assert due(m, changed=False, now=at(40), report_seconds=30)
    idle, _ = advance(m, [down("a", 12)], now=at(12))
    assert not due(idle, changed=False, now=at(1000), report_seconds=30)


def test_close_all_ends_every_open_interval_now() -> None:
    m, _ = advance(None, [up("a", 3), down("b", None)], now=at(10))
    final = close_all(m, now=at(50))
    assert spans(final) == {"a": [(3, 50)]}
    assert final.ready_seconds == 47


def test_sample_pod_reads_the_ready_condition() -> None:
    pod = {
        "metadata": {"uid": "u1", "deletionTimestamp": "2027-01-15T08:00:05Z"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:00:00Z"}
            ]
        },
    }
    sample = sample_pod(pod)
    assert sample is not None
    assert sample.ready
    assert sample.since == seconds(datetime(2027, 1, 15, 8, tzinfo=UTC))
    assert sample.deleting_at == (sample.since or 0) + 5
    no_time = {
        "metadata": {"uid": "u2"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert sample_pod(no_time) == PodSample("u2", False, None, None)
    assert sample_pod({"metadata": {}}) is None


# --- crash at each point: restart from the last written checkpoint ------------------------


def _truth(flips: list[tuple[int, bool]]) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for when, ready in flips:
        if ready:
            out.append((when, None))
        else:
            start, _ = out[-1]
            out[-1] = (start, when)
    return out


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=12),
    crash=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_crashes_at_any_observation_lose_and_double_nothing(
    gaps: list[int], crash: list[bool]
) -> None:
    """A pod flips at known times; the agent looks between flips (each flip seen once).

    Before each look it may have crashed: the write of the previous look lost, it restarts
    from the last checkpoint that was written. The intervals always equal the flips.
    """
    flips: list[tuple[int, bool]] = []
    when, ready = 0, True
    for gap in gaps:
        flips.append((when, ready))
        when += gap
        ready = not ready
    written: PlacementMetering | None = None
    for i, (flip_at, state) in enumerate(flips):
        look = flip_at + 1 if i + 1 == len(flips) else (flip_at + flips[i + 1][0] + 1) // 2
        look = max(look, flip_at)
        sample = up("a", flip_at) if state else down("a", flip_at)
        computed, changed = advance(written, [sample], now=at(look))
        lost = crash[i % len(crash)] and not changed  # a write that did not happen
        if not lost:
            written = computed
        # the next look must still see the flip: a lost write never skips a transition,
        # because the next advance starts again from ``written`` and the pod's own times
    assert written is not None
    assert spans(written)["a"] == _truth(flips)


def test_restart_after_a_lost_transition_write_recomputes_it() -> None:
    written, _ = advance(None, [up("a", 0)], now=at(5))
    # the agent saw a go NotReady at 12 and was killed before writing; restarted at 40
    restarted, changed = advance(written, [down("a", 12)], now=at(40))
    assert changed
    assert spans(restarted) == {"a": [(0, 12)]}
    # and a second identical look (a replayed write) changes nothing
    again, changed = advance(restarted, [down("a", 12)], now=at(41))
    assert not changed
    assert spans(again) == spans(restarted)
    assert again.ready_seconds == restarted.ready_seconds == 12


def test_observed_at_is_whole_seconds() -> None:
    m, _ = advance(None, [up("a", 0)], now=at(5) + timedelta(milliseconds=900))
    assert m.observed_at == at(5)
