"""Unit tests of one lease step (``kommons.hub.plan.plan_lease``) over the real market view.

Behaviour matrix (situation -> plan):

- new lease, gates pass -> finalizer added; one placement on the cheapest provider at its
  price; decision recorded; Event Scheduled; status Scheduled 0/N; holds committed.
- pool missing / namespace not admitted / no BillingAccount / unsafe template -> nothing
  placed; Scheduled=False with PoolNotFound / NotAllowedByPool / NoBillingAccount /
  InvalidTemplate; PaymentOK reflects the account.
- nothing fits -> waiting for capacity, Unschedulable Warning naming rejections, no writes
  of placements; a provider quoting a zero price is excluded with that reason.
- scale up with a placement on the cheapest provider -> that placement grows, its locked
  price kept even though the provider's price changed.
- scale down -> surplus leaves the most expensive placement first (deleted at 0); each
  provider that loses replicas gets a history entry ScaledDown (provider, replicas removed,
  reason, message saying what is left) and a Normal Event ScaledDown; earlier history kept;
  a stale placement deleted as surplus is recorded the same way; scale up records nothing.
- resources changed -> placement re-placed: in place on the same provider at its current
  price with an Event, or moved (create new + delete old) when it no longer fits there.
- maxPricePerHour below a locked price -> re-placed on a cheaper provider; none cheap enough
  -> kept running, Scheduled=False ReplacementPending.
- suspend -> placements updated with suspend, nothing scheduled.
- deleting -> live placements deleted; finalizer removed once none is left.
- replicas not ready -> ReplicasStarting and a re-check deadline within the timeout; after
  it Ready=False with the provider's reason and a Warning Event.
- nothing changed -> no status write (plan.writes == 0).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.api import ComputeLease, LeasePlacement, ProviderPool
from kommons.api_names import FINALIZER_HUB
from kommons.hub.market_view import MarketView
from kommons.hub.plan import LeasePlan, World, plan_lease

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POOL = ProviderPool.model_validate(
    {"metadata": {"name": "pool"}, "spec": {"strategy": "LowestPrice"}}
)


def provider_body(
    name: str, *, cpu_price: str = "0.02", cpu: str = "8", pods: int = 110, region: str = "eu"
) -> dict[str, Any]:
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "Provider",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "region": region,
            "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
            "pricing": {"cpuCoreHour": cpu_price, "memoryGiBHour": "0.001"},
        },
        "status": {
            "phase": "Ready",
            "nodes": 1,
            "available": {"cpu": cpu, "memory": "64Gi", "pods": pods, "gpus": {}},
        },
    }


def market(*providers: dict[str, Any]) -> MarketView:
    view = MarketView(heartbeat_timeout=30)
    for body in providers:
        view.set_provider(body)
        view.heartbeat(body["metadata"]["name"], "t1")
    return view


def lease_body(**spec: Any) -> dict[str, Any]:
    body_spec: dict[str, Any] = {
        "poolRef": {"name": "pool"},
        "replicas": 2,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "maxPricePerHour": "1",
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
    }
    body_spec.update(spec)
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {
            "name": "web",
            "namespace": "team-a",
            "uid": "uid-web",
            "generation": 1,
            "resourceVersion": "10",
            "finalizers": [FINALIZER_HUB],
            "creationTimestamp": "2026-12-01T11:00:00Z",
        },
        "spec": body_spec,
    }


def lease_of(**spec: Any) -> ComputeLease:
    return ComputeLease.model_validate(lease_body(**spec))


def step(
    lease: ComputeLease,
    view: MarketView,
    *,
    placements: list[LeasePlacement] | None = None,
    pool: ProviderPool | None = POOL,
    account: str | None = "acct",
    labels: dict[str, str] | None = None,
    now: datetime = NOW,
    timeout: float = 120.0,
) -> LeasePlan:
    view.set_lease(lease)
    for placement in placements or ():
        view.set_placement(placement)
    world = World(
        placements=placements or [],
        pool=pool,
        account=account,
        namespace_labels=labels or {},
        market=view,
        now=now,
        ready_timeout=timeout,
    )
    return plan_lease(lease, world)


def placed(
    plan: LeasePlan, *, ready: int = 0, created: str = "2026-12-01T11:59:00Z"
) -> list[LeasePlacement]:
    """The plan's new placements as the API server would serve them back."""
    out = []
    for index, placement in enumerate(plan.create):
        body = placement.to_api()
        body["metadata"].update(uid=f"p-{index}", resourceVersion="1", creationTimestamp=created)
        body["status"] = {"readyReplicas": ready, "phase": "Running"}
        out.append(LeasePlacement.model_validate(body))
    return out


