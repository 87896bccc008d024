"""Unit tests of the payment guard (``kommons.hub.payment``) and its hook in ``plan_lease``.

Behaviour matrix (situation -> outcome):

Account (``assess``), horizon 3600 s, grace 900 s:
- balance less unsettled covers burn x horizon -> Covered, PaymentOK=True EscrowCovers, the
  numbers in the message; exactly covered counts as covered.
- short -> Low, lowSince = now, graceEndsAt = now + grace, PaymentOK=False InsufficientEscrow.
- short, grace running -> Low, lowSince kept; grace over -> Suspended (PaymentSuspended);
  Suspended and still short -> Suspended.
- top-up (Suspended, now covered) -> Covered, lowSince cleared.
- read failed -> last known figures and standing kept, balanceStale, message says stale; a Low
  account whose grace ended is NOT suspended on a stale read; never read -> Unknown.
- zero price -> burn 0: an empty escrow covers it.
- status writes: balanceCheckedAt alone rewritten only every 5 minutes; anything else at once.
Ledger: several leases on one account add up; tenant-suspended and deleting leases burn
nothing; payment-suspended ones still count; unsettled from usage entries by account.
Which account: several select a namespace -> sorted, the first pays, the lease message says so.

Lease (``plan_lease``):
- guard off -> PaymentOK=True BillingAccountFound, never suspended (a marker left is cleared).
- Covered -> PaymentOK=True; Low -> PaymentOK=False with balance, burn and horizon, a Warning
  Event, still running.
- Suspended -> placements updated with suspend, spec untouched, status.paymentSuspendedAt,
  phase Suspended, Ready=False PaymentSuspended, Warning Event; a new lease is not placed.
- top-up -> placements resume on their providers, marker cleared, Event PaymentResumed.
- stale Suspended -> stays suspended; account never read -> the marker is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.api import BillingAccount, BillingAccountStatus, ComputeLease, LeasePlacement
from kommons.hub.payment import (
    Ledger,
    PaymentSettings,
    Reading,
    accounts_selecting,
    assess,
    billed_namespaces,
    ledgers,
    needed,
    status_due,
)
from kommons.hub.plan import LeasePlan, World, plan_lease
from kommons.money import parse_units
from tests.unit.test_hub_plan import (
    POOL,
    lease_body,
    lease_of,
    market,
    placed,
    provider_body,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = PaymentSettings(horizon_seconds=3600, grace_seconds=900)
UNIT = 10**6  # base units of one token (6 decimals)


def account(
    name: str = "acct", status: BillingAccountStatus | None = None, **labels: str
) -> BillingAccount:
    body: dict[str, Any] = {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "BillingAccount",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "namespaceSelector": {"matchLabels": labels or {"team": "a"}},
        },
    }
    if status is not None:
        body["status"] = status.to_api()
    return BillingAccount.model_validate(body)


def judge(
    balance: int | None,
    *,
    burn: int = 2 * UNIT,
    unsettled: int = 0,
    previous: BillingAccountStatus | None = None,
    now: datetime = NOW,
) -> BillingAccountStatus:
    reading = Reading(balance) if balance is not None else Reading(None, "ConnectionError")
    return assess(
        account(status=previous),
        reading=reading,
        ledger=Ledger(burn, unsettled),
        namespaces=["team-a"],
        settings=SETTINGS,
        now=now,
    )


def payment_ok(status: BillingAccountStatus) -> tuple[str, str, str]:
    condition = next(c for c in status.conditions or () if c.type == "PaymentOK")
    return condition.status, condition.reason, condition.message


# --- the account ------------------------------------------------------------------------


def test_covered_escrow_says_so_with_the_numbers() -> None:
    status = judge(10 * UNIT, unsettled=1 * UNIT)
    assert status.standing == "Covered"
    assert status.escrow_balance == "10"
    assert status.accrued_unsettled == "1"
    assert status.burn_per_hour == "2"
    assert status.balance_checked_at == NOW
    assert status.low_since is None
    assert status.namespaces == ["team-a"]
    ok, reason, message = payment_ok(status)
    assert (ok, reason) == ("True", "EscrowCovers")
    assert "escrow 10 less unsettled 1 leaves 9" in message
    assert "3600s of the projected burn of 2/h" in message


def test_exactly_covered_counts_as_covered() -> None:
    assert judge(3 * UNIT, unsettled=1 * UNIT).standing == "Covered"
    assert judge(3 * UNIT - 1, unsettled=1 * UNIT).standing == "Low"


def test_short_escrow_is_low_and_the_grace_starts() -> None:
    status = judge(1 * UNIT)
    assert status.standing == "Low"
    assert status.low_since == NOW
    assert status.grace_ends_at == NOW + timedelta(seconds=900)
    ok, reason, message = payment_ok(status)
    assert (ok, reason) == ("False", "InsufficientEscrow")
    assert "short of 2" in message
    assert "at least 1 is deposited" in message
    assert NOW.replace(minute=15).isoformat() in message


def test_grace_running_keeps_low_then_suspends_when_it_is_over() -> None:
    low = judge(1 * UNIT)
    running = judge(1 * UNIT, previous=low, now=NOW + timedelta(seconds=899))
    assert running.standing == "Low"
    assert running.low_since == NOW
    over = judge(1 * UNIT, previous=running, now=NOW + timedelta(seconds=900))
    assert over.standing == "Suspended"
    assert payment_ok(over)[:2] == ("False", "PaymentSuspended")
    assert "the leases are suspended until at least 1 is deposited" in payment_ok(over)[2]
    later = judge(1 * UNIT, previous=over, now=NOW + timedelta(seconds=2000))
    assert later.standing == "Suspended"
    assert later.low_since == NOW


def test_top_up_covers_again() -> None:
    suspended = judge(1 * UNIT, previous=judge(1 * UNIT), now=NOW + timedelta(seconds=1000))
    assert suspended.standing == "Suspended"
    topped = judge(5 * UNIT, previous=suspended, now=NOW + timedelta(seconds=1030))
    assert topped.standing == "Covered"
    assert topped.low_since is None
    assert topped.grace_ends_at is None
    assert payment_ok(topped)[:2] == ("True", "EscrowCovers")


def test_a_stale_read_keeps_the_last_known_state_and_never_suspends() -> None:
    low = judge(1 * UNIT)
    stale = judge(None, previous=low, now=NOW + timedelta(seconds=1000))  # grace is over
    assert stale.standing == "Low"
    assert stale.balance_stale is True
    assert stale.escrow_balance == "1"
    assert stale.balance_checked_at == NOW
    ok, reason, message = payment_ok(stale)
    assert (ok, reason) == ("False", "InsufficientEscrow")
    assert "balance stale" in message
    assert "no lease is suspended on a stale read" in message
    fresh = judge(1 * UNIT, previous=stale, now=NOW + timedelta(seconds=1030))
    assert fresh.standing == "Suspended"  # only a fresh read suspends
    assert fresh.balance_stale is None


def test_never_read_is_unknown() -> None:
    status = judge(None)
    assert status.standing is None
    ok, reason, message = payment_ok(status)
    assert (ok, reason) == ("Unknown", "BalanceUnknown")
    assert "ConnectionError" in message


def test_zero_price_burns_nothing() -> None:
    status = judge(0, burn=0)
    assert status.standing == "Covered"
    assert status.burn_per_hour == "0"


def test_needed_rounds_up_to_a_base_unit() -> None:
    assert needed(1, 1800) == 1
    assert needed(3600, 1) == 1
    assert needed(2 * UNIT, 3600) == 2 * UNIT
    assert needed(0, 3600) == 0


def test_status_writes_are_bounded_while_nothing_moves() -> None:
    first = judge(10 * UNIT)
    again = judge(10 * UNIT, previous=first, now=NOW + timedelta(seconds=30))
    assert not status_due(first, again, now=NOW + timedelta(seconds=30))
    later = judge(10 * UNIT, previous=first, now=NOW + timedelta(seconds=300))
    assert status_due(first, later, now=NOW + timedelta(seconds=300))
    changed = judge(9 * UNIT, previous=first, now=NOW + timedelta(seconds=30))
    assert status_due(first, changed, now=NOW + timedelta(seconds=30))
    assert status_due(None, first, now=NOW)


# --- the ledger and which account pays --------------------------------------------------


def _lease(name: str, *, suspend: bool = False, deleting: bool = False, **status: Any) -> Any:
    body = lease_body(suspend=suspend)
    body["metadata"].update(name=name, uid=f"uid-{name}")
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    if status:
        body["status"] = status
    return ComputeLease.model_validate(body)


def _placement(lease: str, provider: str, replicas: int, price: str, acct: str) -> LeasePlacement:
    return LeasePlacement.model_validate(
        {
            "metadata": {"name": lease, "namespace": f"kommons-provider-{provider}"},
            "spec": {
                "leaseRef": {"namespace": "team-a", "name": lease, "uid": f"uid-{lease}"},
                "provider": provider,
                "replicas": replicas,
                "resources": {"cpu": "1", "memory": "1Gi"},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
                "pricePerHour": price,
                "billingAccount": acct,
                "suspend": provider == "p-sus",
            },
        }
    )


def test_several_leases_on_one_account_add_up() -> None:
    usage = {
        "epochId": 1,
        "provider": "p1",
        "placementUid": "x",
        "readySeconds": 10,
    }
    leases = [
        _lease("a", usage=[{**usage, "billingAccount": "acct", "amount": "0.25"}]),
        _lease("b", usage=[{**usage, "billingAccount": "acct", "amount": "0.5"}]),
        _lease("paused", suspend=True),
        _lease("gone", deleting=True),
        _lease("hub-suspended", paymentSuspendedAt="2026-12-01T11:00:00Z"),
        _lease("other"),
    ]
    placements = {
        "uid-a": [_placement("a", "p1", 2, "0.5", "acct"), _placement("a", "p2", 1, "1", "acct")],
        "uid-b": [_placement("b", "p1", 1, "0.25", "acct")],
        "uid-paused": [_placement("paused", "p1", 4, "1", "acct")],
        "uid-gone": [_placement("gone", "p1", 4, "1", "acct")],
        "uid-hub-suspended": [_placement("hub-suspended", "p-sus", 1, "2", "acct")],
        "uid-other": [_placement("other", "p1", 1, "7", "acct2")],
    }
    result = ledgers(leases, placements)
    assert result["acct"] == Ledger(parse_units("4.25"), parse_units("0.75"))
    assert result["acct2"] == Ledger(7 * UNIT, 0)


def test_several_accounts_selecting_one_namespace_first_by_name_pays() -> None:
    accounts = {"zeta": account("zeta"), "alpha": account("alpha"), "b": account("b", team="b")}
    assert accounts_selecting(accounts, {"team": "a"}) == ["alpha", "zeta"]
    assert accounts_selecting(accounts, {"team": "c"}) == []
    namespaces = {"ns-a": {"team": "a"}, "ns-b": {"team": "b"}, "ns-c": {}}
    assert billed_namespaces(accounts, namespaces) == {
        "alpha": ["ns-a"],
        "zeta": [],
        "b": ["ns-b"],
    }


# --- the lease --------------------------------------------------------------------------


def step(
    lease: ComputeLease,
    view: Any,
    *,
    placements: list[LeasePlacement] | None = None,
    status: BillingAccountStatus | None = None,
    guard: bool = True,
    selecting: tuple[str, ...] = ("acct",),
    now: datetime = NOW,
) -> LeasePlan:
    view.set_lease(lease)
    for placement in placements or ():
        view.set_placement(placement)
    world = World(
        placements=placements or [],
        pool=POOL,
        account=selecting[0] if selecting else None,
        namespace_labels={},
        market=view,
        now=now,
        selecting=selecting,
        account_status=status,
        payment_guard=guard,
    )
    return plan_lease(lease, world)


def condition(plan: LeasePlan, type_: str) -> tuple[str, str, str]:
    assert plan.status is not None
    found = next(c for c in plan.status.conditions or () if c.type == type_)
    return found.status, found.reason, found.message


def served(lease: ComputeLease, plan: LeasePlan) -> ComputeLease:
    """The lease as served after the plan's status write."""
    assert plan.status is not None
    return lease.model_copy(update={"status": plan.status})


