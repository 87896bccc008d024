"""What the hub accepts (kommons.metering.acceptance) and the lease ledger (.ledger, .outages).

Behaviour matrix:

- acceptance clips to: the placement's lifetime (creation → deletion; a superseded placement
  is deleted, so the old and new placements never overlap); hub-recorded outage windows
  (closed: the gap is not billed even if reported; ongoing: nothing after its start); the
  hub's clock; open intervals end at the report's observedAt; at most spec.replicas pods.
- epoch split: a span across an epoch boundary is split exactly; whole seconds; time in no
  epoch is not billed.
- ledger: SET per (epoch, placement) (replay = same result, never added); only Open epochs
  change; late time for a Sealed epoch is counted, not billed; an epoch starting before
  completeSince keeps its stored entry; amounts = prorate(price, seconds) rounded down once;
  Confirmed epochs fold into settled and drop; accrued = settled + Σ usage.
- outages: open at the last hub-observed heartbeat, close when seen again, at most 20.
- awaiting_settlement: epochs with usage not Confirmed/Failed.
"""

from __future__ import annotations

from kommons.api import LeaseCost, LeaseUsage
from kommons.api.placement import PlacementMetering, PodMetering, ReadyInterval
from kommons.api.provider import OUTAGE_LIMIT, Outage
from kommons.metering.acceptance import EpochWindow, Facts, accepted_by_epoch, accepted_spans
from kommons.metering.ledger import Epoch, Report, awaiting_settlement, ledger
from kommons.metering.outages import outages_after, windows
from kommons.metering.timeline import capped_overlap, instant
from kommons.money import parse_units, prorate

T0 = 1_800_000_000
PRICE = parse_units("0.0137")  # per replica-hour


def at(offset: int):  # type: ignore[no-untyped-def]
    return instant(T0 + offset)


def checkpoint(
    pods: dict[str, tuple[list[tuple[int, int]], int | None]],
    *,
    observed: int,
    complete: int | None = None,
) -> PlacementMetering:
    return PlacementMetering(
        observed_at=at(observed),
        complete_since=at(complete) if complete is not None else None,
        pods=[
            PodMetering(
                uid=uid,
                ready_since=at(since) if since is not None else None,
                intervals=[ReadyInterval(start=at(a), end=at(b)) for a, b in closed] or None,
            )
            for uid, (closed, since) in pods.items()
        ],
    )


def facts(
    *,
    created: int = 0,
    deleted: int | None = None,
    replicas: int = 2,
    outages: list[tuple[int, int | None]] | None = None,
    received: int = 10_000,
) -> Facts:
    return Facts(
        created=T0 + created,
        deleted=None if deleted is None else T0 + deleted,
        replicas=replicas,
        outages=[(T0 + a, None if b is None else T0 + b) for a, b in outages or []],
        received=T0 + received,
    )