def condition(plan: LeasePlan, type_: str) -> tuple[str, str, str]:
    assert plan.status is not None
    for c in plan.status.conditions or ():
        if c.type == type_:
            return c.status, c.reason, c.message
    raise AssertionError(f"no condition {type_}")


def test_new_lease_is_placed_on_the_cheapest_provider() -> None:
    view = market(provider_body("cheap", cpu_price="0.01"), provider_body("dear"))
    lease = ComputeLease.model_validate(
        {**lease_body(), "metadata": {**lease_body()["metadata"], "finalizers": []}}
    )
    plan = step(lease, view)

    assert plan.add_finalizer
    assert [(p.spec.provider, p.spec.replicas) for p in plan.create] == [("cheap", 2)]
    # 1 core x 0.01 + 1 GiB x 0.001 per replica-hour
    assert plan.create[0].spec.price_per_hour == "0.011"
    assert plan.create[0].metadata.namespace == "kommons-provider-cheap"
    assert plan.decision is not None
    assert plan.decision.feasible == 2
    assert [e.reason for e in plan.events] == ["Scheduled"]
    assert plan.status is not None
    assert plan.status.phase == "Scheduled"
    assert plan.status.ready == "0/2"
    assert condition(plan, "Scheduled")[:2] == ("True", "Placed")
    assert condition(plan, "PaymentOK")[:2] == ("True", "BillingAccountFound")


@pytest.mark.parametrize(
    ("pool", "account", "template", "reason"),
    [
        (None, "acct", None, "PoolNotFound"),
        (
            ProviderPool.model_validate(
                {
                    "metadata": {"name": "pool"},
                    "spec": {"tenantNamespaceSelector": {"matchLabels": {"team": "b"}}},
                }
            ),
            "acct",
            None,
            "NotAllowedByPool",
        ),
        (POOL, None, None, "NoBillingAccount"),
        (
            POOL,
            "acct",
            {"spec": {"hostNetwork": True, "containers": [{"name": "a", "image": "x"}]}},
            "InvalidTemplate",
        ),
    ],
)
def test_gates_block_scheduling(
    pool: ProviderPool | None, account: str | None, template: Any, reason: str
) -> None:
    view = market(provider_body("p1"))
    lease = lease_of(template=template) if template else lease_of()
    plan = step(lease, view, pool=pool, account=account)

    assert plan.create == []
    assert plan.decision is None
    assert condition(plan, "Scheduled")[:2] == ("False", reason)
    assert condition(plan, "PaymentOK")[0] == ("True" if account else "False")
    assert plan.status is not None
    assert plan.status.phase == "Pending"


def test_unschedulable_waits_with_reasons() -> None:
    view = market(provider_body("small", cpu="1"), provider_body("free", cpu_price="0"))
    plan = step(lease_of(), view)

    assert plan.create == []
    assert plan.waiting_for_capacity
    status, reason, message = condition(plan, "Scheduled")
    assert (status, reason) == ("False", "Unschedulable")
    assert "free: not ready (phase Invalid: quotes a zero price" in message
    assert plan.events[0].type == "Warning"
    assert plan.events[0].reason == "Unschedulable"
    assert plan.status is not None
    assert plan.status.decision is not None
    assert plan.status.decision.feasible == 1  # "small" fits one replica, not two