COVERED = judge(10 * UNIT)
LOW = judge(1 * UNIT)
SUSPENDED = judge(1 * UNIT, previous=LOW, now=NOW + timedelta(seconds=900))


def test_guard_off_is_as_before_and_clears_a_left_marker() -> None:
    view = market(provider_body("p1"))
    body = lease_body()
    body["status"] = {"paymentSuspendedAt": "2026-12-01T11:00:00Z"}
    plan = step(ComputeLease.model_validate(body), view, status=SUSPENDED, guard=False)
    assert condition(plan, "PaymentOK") == (
        "True",
        "BillingAccountFound",
        "billed to BillingAccount acct",
    )
    assert plan.status is not None
    assert plan.status.payment_suspended_at is None
    assert plan.create
    assert not plan.create[0].spec.suspend


def test_no_account_is_refused_with_a_clear_condition() -> None:
    view = market(provider_body("p1"))
    plan = step(lease_of(), view, selecting=())
    ok, reason, message = condition(plan, "PaymentOK")
    assert (ok, reason) == ("False", "NoBillingAccount")
    assert "no BillingAccount selects namespace team-a" in message
    assert condition(plan, "Scheduled")[1] == "NoBillingAccount"
    assert plan.create == []


def test_covered_account_runs_the_lease() -> None:
    view = market(provider_body("p1"))
    plan = step(lease_of(), view, status=COVERED)
    ok, reason, message = condition(plan, "PaymentOK")
    assert (ok, reason) == ("True", "EscrowCovers")
    assert message == (
        "billed to BillingAccount acct: its escrow covers the projected burn for the payment"
        " horizon"
    )  # no figures: they move with every metering report
    assert len(plan.create) == 1


