"""Epoch windows: created back to back, one covering now, sealed after end + delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kommons.settlement.epochs import (
    MAX_CREATED_PER_STEP,
    EpochWindow,
    epoch_name,
    epochs_to_create,
    epochs_to_seal,
)

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _w(i: int, start: datetime, seconds: int = 60, phase: str | None = "Open") -> EpochWindow:
    return EpochWindow(i, start, start + timedelta(seconds=seconds), phase)


def test_first_epoch_starts_now_in_whole_seconds() -> None:
    created = epochs_to_create([], T0 + timedelta(microseconds=700_000), 60)
    assert created == [EpochWindow(1, T0, T0 + timedelta(seconds=60), "Open")]


@pytest.mark.parametrize(
    ("now_offset", "expected_ids"),
    [
        (0, []),  # epoch 1 covers now
        (59, []),
        (60, [2]),  # at its end the next one starts
        (61, [2]),
        (185, [2, 3, 4]),  # after an outage: the missed ones, back to back
    ],
)
def test_next_epochs_back_to_back(now_offset: int, expected_ids: list[int]) -> None:
    existing = [_w(1, T0)]
    created = epochs_to_create(existing, T0 + timedelta(seconds=now_offset), 60)
    assert [e.epoch_id for e in created] == expected_ids
    previous = existing[0]
    for epoch in created:
        assert epoch.start == previous.end  # no gap, no overlap
        assert epoch.end - epoch.start == timedelta(seconds=60)
        previous = epoch


def test_new_epochs_follow_the_highest_id_whatever_the_order() -> None:
    existing = [_w(3, T0 + timedelta(seconds=120)), _w(1, T0), _w(2, T0 + timedelta(seconds=60))]
    created = epochs_to_create(existing, T0 + timedelta(seconds=181), 60)
    assert [(e.epoch_id, e.start) for e in created] == [(4, T0 + timedelta(seconds=180))]


def test_a_new_length_applies_to_new_epochs_only() -> None:
    created = epochs_to_create([_w(1, T0, 60)], T0 + timedelta(seconds=60), 30)
    assert created[0].start == T0 + timedelta(seconds=60)
    assert created[0].end == T0 + timedelta(seconds=90)


def test_catch_up_is_bounded_per_step() -> None:
    created = epochs_to_create([_w(1, T0, 1)], T0 + timedelta(days=1), 1)
    assert len(created) == MAX_CREATED_PER_STEP
    assert created[-1].epoch_id == MAX_CREATED_PER_STEP + 1


def test_epoch_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="epoch_seconds"):
        epochs_to_create([], T0, 0)


@pytest.mark.parametrize(
    ("phase", "now_offset", "sealed"),
    [
        ("Open", 60 + 9, False),  # ended, seal delay not over
        ("Open", 60 + 10, True),
        (None, 60 + 10, True),  # no phase counts as Open
        ("Sealed", 500, False),
        ("Submitted", 500, False),
        ("Confirmed", 500, False),
        ("Failed", 500, False),
    ],
)
def test_epochs_to_seal(phase: str | None, now_offset: int, sealed: bool) -> None:
    existing = [_w(1, T0, phase=phase)]
    result = epochs_to_seal(existing, T0 + timedelta(seconds=now_offset), 10)
    assert result == ([1] if sealed else [])


def test_epochs_to_seal_in_order() -> None:
    existing = [_w(2, T0 + timedelta(seconds=60)), _w(1, T0), _w(3, T0 + timedelta(seconds=120))]
    assert epochs_to_seal(existing, T0 + timedelta(seconds=130), 0) == [1, 2]


@pytest.mark.parametrize(
    ("acting_for", "sealed"),
    [
        (9, False),  # a hub acting for less than the seal delay freezes nothing yet
        (10, True),
        (500, True),
    ],
)
def test_a_new_hub_waits_the_seal_delay_before_freezing(acting_for: int, sealed: bool) -> None:
    now = T0 + timedelta(seconds=1000)  # epoch 1 (60 s) is long overdue
    existing = [_w(1, T0), _w(2, T0 + timedelta(seconds=60))]
    since = now - timedelta(seconds=acting_for)
    result = epochs_to_seal(existing, now, 10, acting_since=since)
    assert result == ([1, 2] if sealed else [])


def test_epoch_name() -> None:
    assert epoch_name(7) == "epoch-7"


def test_the_first_epoch_follows_the_contracts_commits() -> None:
    created = epochs_to_create([], T0, 60, first_id=8)
    assert [e.epoch_id for e in created] == [8]
    with pytest.raises(ValueError, match="first_id"):
        epochs_to_create([], T0, 60, first_id=0)
    # once epochs exist, the ids follow them
    assert (
        epochs_to_create([_w(8, T0)], T0 + timedelta(seconds=60), 60, first_id=1)[0].epoch_id == 9
    )