def test_pods_allowance_is_capacity() -> None:
    view = market(provider_body("one-pod", pods=1), provider_body("roomy", cpu_price="0.05"))
    plan = step(lease_of(), view)
    # the cheap provider has cpu for both replicas but a pod slot for one only
    assert [(p.spec.provider, p.spec.replicas) for p in plan.create] == [
        ("one-pod", 1),
        ("roomy", 1),
    ]


def test_burst_holds_capacity_between_decisions() -> None:
    view = market(provider_body("p1", cpu="3"), provider_body("p2", cpu_price="0.05", cpu="3"))
    first = step(lease_of(), view)
    assert first.decision is not None
    assert first.request is not None
    view.commit(first.decision, first.request)
    second_body = lease_body()
    second_body["metadata"].update(name="api", uid="uid-api")
    second = step(ComputeLease.model_validate(second_body), view)

    assert [(p.spec.provider, p.spec.replicas) for p in first.create] == [("p1", 2)]
    # p1 has 3 cpu: 2 are held for the first lease, so only 1 replica of the second fits
    assert [(p.spec.provider, p.spec.replicas) for p in second.create] == [("p1", 1), ("p2", 1)]


def test_scale_up_keeps_the_locked_price() -> None:
    view = market(provider_body("p1", cpu_price="0.01"))
    existing = placed(step(lease_of(), view), ready=2)
    view.set_provider(provider_body("p1", cpu_price="0.03"))  # the provider raised its price
    plan = step(lease_of(replicas=3), view, placements=existing)

    assert plan.create == []
    assert [(p.spec.provider, p.spec.replicas) for p in plan.update] == [("p1", 3)]
    assert plan.update[0].spec.price_per_hour == "0.011"
    assert plan.update[0].metadata.resource_version == "1"


def test_scale_down_removes_the_most_expensive_first() -> None:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b"))
    first = step(lease_of(), view)
    existing = placed(first, ready=1)
    assert sorted(p.spec.provider for p in existing) == ["a", "b"]
    plan = step(lease_of(replicas=1), view, placements=existing)

    assert [p.spec.provider for p in plan.delete] == ["b"]
    assert plan.update == []
    assert plan.create == []


def three_on_a_and_b() -> tuple[MarketView, list[LeasePlacement]]:
    """A lease of 3 replicas: 1 on the cheap provider a (room for one), 2 on b."""
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b"))
    existing = placed(step(lease_of(replicas=3), view), ready=1)
    assert sorted((p.spec.provider, p.spec.replicas) for p in existing) == [("a", 1), ("b", 2)]
    return view, existing


def test_scale_down_that_shrinks_a_placement_is_recorded() -> None:
    view, existing = three_on_a_and_b()
    earlier = {"time": "2026-12-01T11:00:00Z", "type": "FailedOver", "provider": "c"}
    body = lease_body(replicas=2)
    body["status"] = {"history": [earlier]}
    plan = step(ComputeLease.model_validate(body), view, placements=existing)

    assert [(p.spec.provider, p.spec.replicas) for p in plan.update] == [("b", 1)]
    assert plan.delete == []
    assert plan.status is not None
    old, entry = plan.status.history or []
    assert old.provider == "c"
    assert (entry.time, entry.type, entry.provider, entry.to, entry.replicas, entry.reason) == (
        NOW,
        "ScaledDown",
        "b",
        None,
        1,
        "ScaledDown",
    )
    assert entry.message == "1 replica(s) removed from b (1 left there): spec.replicas lowered to 2"
    assert [(e.type, e.reason, e.message) for e in plan.events] == [
        ("Normal", "ScaledDown", entry.message)
    ]