def test_low_account_warns_and_keeps_running() -> None:
    view = market(provider_body("p1"))
    lease = lease_of()
    first = step(lease, view, status=COVERED)
    existing = placed(first, ready=2)
    plan = step(served(lease, first), view, placements=existing, status=LOW)
    ok, reason, message = condition(plan, "PaymentOK")
    assert (ok, reason) == ("False", "InsufficientEscrow")
    assert "escrow 1" in message
    assert "burn of 2/h" in message
    assert "3600s" in message
    assert [e.reason for e in plan.events] == ["InsufficientEscrow"]
    assert plan.update == []  # nothing suspended
    assert plan.status is not None
    assert plan.status.payment_suspended_at is None


def test_suspended_account_suspends_the_lease_without_touching_its_spec() -> None:
    view = market(provider_body("p1"))
    lease = lease_of()
    first = step(lease, view, status=COVERED)
    existing = placed(first, ready=2)
    running = served(lease, first)
    plan = step(running, view, placements=existing, status=SUSPENDED)

    assert [p.spec.suspend for p in plan.update] == [True]
    assert running.spec.suspend is False
    assert plan.status is not None
    assert plan.status.payment_suspended_at == NOW
    assert plan.status.phase == "Suspended"
    ok, reason, message = condition(plan, "Ready")
    assert (ok, reason) == ("False", "PaymentSuspended")
    assert "suspended by the hub for payment" in message
    assert condition(plan, "PaymentOK")[:2] == ("False", "PaymentSuspended")
    assert [e.reason for e in plan.events] == ["PaymentSuspended"]

    # the next step keeps it suspended and writes nothing new
    suspended = served(running, plan)
    again = step(suspended, view, placements=plan.update, status=SUSPENDED)
    assert again.writes == 0
    assert again.events == []


