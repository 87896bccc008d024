"""Unit tests of the hub's in-memory market view (``kommons.hub.market_view.MarketView``).

The hub's clock is ``MarketView.monotonic``; every test here replaces it with a fake clock.

Behaviour matrix:

- heartbeats: freshness is measured on the hub's clock from when the hub saw ``renewTime``
  change; an unchanged ``renewTime`` does not refresh it; a changed one does, whatever its
  value (in the past, far in the future, not even a time): the agent's clock is never
  trusted. A heartbeat from a stale provider makes it ready at once (and says waiting leases
  should look again); ``refresh_health`` flips readiness once the timeout passes (and only
  then), returning the providers it flipped.
- malformed providers: a status that fails validation or an unusable inventory keeps the
  provider known but excluded, with the reason (its phase NotReady/InvalidDeclaration); other
  providers still schedule; a corrected status clears the exclusion; an unusable spec drops
  the provider.
- holds: a placement its provider's ``status.accountedLeases`` does not list is held in full
  (``market.free`` shrinks by it); ``ns/name=2`` for a 5-replica placement holds 3; a bare
  ``ns/name`` holds 0; a new report re-holds the provider's placements; removing the
  placement releases its hold.
- ``billing_account``: the first account by name whose namespace selector matches the
  namespace's labels; an empty selector selects nothing; no match → ``None``.
- ``decide(released=...)``: a placement being replaced counts as free for that decision
  (its unreported part through its hold, its reported part added back to the provider's
  free capacity) — exactly that much, no more; the market (views, holds, free capacity) is
  as before afterwards. Unknown released keys change nothing. A suspended placement with
  storage (its claims kept, so its provider's report still subtracts them) gets its storage
  back for a resume decision, and only that: the same lease fits back, a bigger one does not.
"""

from __future__ import annotations

from typing import Any

import pytest

from kommons.api import BillingAccount, ComputeLease, LeasePlacement
from kommons.hub.market_view import MarketView, parse_accounted
from kommons.hub.placements import placement_object
from kommons.hub.views import lease_request
from kommons.scheduler import PoolPolicy, Resources, placement_key
from tests.unit.clocks import Clock, fake_market_clock

TIMEOUT = 30.0
GIB = 1024**3
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return fake_market_clock(monkeypatch)


def provider_body(
    name: str,
    *,
    cpu: str = "8",
    pods: int = 110,
    cpu_price: str = "0.02",
    accounted: list[str] | None = None,
    **available: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "nodes": 1,
        "available": {"cpu": cpu, "memory": "64Gi", "pods": pods, "gpus": {}, **available},
    }
    if accounted is not None:
        status["accountedLeases"] = accounted
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "Provider",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "region": "eu",
            "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
            "pricing": {"cpuCoreHour": cpu_price, "memoryGiBHour": "0.001"},
        },
        "status": status,
    }


def market(*bodies: dict[str, Any]) -> MarketView:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    for body in bodies:
        view.set_provider(body)
        view.heartbeat(body["metadata"]["name"], "t0")
    return view


def lease(
    name: str = "web", *, replicas: int = 5, cpu: str = "1", namespace: str = "team-a"
) -> ComputeLease:
    return ComputeLease.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
            "spec": {
                "poolRef": {"name": "pool"},
                "replicas": replicas,
                "resources": {"cpu": cpu, "memory": "1Gi"},
                "maxPricePerHour": "10",
                "template": TEMPLATE,
            },
        }
    )


def placement(body: ComputeLease, provider: str = "p1", replicas: int = 5) -> LeasePlacement:
    return placement_object(
        body, provider=provider, replicas=replicas, price_per_hour=21_000, account="acct"
    )


def ready(view: MarketView, name: str) -> bool:
    got = view.market.get(name)
    assert got is not None
    return got.ready


# --- heartbeats ---------------------------------------------------------------------------


def test_a_heartbeat_makes_a_provider_ready(clock: Clock) -> None:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    view.set_provider(provider_body("p1"))
    assert not ready(view, "p1")
    assert view.health("p1")[:2] == ("Unreachable", "NoHeartbeat")

    assert view.heartbeat("p1", "t0") is True  # waiting leases should look again
    assert ready(view, "p1")
    assert view.health("p1")[:2] == ("Ready", "HeartbeatFresh")


def test_a_heartbeat_seen_before_the_provider_counts(clock: Clock) -> None:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    assert view.heartbeat("p1", "t0") is False  # nothing to schedule on yet
    view.set_provider(provider_body("p1"))
    assert ready(view, "p1")