def test_scale_down_that_deletes_a_placement_is_recorded() -> None:
    view, existing = three_on_a_and_b()
    plan = step(lease_of(replicas=1), view, placements=existing)

    assert [p.spec.provider for p in plan.delete] == ["b"]
    assert [(e.provider, e.kind) for e in plan.endings] == [("b", "Completed")]
    assert plan.status is not None
    [entry] = plan.status.history or []
    assert (entry.type, entry.provider, entry.replicas) == ("ScaledDown", "b", 2)
    assert entry.message == (
        "2 replica(s) removed from b (its placement deleted): spec.replicas lowered to 1"
    )
    assert [e.reason for e in plan.events] == ["ScaledDown"]


def test_scale_up_records_no_history() -> None:
    view, existing = three_on_a_and_b()
    plan = step(lease_of(replicas=4), view, placements=existing)

    assert plan.status is not None
    assert plan.status.history is None
    assert "ScaledDown" not in [e.reason for e in plan.events]


def test_resize_replaces_in_place_at_the_current_price() -> None:
    view = market(provider_body("p1", cpu_price="0.01"))
    existing = placed(step(lease_of(), view), ready=2)
    view.set_provider(provider_body("p1", cpu_price="0.02"))
    plan = step(lease_of(resources={"cpu": "2", "memory": "1Gi"}), view, placements=existing)

    assert plan.create == []
    assert plan.delete == []
    assert [(p.spec.provider, p.spec.resources.cpu) for p in plan.update] == [("p1", "2")]
    assert plan.update[0].spec.price_per_hour == "0.041"  # re-locked, and said so:
    assert any(e.reason == "Replaced" and "0.041" in e.message for e in plan.events)


def test_resize_moves_replicas_that_no_longer_fit() -> None:
    view = market(provider_body("p1", cpu_price="0.01", cpu="2"), provider_body("p2", cpu="16"))
    existing = placed(step(lease_of(), view), ready=2)
    assert [p.spec.provider for p in existing] == ["p1"]
    plan = step(lease_of(resources={"cpu": "4", "memory": "1Gi"}), view, placements=existing)

    assert [p.spec.provider for p in plan.create] == ["p2"]
    assert [p.spec.provider for p in plan.delete] == ["p1"]
    assert any("moved from p1 to p2" in e.message for e in plan.events)


def test_max_price_below_locked_price_replaces_or_keeps() -> None:
    view = market(provider_body("dear", cpu_price="0.5"))
    existing = placed(step(lease_of(), view), ready=2)
    plan = step(lease_of(maxPricePerHour="0.1"), view, placements=existing)

    assert plan.delete == []
    assert plan.create == []
    status, reason, message = condition(plan, "Scheduled")
    assert (status, reason) == ("False", "ReplacementPending")
    assert "above maxPricePerHour" in message

    view.set_provider(provider_body("cheap", cpu_price="0.01"))
    view.heartbeat("cheap", "t1")
    plan = step(lease_of(maxPricePerHour="0.1"), view, placements=existing)
    assert [p.spec.provider for p in plan.create] == ["cheap"]
    assert [p.spec.provider for p in plan.delete] == ["dear"]


def test_suspend_updates_placements_and_schedules_nothing() -> None:
    view = market(provider_body("p1"))
    existing = placed(step(lease_of(), view), ready=2)
    plan = step(lease_of(suspend=True, replicas=4), view, placements=existing)

    assert plan.create == []
    assert plan.decision is None
    assert [p.spec.suspend for p in plan.update] == [True]