def test_a_new_lease_of_a_suspended_account_is_not_placed() -> None:
    view = market(provider_body("p1"))
    plan = step(lease_of(), view, status=SUSPENDED)
    assert plan.create == []
    assert plan.decision is None
    assert plan.status is not None
    assert plan.status.phase == "Suspended"
    assert condition(plan, "Scheduled")[1] == "PaymentSuspended"


def test_top_up_resumes_on_the_same_provider() -> None:
    view = market(provider_body("p1"))
    lease = lease_of()
    first = step(lease, view, status=COVERED)
    existing = placed(first, ready=2)
    suspending = step(served(lease, first), view, placements=existing, status=SUSPENDED)
    paused = served(served(lease, first), suspending)
    topped = judge(10 * UNIT, previous=SUSPENDED, now=NOW + timedelta(seconds=960))

    plan = step(paused, view, placements=suspending.update, status=topped)
    assert [(p.spec.provider, p.spec.suspend) for p in plan.update] == [("p1", False)]
    assert plan.decision is not None  # the capacity is held again
    assert plan.status is not None
    assert plan.status.payment_suspended_at is None
    assert condition(plan, "PaymentOK")[:2] == ("True", "EscrowCovers")
    assert "PaymentResumed" in [e.reason for e in plan.events]


def test_stale_suspended_account_keeps_the_lease_suspended() -> None:
    view = market(provider_body("p1"))
    stale = judge(None, previous=SUSPENDED, now=NOW + timedelta(seconds=1000))
    plan = step(lease_of(), view, status=stale)
    assert plan.status is not None
    assert plan.status.payment_suspended_at is not None
    assert "balance stale" in condition(plan, "PaymentOK")[2]


@pytest.mark.parametrize("status", [None, judge(None)], ids=["no status", "never read"])
def test_unread_account_keeps_the_marker(status: BillingAccountStatus | None) -> None:
    view = market(provider_body("p1"))
    body = lease_body()
    body["status"] = {"paymentSuspendedAt": "2026-12-01T11:00:00Z"}
    plan = step(ComputeLease.model_validate(body), view, status=status)
    assert plan.status is not None
    assert plan.status.payment_suspended_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert condition(plan, "PaymentOK")[:2] == ("True", "BalanceNotRead")
    assert plan.create == []
    fresh = step(lease_of(), view, status=status)  # never suspended: runs
    assert len(fresh.create) == 1


def test_several_accounts_are_named_in_the_lease_condition() -> None:
    view = market(provider_body("p1"))
    plan = step(lease_of(), view, status=COVERED, selecting=("alpha", "zeta"))
    message = condition(plan, "PaymentOK")[2]
    assert message.startswith("billed to BillingAccount alpha")
    assert "BillingAccounts alpha, zeta all select namespace team-a" in message
    assert "alpha, the first by name, pays" in message