def test_freshness_is_the_hubs_clock_from_the_last_change(clock: Clock) -> None:
    view = market(provider_body("p1"))
    clock.now += 20
    assert view.heartbeat("p1", "t1") is False  # fresh already: nothing to re-plan
    clock.now += TIMEOUT  # 50 s after the first heartbeat, 30 s after the second
    assert view.refresh_health() == []
    assert ready(view, "p1")
    clock.now += 1
    assert view.refresh_health() == ["p1"]
    assert not ready(view, "p1")
    assert view.health("p1")[:2] == ("Unreachable", "HeartbeatExpired")
    assert view.refresh_health() == []  # flipped once


def test_an_unchanged_renew_time_does_not_refresh(clock: Clock) -> None:
    view = market(provider_body("p1"))
    clock.now += TIMEOUT - 1
    assert view.heartbeat("p1", "t0") is False
    clock.now += 2
    assert view.refresh_health() == ["p1"]
    assert view.heartbeat("p1", "t0") is False
    assert not ready(view, "p1")
    assert view.health("p1")[1] == "HeartbeatExpired"


@pytest.mark.parametrize(
    "renew_time",
    ["1999-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z", "not a time"],
)
def test_a_changed_renew_time_refreshes_whatever_its_value(clock: Clock, renew_time: str) -> None:
    view = market(provider_body("p1"))
    clock.now += TIMEOUT + 100
    assert view.refresh_health() == ["p1"]

    assert view.heartbeat("p1", renew_time) is True
    assert ready(view, "p1")
    phase, reason, message = view.health("p1")
    assert (phase, reason, message) == ("Ready", "HeartbeatFresh", "heartbeat seen 0s ago")
    clock.now += TIMEOUT + 1  # and it expires on the hub's clock, not the agent's
    assert view.refresh_health() == ["p1"]


def test_refresh_health_flips_back_when_fresh(clock: Clock) -> None:
    view = market(provider_body("p1"), provider_body("p2"))
    clock.now += TIMEOUT + 1
    assert sorted(view.refresh_health()) == ["p1", "p2"]
    view.heartbeat("p2", "t1")
    assert ready(view, "p2")
    assert not ready(view, "p1")
    assert view.refresh_health() == []


# --- malformed providers ------------------------------------------------------------------


def decide(view: MarketView, body: ComputeLease, *, released: frozenset[str] = frozenset()) -> Any:
    view.set_lease(body)
    return view.decide(lease_request(body), PoolPolicy(), already_placed={}, released=released)


def test_an_unusable_inventory_is_excluded_and_others_schedule(clock: Clock) -> None:
    bad = provider_body("cheap", cpu_price="0.01")
    bad["status"]["available"]["cpu"] = "lots"
    view = market(bad, provider_body("dear", cpu_price="0.05"))

    assert "cheap" in view.providers
    assert view.excluded["cheap"].startswith("status.available is malformed")
    assert not ready(view, "cheap")
    assert view.health("cheap")[:2] == ("NotReady", "InvalidDeclaration")
    decision = decide(view, lease(replicas=2))
    assert [(c.provider, c.replicas) for c in decision.chosen] == [("dear", 2)]
    assert "cheap" in decision.rejected


def test_a_status_that_fails_validation_is_excluded_and_others_schedule(clock: Clock) -> None:
    bad = provider_body("cheap", cpu_price="0.01")
    bad["status"]["available"]["pods"] = -3
    view = market(bad, provider_body("dear", cpu_price="0.05"))

    assert "cheap" in view.providers
    reason = view.excluded["cheap"]
    assert reason.startswith("status is malformed at status.available.pods")
    assert not ready(view, "cheap")
    assert view.health("cheap")[:2] == ("NotReady", "InvalidDeclaration")
    assert [c.provider for c in decide(view, lease(replicas=2)).chosen] == ["dear"]

    # the agent fixes its report: the provider is usable again (at the latest on the next
    # health pass, see test_a_corrected_provider_is_ready_at_once)
    assert view.set_provider(provider_body("cheap", cpu_price="0.01")) is True
    assert "cheap" not in view.excluded
    view.refresh_health()
    assert ready(view, "cheap")
    assert view.health("cheap")[:2] == ("Ready", "HeartbeatFresh")
    assert [c.provider for c in decide(view, lease(replicas=2)).chosen] == ["cheap"]


@pytest.mark.parametrize("fault", ["malformed status", "unusable inventory", "zero price"])
def test_a_corrected_provider_is_ready_at_once(fault: str) -> None:
    bad = provider_body("p1")
    if fault == "malformed status":
        bad["status"]["available"]["pods"] = -3
    elif fault == "unusable inventory":
        bad["status"]["available"]["cpu"] = "lots"
    else:
        bad["spec"]["pricing"]["cpuCoreHour"] = "0"
    view = market(bad)
    assert "p1" in view.excluded

    assert view.set_provider(provider_body("p1")) is True
    assert "p1" not in view.excluded
    assert ready(view, "p1")


