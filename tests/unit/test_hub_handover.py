"""A going lease's usage merged into an epoch's ``status.departed`` (kommons.hub.handover).

The conditional write itself runs against the real API server in
``tests/integration/test_metering.py``.
"""

from __future__ import annotations

from typing import Any

from kommons.hub.handover import merged_departed


def entry(uid: str, amount: str = "0.5", lease: str = "team-a/web") -> dict[str, Any]:
    return {
        "lease": lease,
        "leaseUid": "lease-1",
        "placementUid": uid,
        "provider": "prov-a",
        "billingAccount": "acct",
        "readySeconds": 60,
        "amount": amount,
    }


def test_entries_are_added_after_the_others() -> None:
    other = entry("p0", lease="team-b/job")
    assert merged_departed([other], [entry("p2"), entry("p1")]) == [
        other,
        entry("p1"),
        entry("p2"),
    ]


def test_a_retried_hand_over_writes_nothing() -> None:
    existing = [entry("p0", lease="team-b/job"), entry("p1")]
    assert merged_departed(existing, [entry("p1")]) is None


def test_a_placements_entry_is_replaced_not_added_twice() -> None:
    merged = merged_departed([entry("p1", "0.5")], [entry("p1", "0.75")])
    assert merged == [entry("p1", "0.75")]