def test_deletion_deletes_placements_then_drops_the_finalizer() -> None:
    view = market(provider_body("p1"))
    existing = placed(step(lease_of(), view), ready=2)
    body = lease_body()
    body["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    deleting = ComputeLease.model_validate(body)

    plan = step(deleting, view, placements=existing)
    assert plan.delete == existing
    assert not plan.remove_finalizer
    assert plan.status is not None
    assert plan.status.phase == "Terminating"

    done = step(deleting, view, placements=[])
    assert done.remove_finalizer
    assert done.delete == []


def test_replicas_not_ready_carry_the_provider_reason_after_the_timeout() -> None:
    view = market(provider_body("p1"))
    existing = placed(step(lease_of(), view), ready=0, created="2026-12-01T11:59:00Z")
    body = existing[0].to_api()
    body["status"] = {
        "readyReplicas": 0,
        "phase": "Pending",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodsUnschedulable",
                "message": "2 pod(s) Pending: 0/3 nodes are available: 3 Too many pods.",
                "lastTransitionTime": "2026-12-01T11:59:00Z",
            }
        ],
    }
    waiting = [LeasePlacement.model_validate(body)]

    early = step(lease_of(), view, placements=waiting, timeout=120)
    assert condition(early, "Ready")[:2] == ("False", "ReplicasStarting")
    assert early.recheck_after == pytest.approx(60.0)

    late = step(lease_of(), view, placements=waiting, now=NOW + timedelta(minutes=3))
    status, reason, message = condition(late, "Ready")
    assert (status, reason) == ("False", "PodsUnschedulable")
    assert "p1: 2 pod(s) Pending: 0/3 nodes are available: 3 Too many pods." in message
    assert [e.reason for e in late.events] == ["PodsUnschedulable"]


def test_an_unchanged_lease_writes_nothing() -> None:
    view = market(provider_body("p1"))
    existing = placed(step(lease_of(), view), ready=2)
    first = step(lease_of(), view, placements=existing)
    assert first.status is not None
    assert first.status.phase == "Running"
    body = lease_body()
    body["status"] = first.status.to_api()
    again = step(ComputeLease.model_validate(copy.deepcopy(body)), view, placements=existing)

    assert again.writes == 0
    assert again.events == []


@pytest.mark.parametrize("role", ["hub", "agent"])
def test_the_hub_finalizer_is_not_kopfs(role: str) -> None:
    # kopf strips its own finalizer from objects it has no deletion handler for: sharing the
    # name made kopf and the hub remove and re-add it on every lease, forever.
    import kopf

    from kommons.kopf_settings import configure_settings

    settings = kopf.OperatorSettings()
    configure_settings(settings, role=role)
    assert settings.persistence.finalizer != FINALIZER_HUB


@pytest.mark.parametrize("role", ["hub", "agent"])
def test_events_kopf_posts_name_the_kommons_component(role: str) -> None:
    import kopf

    from kommons.kopf_settings import configure_settings

    settings = kopf.OperatorSettings()
    assert settings.posting.reporting_component == "kopf"  # the framework's default
    configure_settings(settings, role=role)
    assert settings.posting.reporting_component == f"kommons-{role}"
    assert settings.posting.event_name_prefix == f"kommons-{role}-"


def test_a_stale_placement_that_is_surplus_is_deleted() -> None:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b", cpu="1"))
    existing = placed(step(lease_of(), view), ready=1)
    assert sorted(p.spec.provider for p in existing) == ["a", "b"]
    # b's price is now above the cap, and one replica (on a) is all the lease wants
    plan = step(lease_of(replicas=1, maxPricePerHour="0.015"), view, placements=existing)

    assert [p.spec.provider for p in plan.delete] == ["b"]
    assert plan.create == []
    assert plan.decision is None
    assert plan.status is not None
    [entry] = plan.status.history or []
    assert (entry.type, entry.provider, entry.replicas) == ("ScaledDown", "b", 1)
    assert [e.reason for e in plan.events] == ["ScaledDown"]


def test_suspend_reaches_a_placement_waiting_for_replacement() -> None:
    view = market(provider_body("dear", cpu_price="0.5"))
    existing = placed(step(lease_of(), view), ready=2)
    plan = step(lease_of(maxPricePerHour="0.1", suspend=True), view, placements=existing)

    assert [(p.spec.provider, p.spec.suspend) for p in plan.update] == [("dear", True)]
    assert plan.update[0].spec.price_per_hour == existing[0].spec.price_per_hour
    assert plan.delete == []
    assert condition(plan, "Scheduled")[1] != "ReplacementPending"