def test_an_unusable_spec_drops_the_provider(clock: Clock) -> None:
    view = market(provider_body("p1"))
    body = provider_body("p1")
    del body["spec"]["pricing"]
    assert view.set_provider(body) is False
    assert "p1" not in view.providers
    assert view.market.get("p1") is None


# --- holds --------------------------------------------------------------------------------


def free_cpu(view: MarketView, provider: str = "p1") -> int:
    return view.market.free(provider).cpu_milli


def test_parse_accounted() -> None:
    assert parse_accounted(["a/x=2", "a/y", "a/z=0"]) == {"a/x": 2, "a/y": None, "a/z": 0}


def test_an_unaccounted_placement_is_held_in_full(clock: Clock) -> None:
    view = market(provider_body("p1", accounted=[]))
    body = lease()
    view.set_lease(body)
    view.set_placement(placement(body, replicas=5))
    assert view.market.free("p1") == Resources(
        cpu_milli=3000, memory_bytes=59 * GIB, gpus={}, pods=105
    )


@pytest.mark.parametrize(
    ("entry", "held"),
    [
        ("team-a/web=2", 3),  # the report includes 2 replicas: 3 still to hold
        ("team-a/web=0", 5),
        ("team-a/web=5", 0),
        ("team-a/web=9", 0),
        ("team-a/web", 0),  # an older agent: the whole placement is included
        ("team-a/other=2", 5),
        ("team-b/web=2", 5),
    ],
)
def test_accounted_replicas_are_not_held_again(clock: Clock, entry: str, held: int) -> None:
    view = market(provider_body("p1", accounted=[entry]))
    body = lease()
    view.set_placement(placement(body, replicas=5))
    assert free_cpu(view) == 8000 - held * 1000
    hold = view.market.get_hold(placement_key("team-a/web", "p1"), "p1")
    assert (hold.resources.pods if hold else 0) == held


def test_a_new_report_re_holds_the_providers_placements(clock: Clock) -> None:
    view = market(provider_body("p1", accounted=[]))
    body = lease()
    view.set_placement(placement(body, replicas=5))
    assert free_cpu(view) == 3000
    # the agent now reports 2 replicas as running (its available cpu shrank by 2)
    view.set_provider(provider_body("p1", cpu="6", accounted=["team-a/web=2"]))
    assert free_cpu(view) == 3000
    view.set_provider(provider_body("p1", cpu="3", accounted=["team-a/web=5"]))
    assert free_cpu(view) == 3000
    assert view.market.hold_count == 0


def test_removing_the_placement_releases_its_hold(clock: Clock) -> None:
    view = market(provider_body("p1", accounted=["team-a/web=2"]))
    body = lease()
    view.set_placement(placement(body, replicas=5))
    assert free_cpu(view) == 5000
    view.remove_placement("uid-web", "p1", "team-a/web")
    assert free_cpu(view) == 8000
    assert view.market.hold_count == 0
    assert view.placements == {}
    # a later report does not bring the hold back
    view.set_provider(provider_body("p1", accounted=[]))
    assert free_cpu(view) == 8000


def test_holds_on_one_provider_leave_others_alone(clock: Clock) -> None:
    view = market(provider_body("p1", accounted=[]), provider_body("p2", accounted=[]))
    view.set_placement(placement(lease(), provider="p1", replicas=5))
    assert (free_cpu(view, "p1"), free_cpu(view, "p2")) == (3000, 8000)


# --- billing accounts -----------------------------------------------------------------------


def account(name: str, selector: dict[str, Any]) -> BillingAccount:
    return BillingAccount.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "address": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
                "namespaceSelector": selector,
            },
        }
    )


def test_billing_account_is_the_first_matching_by_name() -> None:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    view.accounts = {
        "zeta": account("zeta", {"matchLabels": {"team": "a"}}),
        "beta": account("beta", {"matchLabels": {"team": "a"}}),
        "alpha": account("alpha", {"matchLabels": {"team": "b"}}),
    }
    view.namespaces = {"team-a": {"team": "a"}, "team-b": {"team": "b"}, "team-c": {}}
    assert view.billing_account("team-a") == "beta"
    assert view.billing_account("team-b") == "alpha"
    assert view.billing_account("team-c") is None
    assert view.billing_account("unknown") is None


@pytest.mark.parametrize("selector", [{}, {"matchLabels": {}, "matchExpressions": []}])
def test_an_empty_selector_bills_no_one(selector: dict[str, Any]) -> None:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    view.accounts = {"all": account("all", selector)}
    view.namespaces = {"team-a": {"team": "a"}, "bare": {}}
    assert view.billing_account("team-a") is None
    assert view.billing_account("bare") is None