def rel(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted((a - T0, b - T0) for a, b in spans)


# --- acceptance -----------------------------------------------------------------------------


def test_open_interval_ends_at_observed_at_and_the_hubs_clock() -> None:
    m = checkpoint({"a": ([], 10)}, observed=100)
    assert rel(accepted_spans(m, facts())) == [(10, 100)]
    assert rel(accepted_spans(m, facts(received=60))) == [(10, 60)]  # a report from the future


def test_lifetime_clips_before_creation_and_after_deletion() -> None:
    m = checkpoint({"a": ([(0, 50)], 60)}, observed=200)
    assert rel(accepted_spans(m, facts(created=20, deleted=120))) == [(20, 50), (60, 120)]


def test_closed_outage_is_not_billed_even_if_reported() -> None:
    m = checkpoint({"a": ([], 0)}, observed=300)
    got = rel(accepted_spans(m, facts(outages=[(100, 180)])))
    assert got == [(0, 100), (180, 300)]


def test_ongoing_outage_stops_billing_at_the_last_heartbeat() -> None:
    m = checkpoint({"a": ([], 0)}, observed=300)
    assert rel(accepted_spans(m, facts(outages=[(5, 8), (120, None)]))) == [(0, 5), (8, 120)]


def test_fencing_superseded_placement_and_its_replacement_never_overlap() -> None:
    # old placement deleted at 100 (superseded); the new one created at 100
    old = checkpoint({"a": ([], 0)}, observed=400)
    new = checkpoint({"b": ([], 90)}, observed=400)  # a pod claiming time before creation
    old_spans = accepted_spans(old, facts(deleted=100))
    new_spans = accepted_spans(new, facts(created=100))
    assert rel(old_spans) == [(0, 100)]
    assert rel(new_spans) == [(100, 400)]


def test_at_most_replicas_pods_at_once() -> None:
    m = checkpoint({"a": ([], 0), "b": ([], 0), "c": ([(10, 20)], None)}, observed=100)
    f = facts(replicas=2)
    split = accepted_by_epoch(m, f, [EpochWindow(1, T0, T0 + 100)])
    assert split == {1: 200}  # three pods claimed 210 replica-seconds; two were asked for


def test_epoch_split_at_boundaries_is_exact() -> None:
    m = checkpoint({"a": ([(50, 150)], 190), "b": ([], 99)}, observed=260)
    epochs = [EpochWindow(1, T0, T0 + 100), EpochWindow(2, T0 + 100, T0 + 200)]
    split = accepted_by_epoch(m, facts(received=250), epochs)
    # a: [50,150) + [190,250); b: [99,250)
    assert split == {1: 50 + 1, 2: 50 + 10 + 100}


def test_capped_overlap_counts_nothing_outside_the_window() -> None:
    assert capped_overlap([(0, 10), (5, 30)], 5, (10, 20)) == 10
    assert capped_overlap([], 5, (0, 20)) == 0


# --- ledger ---------------------------------------------------------------------------------


def epochs(*phases: str, length: int = 100) -> dict[int, Epoch]:
    return {
        i + 1: Epoch(EpochWindow(i + 1, T0 + i * length, T0 + (i + 1) * length), phase)  # type: ignore[arg-type]
        for i, phase in enumerate(phases)
    }


def report(m: PlacementMetering, f: Facts, uid: str = "p1") -> Report:
    return Report(uid, "prov-a", "acct", PRICE, m, f)


def test_ledger_sets_usage_per_epoch_and_replay_is_idempotent() -> None:
    m = checkpoint({"a": ([], 50)}, observed=150)
    book = ledger(None, None, [report(m, facts())], epochs("Open", "Open"))
    assert [(u.epoch_id, u.ready_seconds) for u in book.usage] == [(1, 50), (2, 50)]
    assert book.usage[0].amount == "0.00019"  # prorate(13700, 50) = 190.27 → 190 base units
    assert parse_units(book.usage[0].amount) == prorate(PRICE, 50)
    again = ledger(book.usage, book.cost, [report(m, facts())], epochs("Open", "Open"))
    assert again.usage == book.usage
    assert again.cost == book.cost
    assert book.cost.accrued == "0.00038"
    assert book.cost.last_metered_at == at(150)


def test_amount_rounds_down_once_on_the_cumulative_seconds() -> None:
    m1 = checkpoint({"a": ([], 0)}, observed=1)
    m2 = checkpoint({"a": ([], 0)}, observed=2)
    one = ledger(None, None, [report(m1, facts())], epochs("Open"))
    two = ledger(one.usage, one.cost, [report(m2, facts())], epochs("Open"))
    assert parse_units(two.usage[0].amount) == prorate(PRICE, 2) == 7  # not 3 + 3


def test_only_open_epochs_change_and_late_time_is_counted() -> None:
    stored = [
        LeaseUsage(
            epoch_id=1,
            provider="prov-a",
            placement_uid="p1",
            billing_account="acct",
            ready_seconds=40,
            amount="0.000152",
        )
    ]
    m = checkpoint({"a": ([], 50)}, observed=150)  # claims 50 s in epoch 1
    book = ledger(stored, None, [report(m, facts())], epochs("Sealed", "Open"))
    by_epoch = {u.epoch_id: u for u in book.usage}
    assert by_epoch[1] == stored[0]
    assert by_epoch[2].ready_seconds == 50
    assert book.late_seconds == 10
    assert book.late == {(1, "p1"): 10}


def test_settled_epochs_count_no_late_time() -> None:
    # A confirmed epoch's entries were folded into cost.settled: nothing left to compare with.
    m = checkpoint({"a": ([], 50)}, observed=150)
    for phase in ("Confirmed", "Failed"):
        book = ledger(None, None, [report(m, facts())], epochs(phase, "Open"))
        assert book.late == {}
        assert [u.epoch_id for u in book.usage] == [2]


def test_epoch_before_complete_since_keeps_its_entry() -> None:
    stored = [
        LeaseUsage(
            epoch_id=1,
            provider="prov-a",
            placement_uid="p1",
            billing_account="acct",
            ready_seconds=70,
            amount="0.000266",
        )
    ]
    m = checkpoint({"a": ([], 80)}, observed=150, complete=60)  # [.., 60) pruned
    book = ledger(stored, None, [report(m, facts())], epochs("Open", "Open"))
    by_epoch = {u.epoch_id: u for u in book.usage}
    assert by_epoch[1].ready_seconds == 70
    assert by_epoch[2].ready_seconds == 50


def test_time_in_no_epoch_is_not_billed() -> None:
    m = checkpoint({"a": ([], 250)}, observed=300)
    book = ledger(None, None, [report(m, facts())], epochs("Open", "Open"))
    assert book.usage == []
    assert book.cost.accrued == "0"


def test_confirmed_epochs_fold_into_settled_and_accrued_holds() -> None:
    m = checkpoint({"a": ([], 0)}, observed=200)
    open_book = ledger(None, None, [report(m, facts())], epochs("Open", "Open"))
    folded = ledger(
        open_book.usage, open_book.cost, [report(m, facts())], epochs("Confirmed", "Open")
    )
    assert [u.epoch_id for u in folded.usage] == [2]
    assert folded.cost.settled == open_book.usage[0].amount
    assert folded.cost.accrued == open_book.cost.accrued
    # folding twice (a replayed step) does not fold again
    replay = ledger(folded.usage, folded.cost, [report(m, facts())], epochs("Confirmed", "Open"))
    assert replay.cost == folded.cost


def test_a_placement_gone_keeps_its_entries_and_others_are_summed() -> None:
    stored = [
        LeaseUsage(
            epoch_id=1,
            provider="prov-b",
            placement_uid="gone",
            billing_account="acct",
            ready_seconds=100,
            amount="0.00038",
        )
    ]
    m = checkpoint({"a": ([], 0)}, observed=100)
    book = ledger(stored, LeaseCost(accrued="0.00038"), [report(m, facts())], epochs("Open"))
    assert {u.placement_uid for u in book.usage} == {"gone", "p1"}
    assert parse_units(book.cost.accrued) == parse_units("0.00038") + prorate(PRICE, 100)


def test_awaiting_settlement_lists_unsettled_epochs_with_usage() -> None:
    usage = [
        LeaseUsage(
            epoch_id=i,
            provider="p",
            placement_uid="u",
            billing_account="a",
            ready_seconds=1,
            amount="0.000001",
        )
        for i in (1, 2, 3)
    ]
    assert awaiting_settlement(usage, epochs("Confirmed", "Sealed", "Failed")) == [2]
    assert awaiting_settlement(usage, {}) == []
    assert awaiting_settlement(None, epochs("Open")) == []


# --- outages --------------------------------------------------------------------------------


def test_outage_opens_at_the_last_heartbeat_and_closes_when_seen_again() -> None:
    opened = outages_after(None, unreachable=True, last_heartbeat=at(100), now=at(130))
    assert opened == [Outage(start=at(100))]
    assert outages_after(opened, unreachable=True, last_heartbeat=at(100), now=at(140)) is None
    closed = outages_after(opened, unreachable=False, last_heartbeat=at(200), now=at(201))
    assert closed == [Outage(start=at(100), end=at(201))]
    assert outages_after(closed, unreachable=False, last_heartbeat=at(300), now=at(300)) is None
    assert windows(closed) == [(T0 + 100, T0 + 201)]
    never = outages_after(None, unreachable=True, last_heartbeat=None, now=at(7))
    assert never == [Outage(start=at(7))]


def test_outages_are_bounded() -> None:
    current: list[Outage] = []
    for i in range(OUTAGE_LIMIT + 5):
        current = (
            outages_after(current, unreachable=True, last_heartbeat=at(10 * i), now=at(10 * i + 1))
            or current
        )
        current = (
            outages_after(current, unreachable=False, last_heartbeat=None, now=at(10 * i + 5))
            or current
        )
    assert len(current) == OUTAGE_LIMIT
    assert current[-1].start == at(10 * (OUTAGE_LIMIT + 4))
