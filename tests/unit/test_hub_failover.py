"""Unit tests of failover and fencing in one lease step (``kommons.hub.failover`` via the plan).

Behaviour matrix (situation -> plan):

- new lease -> its placement carries fencing token 1; ``status.lastFencingToken`` 1.
- provider Unreachable, another fits -> replacement created (higher token) and the old
  placement deleted in the same plan, after it; ending FailedOver; history entry FailedOver
  (provider, to, replicas, reason ProviderUnreachable); Warning Event FailedOver; condition
  Relocated=True reason FailedOver.
- provider Unreachable, nothing else fits -> nothing deleted (fail safe), Scheduled=False
  ReplacementPending naming the provider; its replicas are not counted ready: a lease that
  ran is Degraded 0/2, Ready=False ProviderUnreachable naming the provider, that it is
  Unreachable and that no other provider fits, with a Warning Event (once); the provider
  reachable again and its placement still reporting ready -> Running, Ready=True, nothing
  deleted, no Event.
- provider Unreachable, another fits -> the lease counts only the live replacement (0/2,
  ReplicasStarting), never the superseded placement.
- replicas not ready for a provider reason (PodsUnschedulable): before replace_after -> kept,
  re-check at the deadline; after -> moved elsewhere, history Replaced with that reason.
- not ready for a tenant reason (ImagePullBackOff) long past the deadline -> kept.
- a provider in the history as Replaced is avoided by later decisions (durable memory).
- a provider holding a deleting placement of the lease is avoided.
- lease deleted, its only placement on an Unreachable provider -> placement deleted and the
  finalizer removed in the same step (bounded deletion); a reachable one is waited for.
- history keeps the newest HISTORY_LIMIT entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kommons.api import HISTORY_LIMIT, ComputeLease, LeaseHistoryEntry, LeasePlacement
from kommons.hub import failover
from kommons.hub.market_view import MarketView
from kommons.hub.plan import LeasePlan, World, plan_lease
from tests.unit.test_hub_plan import (
    NOW,
    POOL,
    condition,
    lease_body,
    lease_of,
    market,
    placed,
    provider_body,
    step,
)


def fo_step(
    lease: ComputeLease,
    view: MarketView,
    placements: list[LeasePlacement],
    *,
    unreachable: Mapping[str, str] | None = None,
    now: datetime = NOW,
    replace_after: float = 300.0,
) -> LeasePlan:
    view.set_lease(lease)
    for placement in placements:
        if placement.metadata.deletion_timestamp is None:
            view.set_placement(placement)
    world = World(
        placements=placements,
        pool=POOL,
        account="acct",
        namespace_labels={},
        market=view,
        now=now,
        unreachable=unreachable or {},
        replace_after=replace_after,
    )
    return plan_lease(lease, world)


def with_status(placement: LeasePlacement, status: dict[str, Any]) -> LeasePlacement:
    body = placement.to_api()
    body["status"] = status
    return LeasePlacement.model_validate(body)


def lease_with(status: dict[str, Any], **spec: Any) -> ComputeLease:
    body = lease_body(**spec)
    body["status"] = status
    return ComputeLease.model_validate(body)


def unschedulable(placement: LeasePlacement, reason: str = "PodsUnschedulable") -> LeasePlacement:
    return with_status(
        placement,
        {
            "readyReplicas": 0,
            "phase": "Pending",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": reason,
                    "message": "2 pod(s) Pending: 0/3 nodes are available: 3 Too many pods.",
                    "lastTransitionTime": "2026-12-01T11:59:00Z",
                }
            ],
        },
    )


def test_new_placement_carries_the_first_fencing_token() -> None:
    view = market(provider_body("p1"))
    plan = step(lease_of(), view)
    assert [p.spec.fencing_token for p in plan.create] == [1]
    assert plan.status is not None
    assert plan.status.last_fencing_token == 1


def test_unreachable_provider_fails_over_with_a_higher_token() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    lease = lease_of()
    old = placed(step(lease, view), ready=2)
    assert old[0].spec.provider == "p1"
    lease = lease_with({"lastFencingToken": 1})

    plan = fo_step(lease, view, old, unreachable={"p1": "no heartbeat for 31s (timeout 30s)"})

    assert [(p.spec.provider, p.spec.replicas, p.spec.fencing_token) for p in plan.create] == [
        ("p2", 2, 2)
    ]
    assert [p.spec.provider for p in plan.delete] == ["p1"]
    assert [(e.provider, e.kind, e.placement_uid) for e in plan.endings] == [
        ("p1", "FailedOver", "p-0")
    ]
    assert plan.status is not None
    assert plan.status.last_fencing_token == 2
    [entry] = plan.status.history or []
    assert (entry.type, entry.provider, entry.to, entry.replicas, entry.reason) == (
        "FailedOver",
        "p1",
        ["p2"],
        2,
        "ProviderUnreachable",
    )
    assert "no heartbeat for 31s" in (entry.message or "")
    warnings = [(e.type, e.reason) for e in plan.events if e.type == "Warning"]
    assert warnings == [("Warning", "FailedOver")]
    status, reason, message = condition(plan, failover.RELOCATED)
    assert (status, reason) == ("True", "FailedOver")
    assert "2 replica(s) moved from p1 to p2" in message


def test_unreachable_provider_is_kept_when_nothing_else_fits() -> None:
    view = market(provider_body("p1"))
    old = placed(step(lease_of(), view), ready=2)

    plan = fo_step(lease_of(), view, old, unreachable={"p1": "no heartbeat for 40s"})

    assert plan.create == []
    assert plan.delete == []
    assert plan.endings == []
    status, reason, message = condition(plan, "Scheduled")
    assert (status, reason) == ("False", "ReplacementPending")
    assert "p1 is Unreachable" in message


def test_replicas_on_an_unreachable_provider_are_not_counted_while_nothing_else_fits() -> None:
    view = market(provider_body("p1"))
    old = placed(step(lease_of(), view), ready=2)
    ran = lease_with({"phase": "Running", "startedAt": "2026-12-01T11:59:30Z"})
    why = {"p1": "no heartbeat for 21s (timeout 20s)"}

    lost = fo_step(ran, view, old, unreachable=why)

    assert (lost.create, lost.delete, lost.endings) == ([], [], [])  # fail safe
    assert lost.status is not None
    assert (lost.status.phase, lost.status.ready, lost.status.ready_replicas) == (
        "Degraded",
        "0/2",
        0,
    )
    status, reason, message = condition(lost, "Ready")
    assert (status, reason) == ("False", "ProviderUnreachable")
    assert "2 replica(s) on p1 (provider p1 is Unreachable: no heartbeat for 21s" in message
    assert "; no other provider fits: " in message
    assert [(e.type, e.reason) for e in lost.events if e.reason == "ProviderUnreachable"] == [
        ("Warning", "ProviderUnreachable")
    ]
    # planned again while still Unreachable: no second Event, nothing new to write
    still = fo_step(lease_with(lost.status.to_api()), view, old, unreachable=why)
    assert not [e for e in still.events if e.reason == "ProviderUnreachable"]
    assert still.delete == []
    assert still.status is None

    back = fo_step(lease_with(lost.status.to_api()), view, old)

    assert (back.create, back.delete, back.endings) == ([], [], [])
    assert back.status is not None
    assert (back.status.phase, back.status.ready) == ("Running", "2/2")
    assert condition(back, "Ready")[:2] == ("True", "AllReplicasReady")
    assert not [e for e in back.events if e.type == "Warning"]


def test_only_the_live_replacement_counts_after_a_failover() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    old = placed(step(lease_of(), view), ready=2)
    ran = lease_with({"phase": "Running", "startedAt": "2026-12-01T11:59:30Z"})

    plan = fo_step(ran, view, old, unreachable={"p1": "no heartbeat for 21s"})

    assert [p.spec.provider for p in plan.delete] == ["p1"]
    assert plan.status is not None
    assert [(s.provider, s.ready_replicas) for s in plan.status.placements or ()] == [("p2", 0)]
    assert (plan.status.phase, plan.status.ready) == ("Degraded", "0/2")
    assert condition(plan, "Ready")[1] == "ReplicasStarting"


def test_stuck_replicas_move_after_replace_after_with_the_provider_reason() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    first = placed(step(lease_of(), view), created="2026-12-01T11:59:00Z")
    stuck = [unschedulable(p) for p in first]

    early = fo_step(lease_of(), view, stuck, replace_after=300)
    assert early.create == []
    assert early.delete == []
    assert early.recheck_after is not None
    assert early.recheck_after <= 240.0

    late = fo_step(lease_of(), view, stuck, now=NOW + timedelta(minutes=5), replace_after=300)
    assert [p.spec.provider for p in late.create] == ["p2"]
    assert [p.spec.provider for p in late.delete] == ["p1"]
    assert late.status is not None
    [entry] = late.status.history or []
    assert (entry.type, entry.provider, entry.reason) == ("Replaced", "p1", "PodsUnschedulable")
    assert condition(late, failover.RELOCATED)[:2] == ("True", "Replaced")


def test_tenant_reasons_are_never_re_placed() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    stuck = [
        unschedulable(p, reason="ImagePullBackOff")
        for p in placed(step(lease_of(), view), created="2026-12-01T11:59:00Z")
    ]
    plan = fo_step(lease_of(), view, stuck, now=NOW + timedelta(hours=1), replace_after=300)
    assert plan.create == []
    assert plan.delete == []


def test_history_of_replacement_keeps_the_lease_away_from_that_provider() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    history = [{"time": "2026-12-01T11:00:00Z", "type": "Replaced", "provider": "p1"}]
    plan = fo_step(lease_with({"history": history}), view, [])
    assert [p.spec.provider for p in plan.create] == ["p2"]


def test_provider_with_a_deleting_placement_is_avoided() -> None:
    view = market(provider_body("p1", cpu_price="0.01"), provider_body("p2"))
    body = placed(step(lease_of(), view))[0].to_api()
    body["metadata"]["deletionTimestamp"] = "2026-12-01T11:59:30Z"
    body["spec"]["fencingToken"] = 4
    deleting = LeasePlacement.model_validate(body)
    view.remove_placement("uid-web", "p1", "team-a/web")

    plan = fo_step(lease_of(), view, [deleting])
    assert [(p.spec.provider, p.spec.fencing_token) for p in plan.create] == [("p2", 5)]


def test_deleting_a_lease_does_not_wait_for_an_unreachable_provider() -> None:
    view = market(provider_body("p1"))
    old = placed(step(lease_of(), view), ready=2)
    body = lease_body()
    body["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    deleting = ComputeLease.model_validate(body)

    gone = fo_step(deleting, view, old, unreachable={"p1": "no heartbeat for 60s"})
    assert [p.spec.provider for p in gone.delete] == ["p1"]
    assert gone.remove_finalizer

    waits = fo_step(deleting, view, old)
    assert [p.spec.provider for p in waits.delete] == ["p1"]
    assert not waits.remove_finalizer


def test_history_keeps_the_newest_entries() -> None:
    old = [
        LeaseHistoryEntry(time=datetime(2026, 1, 1, tzinfo=UTC), type="FailedOver", replicas=i)
        for i in range(HISTORY_LIMIT)
    ]
    new = LeaseHistoryEntry(time=datetime(2026, 2, 1, tzinfo=UTC), type="Replaced", replicas=99)
    merged = failover.with_history(old, [new]) or []
    assert len(merged) == HISTORY_LIMIT
    assert merged[-1].replicas == 99
    assert merged[0].replicas == 1