# --- decide(released=...) -----------------------------------------------------------------


def replacing() -> tuple[MarketView, ComputeLease]:
    """p1 runs 4 replicas x 1 cpu of team-a/web; its report includes 1 of them.

    The provider has 5 cpu in all: its report says 4 free (the 1 reported replica is
    subtracted) and the hub holds the 3 unreported ones, so 1 cpu is effectively free.
    Replacing the placement frees the 3 held and the 1 reported: 5 cpu.
    """
    view = market(provider_body("p1", cpu="4", accounted=["team-a/web=1"]))
    body = lease(replicas=4)
    view.set_lease(body)
    view.set_placement(placement(body, replicas=4))
    assert free_cpu(view) == 1000
    return view, body


def snapshot(view: MarketView) -> tuple[Any, ...]:
    return (
        view.market.get("p1"),
        view.market.free("p1"),
        sorted((h.key, h.resources) for h in view.market.holds()),
    )


def test_released_placement_counts_as_free_exactly() -> None:
    view, _ = replacing()
    key = placement_key("team-a/web", "p1")
    released = frozenset({key})

    fits = decide(view, lease(replicas=5, cpu="1"), released=released)
    assert [(c.provider, c.replicas) for c in fits.chosen] == [("p1", 5)]
    too_many = decide(view, lease(replicas=6, cpu="1"), released=released)
    assert too_many.chosen == ()  # 5 cpu freed, not more
    assert too_many.feasible == 1


def test_without_release_the_placement_keeps_its_capacity() -> None:
    view, _ = replacing()
    decision = decide(view, lease(replicas=2, cpu="1"))
    assert decision.chosen == ()  # only 1 cpu is free


def test_the_market_is_restored_after_a_released_decision() -> None:
    view, _ = replacing()
    before = snapshot(view)
    decide(view, lease(replicas=5), released=frozenset({placement_key("team-a/web", "p1")}))
    assert snapshot(view) == before
    assert free_cpu(view) == 1000


def test_unknown_released_keys_change_nothing() -> None:
    view, _ = replacing()
    before = snapshot(view)
    released = frozenset({placement_key("team-a/web", "p9"), placement_key("team-a/x", "p1")})
    decision = decide(view, lease(replicas=2), released=released)
    assert decision.chosen == ()
    assert snapshot(view) == before


def test_the_edge_drops_managed_fields_and_nothing_else() -> None:
    from kommons.api import ComputeLease
    from kommons.hub.edge import lean, parse

    body = {
        "metadata": {"name": "web", "namespace": "t", "managedFields": [{"manager": "x"}]},
        "spec": {"poolRef": {"name": "p"}},
    }
    assert lean(body) == {"metadata": {"name": "web", "namespace": "t"}, "spec": body["spec"]}
    assert body["metadata"]["managedFields"] == [{"manager": "x"}]  # the input is not changed
    lease_spec = {
        "poolRef": {"name": "p"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "maxPricePerHour": "1",
        "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}},
    }
    lease = parse(ComputeLease, {**body, "spec": lease_spec})
    assert lease.metadata.name == "web"
    assert "managedFields" not in lease.to_api()["metadata"]


def test_a_suspended_storage_placement_gets_its_kept_claims_back_to_resume() -> None:
    """p1 sells 10Gi fast; the suspended placement's 2 x 4Gi claims leave 2Gi in its report."""
    body = provider_body("p1", accounted=["team-a/db=0"], storage={"fast": "2Gi"})
    body["spec"]["pricing"]["storageGiBHour"] = {"fast": "0.0002"}
    view = market(body)

    def storage_lease(size: str) -> ComputeLease:
        raw = lease("db", replicas=2).to_api()
        raw["spec"]["storage"] = [{"name": "d", "size": size, "tier": "fast", "mountPath": "/d"}]
        return ComputeLease.model_validate(raw)

    db = storage_lease("4Gi")
    view.set_lease(db)
    suspended = placement(db, replicas=2)
    suspended.spec.suspend = True
    view.set_placement(suspended)
    assert list(view.market.holds()) == []  # a suspended placement holds nothing
    released = frozenset({placement_key("team-a/db", "p1")})

    assert decide(view, db).chosen == ()  # without its own claims: 2Gi < 4Gi
    back = decide(view, db, released=released)
    assert [(c.provider, c.replicas) for c in back.chosen] == [("p1", 2)]
    bigger = decide(view, storage_lease("6Gi"), released=released)
    assert bigger.chosen == ()  # 8Gi given back, not more: 10Gi < 12Gi
