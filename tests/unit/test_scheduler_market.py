"""Tests of the incremental market view (``kommons.scheduler.Market``) and bounded decisions.

Behaviour matrix:

- pods: every replica needs one pod slot; the reason names pods; holds and commits hold pods.
- holds: ``hold`` sets, ``commit`` adds; a report that reflects a hold drops it (newer
  ``observed_at`` after ``settle_seconds``, or ``accounted``); release and release_lease.
- providers: add, replace, remove; static changes (cordon, labels, prices) are seen at once.
- bounded decisions: at most ``MAX_REJECTED_SAMPLES`` samples, counts by kind over all,
  round-robin over kinds, message quotes counts and at most five reasons.
- properties (hypothesis): ``Market.decide`` equals ``schedule`` on random markets (holds,
  reflected holds, exclude, already placed, gpus, pods, every strategy, interleaved provider
  updates, Utilization-priced providers whose quotes follow their holds); a burst of commits
  never over-commits any dimension; ``decide`` mutates nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.scheduler import (
    MAX_REJECTED_SAMPLES,
    LabelSelector,
    LeaseRequest,
    Market,
    Operator,
    PoolPolicy,
    Pricing,
    ProviderView,
    RejectionKind,
    ReplicaResources,
    Requirement,
    Reservations,
    Resources,
    Strategy,
    is_reflected,
    pick_samples,
    placement_key,
    schedule,
)

GI = 1 << 30
TOKEN = 1_000_000
EXAMPLES = int(os.environ.get("KOMMONS_SCHEDULER_EXAMPLES", "30"))
FAST = settings(max_examples=EXAMPLES * 2, deadline=None)


def provider(
    name: str,
    *,
    cpu: int = 8000,
    memory: int = 32 * GI,
    pods: int = 110,
    gpus: Mapping[str, int] | None = None,
    gpu_price: Mapping[str, int] | None = None,
    cpu_price: int = TOKEN // 50,
    cordoned: bool = False,
    labels: Mapping[str, str] | None = None,
    observed_at: float = 0.0,
    accounted: frozenset[str] = frozenset(),
) -> ProviderView:
    return ProviderView(
        name=name,
        region="eu-west",
        labels=labels or {},
        cordoned=cordoned,
        available=Resources(cpu_milli=cpu, memory_bytes=memory, gpus=gpus or {}, pods=pods),
        pricing=Pricing(cpu_core_hour=cpu_price, memory_gib_hour=3000, gpu_hour=gpu_price or {}),
        observed_at=observed_at,
        accounted=accounted,
    )


def lease(
    key: str = "ns/l", *, replicas: int = 1, cpu: int = 1000, spread: bool = False
) -> LeaseRequest:
    return LeaseRequest(
        key=key,
        replicas=replicas,
        resources=ReplicaResources(cpu_milli=cpu, memory_bytes=GI),
        spread=spread,
    )


def market(*views: ProviderView, settle: float = 0.0) -> Market:
    m = Market(settle_seconds=settle)
    for view in views:
        m.set_provider(view)
    return m


POOL = PoolPolicy()


# --- pods ------------------------------------------------------------------------------


def test_every_replica_needs_a_pod_slot() -> None:
    m = market(provider("a", pods=2))
    decision = m.decide(lease(replicas=3), POOL)
    assert not decision.scheduled
    assert decision.message == (
        "1/1 providers feasible but they fit only 2 of 3 replica(s) (all or nothing)"
    )
    decision = m.decide(lease(replicas=2), POOL)
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("a", 2)]
    m.commit(decision, lease(replicas=2), at=1.0)
    assert m.free("a").pods == 0
    full = m.decide(lease("ns/other"), POOL)
    assert full.rejected == {"a": "insufficient pods (0 free < 1)"}
    assert full.rejected_counts == {"InsufficientPods": 1}


def test_as_resources_holds_one_pod_per_replica() -> None:
    need = ReplicaResources(cpu_milli=100, memory_bytes=GI, gpu_count=1)
    assert need.as_resources(3, "g") == Resources(
        cpu_milli=300, memory_bytes=3 * GI, gpus={"g": 3}, pods=3
    )


def test_pods_are_checked_last_among_capacity_reasons() -> None:
    view = provider("a", cpu=500, pods=0)
    assert schedule(lease(), [view], POOL).rejected == {"a": "insufficient cpu (500m free < 1000m)"}


# --- holds -----------------------------------------------------------------------------


def test_hold_sets_and_commit_adds() -> None:
    m = market(provider("a", cpu=8000, observed_at=5.0))
    m.hold(key="ns/l@a", provider="a", resources=Resources(cpu_milli=3000, pods=3), at=10.0)
    m.hold(key="ns/l@a", provider="a", resources=Resources(cpu_milli=2000, pods=2), at=11.0)
    assert m.free("a").cpu_milli == 6000
    assert m.free("a").pods == 108
    request = lease(replicas=1)
    m.commit(m.decide(request, POOL), request, at=12.0)
    held = m.get_hold("ns/l@a", "a")
    assert held is not None
    assert held.resources == Resources(cpu_milli=3000, memory_bytes=GI, pods=3)
    assert held.created_at == 12.0
    assert m.free("a") == Resources(cpu_milli=5000, memory_bytes=31 * GI, pods=107)


def test_a_newer_report_drops_the_holds_it_reflects() -> None:
    m = market(provider("a", cpu=4000, observed_at=5.0), settle=10.0)
    m.hold(key="k1", provider="a", resources=Resources(cpu_milli=1000), at=10.0)
    m.hold(key="k2", provider="a", resources=Resources(cpu_milli=1000), at=30.0)
    assert m.free("a").cpu_milli == 2000
    m.set_provider(provider("a", cpu=3000, observed_at=25.0))  # k1 settled, k2 not yet
    assert [r.key for r in m.holds("a")] == ["k2"]
    assert m.free("a").cpu_milli == 2000
    m.set_provider(provider("a", cpu=3000, observed_at=26.0, accounted=frozenset({"k2"})))
    assert m.hold_count == 0
    assert m.free("a").cpu_milli == 3000


def test_a_hold_the_current_report_reflects_is_not_kept() -> None:
    m = market(provider("a", cpu=4000, observed_at=50.0))
    m.hold(key="old", provider="a", resources=Resources(cpu_milli=1000), at=40.0)
    assert m.hold_count == 0
    assert m.free("a").cpu_milli == 4000


def test_holds_on_unknown_providers_apply_when_they_appear() -> None:
    m = Market()
    m.hold(key="ns/l@a", provider="a", resources=Resources(cpu_milli=1000, pods=1), at=1.0)
    assert m.free("a") == Resources()
    m.set_provider(provider("a", cpu=4000, pods=10, memory=GI))
    assert m.free("a") == Resources(cpu_milli=3000, memory_bytes=GI, pods=9)


def test_release_and_release_lease() -> None:
    m = market(provider("a"), provider("b"))
    request = lease(replicas=2, spread=True)
    decision = m.decide(request, POOL)
    m.commit(decision, request, at=1.0)
    assert m.hold_count == 2
    assert m.release("ns/l@a", "a") is not None
    assert m.release("ns/l@a", "a") is None
    assert [r.key for r in m.release_lease("ns/l")] == ["ns/l@b"]
    assert m.hold_count == 0
    assert m.free("b") == provider("b").available


def test_commit_refuses_another_leases_decision() -> None:
    m = market(provider("a"))
    with pytest.raises(ValueError, match="committed for"):
        m.commit(m.decide(lease("ns/x"), POOL), lease("ns/y"), at=1.0)


def test_negative_settle_and_already_placed_are_refused() -> None:
    with pytest.raises(ValueError, match="settle_seconds"):
        Market(settle_seconds=-1)
    with pytest.raises(ValueError, match="already_placed"):
        market(provider("a")).decide(lease(), POOL, already_placed={"a": -1})


# --- providers -------------------------------------------------------------------------


def test_providers_are_added_replaced_and_removed() -> None:
    m = market(provider("b"), provider("a"))
    assert len(m) == 2
    assert [v.name for v in m] == ["a", "b"]
    assert "a" in m
    assert m.decide(lease(), POOL).chosen[0].provider == "a"
    m.set_provider(provider("a", cordoned=True))
    decision = m.decide(lease(), POOL)
    assert decision.chosen[0].provider == "b"
    assert decision.rejected == {"a": "cordoned"}
    m.set_provider(provider("a", cpu_price=1))
    assert m.decide(lease(), POOL).chosen[0].provider == "a"
    selective = PoolPolicy(selector=LabelSelector({"tier": "gold"}))
    assert m.decide(lease(), selective).feasible == 0
    m.set_provider(provider("b", labels={"tier": "gold"}))
    assert m.decide(lease(), selective).chosen[0].provider == "b"
    assert m.remove_provider("b") is not None
    assert m.remove_provider("b") is None
    assert m.get("b") is None
    assert m.decide(lease(), selective).considered == 1


# --- bounded decisions -----------------------------------------------------------------


def test_decisions_at_1000_providers_stay_bounded() -> None:
    views = [
        provider(f"p{i:04d}", cpu=500 if i % 5 else 8000, cordoned=i % 7 == 0) for i in range(1000)
    ]
    m = market(*views)
    decision = m.decide(lease(replicas=2000), POOL)
    assert decision == schedule(lease(replicas=2000), views, POOL)
    assert len(decision.rejected) == MAX_REJECTED_SAMPLES
    assert decision.rejected_total == 1000 - decision.feasible
    assert sum(decision.rejected_counts.values()) == decision.rejected_total
    assert list(decision.rejected_counts) == ["InsufficientCpu", "Cordoned"]
    # every kind is sampled before any kind gets a second sample
    assert list(decision.rejected.items())[:2] == [
        ("p0001", "insufficient cpu (500m free < 1000m)"),
        ("p0000", "cordoned"),
    ]
    status = decision.to_status()
    assert status["rejectedCounts"] == dict(decision.rejected_counts)
    assert len(status["rejected"]) == MAX_REJECTED_SAMPLES
    assert decision.message.startswith(
        f"{decision.feasible}/1000 providers feasible but they fit only "
    )
    assert f"rejected: {decision.rejected_counts['InsufficientCpu']} InsufficientCpu, " in (
        decision.message
    )
    assert decision.message.endswith(f"; and {decision.rejected_total - 5} more")


def test_placed_message_names_at_most_five_providers() -> None:
    m = market(*(provider(f"p{i}", pods=1) for i in range(8)))
    decision = m.decide(lease(replicas=8), POOL)
    assert decision.scheduled
    assert decision.message == (
        "placed 8 replica(s) on p0 (1), p1 (1), p2 (1), p3 (1), p4 (1) and 3 more provider(s); "
        "8/8 providers feasible"
    )


def test_decision_refuses_more_samples_than_the_bound() -> None:
    from kommons.scheduler import Decision

    with pytest.raises(ValueError, match="at most"):
        Decision(
            lease="ns/l",
            wanted=1,
            considered=11,
            feasible=0,
            rejected={f"p{i}": "cordoned" for i in range(11)},
        )


def test_pick_samples_round_robin_by_count() -> None:
    first = {
        RejectionKind.CORDONED: ["a", "b", "c"],
        RejectionKind.PRICE: ["d", "e"],
        RejectionKind.NOT_READY: ["f", "g"],
    }
    counts = {RejectionKind.CORDONED: 3, RejectionKind.PRICE: 2, RejectionKind.NOT_READY: 2}
    # most frequent first, ties in filter order (NotReady before Price)
    assert pick_samples(first, counts) == ["a", "f", "d", "b", "g", "e", "c"]
    assert pick_samples(first, counts, limit=4) == ["a", "f", "d", "b"]


# --- properties ------------------------------------------------------------------------

MODELS = ("nvidia-a100", "nvidia-l4")
REGIONS = ("eu-west", "us-east")
NAMES = tuple(f"prov-{c}" for c in "abcdefgh")
SELECTORS = (
    LabelSelector({"tier": "x"}),
    LabelSelector(match_expressions=(Requirement("gpu", Operator.NOT_IN, frozenset({"y"})),)),
)


def rare(draw: st.DrawFn) -> bool:
    return draw(st.sampled_from([False] * 5 + [True]))


@st.composite
def views(draw: st.DrawFn, name: str) -> ProviderView:
    return ProviderView(
        name=name,
        region=draw(st.sampled_from(REGIONS)),
        labels=draw(st.dictionaries(st.sampled_from(["tier", "gpu"]), st.sampled_from(["x", "y"]))),
        ready=not rare(draw),
        phase=draw(st.sampled_from(["Ready", "Unreachable"])),
        cordoned=rare(draw),
        reputation=draw(st.sampled_from([1.0, 0.9, 0.5, 0.3])),
        available=Resources(
            cpu_milli=draw(st.integers(0, 16)) * 500,
            memory_bytes=draw(st.integers(0, 16)) * GI // 2,
            gpus=draw(st.dictionaries(st.sampled_from(MODELS), st.integers(0, 4))),
            pods=draw(st.integers(0, 12)),
        ),
        pricing=Pricing(
            cpu_core_hour=draw(st.sampled_from([10_000, 20_000, 40_000])),
            memory_gib_hour=draw(st.sampled_from([0, 3000])),
            gpu_hour=draw(
                st.dictionaries(st.sampled_from(MODELS), st.sampled_from([0, TOKEN, 2 * TOKEN]))
            ),
            max_multiplier=draw(st.sampled_from([10_000, 10_000, 15_000, 30_000, 100_000])),
        ),
        ceiling=Resources(
            cpu_milli=draw(st.integers(0, 16)) * 1000,
            memory_bytes=draw(st.integers(0, 16)) * GI,
            gpus=draw(st.dictionaries(st.sampled_from(MODELS), st.integers(0, 8))),
        ),
        observed_at=draw(st.sampled_from([0.0, 5.0, 10.0])),
        accounted=draw(st.sampled_from([frozenset(), frozenset({placement_key("ns/h0", name)})])),
    )


@st.composite
def markets(draw: st.DrawFn) -> list[ProviderView]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return [draw(views(name)) for name in names]


@st.composite
def requests(draw: st.DrawFn, key: str = "ns/lease") -> LeaseRequest:
    gpu_count = draw(st.sampled_from([0, 0, 1, 2]))
    return LeaseRequest(
        key=key,
        replicas=draw(st.integers(0, 8)),
        resources=ReplicaResources(
            cpu_milli=draw(st.integers(1, 6).map(lambda n: n * 250)),
            memory_bytes=draw(st.integers(1, 6).map(lambda n: n * GI // 4)),
            gpu_count=gpu_count,
            gpu_model=draw(st.sampled_from([None, *MODELS])) if gpu_count else None,
        ),
        max_price_per_hour=draw(st.sampled_from([None, 10_000, 30_000, 2 * TOKEN])),
        regions=draw(st.frozensets(st.sampled_from(REGIONS))) if rare(draw) else frozenset(),
        providers=draw(st.frozensets(st.sampled_from(NAMES))) if rare(draw) else frozenset(),
        spread=draw(st.booleans()),
    )


@st.composite
def policies(draw: st.DrawFn) -> PoolPolicy:
    return PoolPolicy(
        strategy=draw(st.sampled_from(list(Strategy))),
        selector=draw(st.sampled_from(SELECTORS)) if rare(draw) else None,
        regions=draw(st.frozensets(st.sampled_from(REGIONS))) if rare(draw) else frozenset(),
        min_reputation=draw(st.sampled_from([0.0, 0.0, 0.5, 0.8])),
    )


HOLDS = st.lists(
    st.tuples(
        st.sampled_from(["ns/h0", "ns/h1", "ns/h2"]),
        st.sampled_from(NAMES),
        st.integers(0, 4),
        st.sampled_from([1.0, 7.0, 12.0]),
        st.sampled_from([None, *MODELS]),
    ),
    max_size=8,
)


class Twin:
    """A Market and the reference (provider list + Reservations ledger) fed the same events."""

    def __init__(self, settle: float) -> None:
        self.market = Market(settle_seconds=settle)
        self.ledger = Reservations(settle_seconds=settle)
        self.views: dict[str, ProviderView] = {}

    def set_provider(self, view: ProviderView) -> None:
        self.market.set_provider(view)
        self.views[view.name] = view
        self.ledger.observe(view)

    def hold(self, lease_key: str, name: str, replicas: int, at: float, model: str | None) -> None:
        key = placement_key(lease_key, name)
        need = ReplicaResources(cpu_milli=500, memory_bytes=GI // 2, gpu_count=1 if model else 0)
        resources = need.as_resources(replicas, model)
        self.market.hold(key=key, provider=name, resources=resources, at=at)
        self.ledger.release(key, name)
        view = self.views.get(name)
        reservation = self.ledger.reserve(key=key, provider=name, resources=resources, at=at)
        if view is not None and is_reflected(
            reservation, view, settle_seconds=self.ledger.settle_seconds
        ):
            self.ledger.release(key, name)  # reflected: the market does not keep it either

    def check(
        self,
        request: LeaseRequest,
        pool: PoolPolicy,
        exclude: frozenset[str] = frozenset(),
        already: Mapping[str, int] | None = None,
    ) -> None:
        before = {v.name: self.market.free(v.name) for v in self.views.values()}
        holds = sorted((r.key, r.provider, r.resources) for r in self.market.holds())
        got = self.market.decide(request, pool, exclude=exclude, already_placed=already or {})
        want = schedule(
            request,
            list(self.views.values()),
            pool,
            self.ledger,
            exclude=exclude,
            already_placed=already,
        )
        assert got == want
        # decide mutates nothing
        assert before == {v.name: self.market.free(v.name) for v in self.views.values()}
        assert holds == sorted((r.key, r.provider, r.resources) for r in self.market.holds())
        for view in self.views.values():
            assert self.market.free(view.name) == self.ledger.effective_available(view)


@FAST
@given(
    markets(),
    HOLDS,
    st.lists(st.tuples(requests(), policies()), min_size=1, max_size=4),
    st.frozensets(st.sampled_from(NAMES), max_size=2),
    st.dictionaries(st.sampled_from(NAMES), st.integers(0, 2), max_size=2),
    st.sampled_from([0.0, 3.0]),
)
def test_market_decides_as_schedule(
    providers: list[ProviderView],
    holds: list[tuple[str, str, int, float, str | None]],
    decisions: list[tuple[LeaseRequest, PoolPolicy]],
    exclude: frozenset[str],
    already: dict[str, int],
    settle: float,
) -> None:
    twin = Twin(settle)
    for view in providers:
        twin.set_provider(view)
    for hold in holds:
        twin.hold(*hold)
    for request, pool in decisions:
        twin.check(request, pool)
        twin.check(request, pool, exclude, already)


@FAST
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.sampled_from(NAMES).flatmap(views)),
            st.tuples(st.just("hold"), HOLDS),
            st.tuples(st.just("release"), st.sampled_from(["ns/h0", "ns/h1"])),
            st.tuples(st.just("remove"), st.sampled_from(NAMES)),
            st.tuples(st.just("decide"), st.tuples(requests(), policies())),
        ),
        max_size=25,
    ),
    requests(),
    policies(),
)
def test_market_follows_events(
    events: list[tuple[str, object]], probe: LeaseRequest, pool: PoolPolicy
) -> None:
    twin = Twin(0.0)
    at = 20.0
    for kind, payload in events:
        at += 1.0
        if kind == "set":
            assert isinstance(payload, ProviderView)
            twin.set_provider(payload)
        elif kind == "hold":
            for lease_key, name, replicas, _, model in payload:  # type: ignore[attr-defined]
                twin.hold(lease_key, name, replicas, at, model)
        elif kind == "release":
            assert isinstance(payload, str)
            got = sorted(r.key for r in twin.market.release_lease(payload))
            assert got == sorted(r.key for r in twin.ledger.release_lease(payload))
        elif kind == "remove":
            assert isinstance(payload, str)
            twin.market.remove_provider(payload)
            twin.views.pop(payload, None)
        else:
            request, decide_pool = payload  # type: ignore[misc]
            twin.check(request, decide_pool)
            decision = twin.market.decide(request, decide_pool)
            twin.market.commit(decision, request, at=at)
            twin.ledger.record(decision, request, at=at)
        twin.check(probe, pool)


@FAST
@given(markets(), st.lists(requests(), min_size=2, max_size=10), policies())
def test_a_burst_of_commits_never_overcommits(
    providers: list[ProviderView], burst: list[LeaseRequest], pool: PoolPolicy
) -> None:
    m = market(*providers)
    used: dict[str, dict[str, int]] = {v.name: {} for v in providers}
    for i, base in enumerate(burst):
        request = LeaseRequest(
            key=f"ns/l{i % 3}",  # keys repeat: commits add to pending holds
            replicas=base.replicas,
            resources=base.resources,
            max_price_per_hour=base.max_price_per_hour,
            spread=base.spread,
        )
        decision = m.decide(request, pool)
        m.commit(decision, request, at=100.0 + i)  # newer than every report
        for p in decision.chosen:
            total = used[p.provider]
            need = request.resources
            for dim, amount in (
                ("cpu", need.cpu_milli),
                ("memory", need.memory_bytes),
                ("pods", 1),
                (p.gpu_model or "", need.gpu_count),
            ):
                total[dim] = total.get(dim, 0) + p.replicas * amount
    for view in providers:
        total, have = used[view.name], view.available
        assert total.get("cpu", 0) <= have.cpu_milli
        assert total.get("memory", 0) <= have.memory_bytes
        assert total.get("pods", 0) <= have.pods
        for model in MODELS:
            assert total.get(model, 0) <= have.gpus.get(model, 0)
        held = list(m.holds(view.name))
        assert sum(r.resources.pods for r in held) == total.get("pods", 0)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_long_run_of_decisions_and_reports_agrees_with_schedule(strategy: Strategy) -> None:
    """Many decisions of few lease shapes (cached, re-fitted incrementally) and reports."""
    import random

    rnd = random.Random(strategy.value)
    views = {}
    for i in range(40):
        model = rnd.choice(MODELS)
        views[f"p{i:02d}"] = ProviderView(
            name=f"p{i:02d}",
            region=rnd.choice(REGIONS),
            reputation=rnd.choice([1.0, 0.9, 0.7]),
            cordoned=rnd.random() < 0.05,
            available=Resources(
                cpu_milli=rnd.randint(1, 16) * 1000,
                memory_bytes=rnd.randint(2, 32) * GI,
                gpus={model: rnd.randint(0, 8)},
                pods=rnd.randint(0, 20),
            ),
            pricing=Pricing(
                cpu_core_hour=rnd.randint(10_000, 40_000),
                memory_gib_hour=rnd.randint(1_000, 5_000),
                gpu_hour={model: rnd.randint(300_000, 3_000_000)},
            ),
        )
    twin = Twin(0.0)
    for view in views.values():
        twin.set_provider(view)
    pool = PoolPolicy(strategy=strategy, min_reputation=0.8)
    for i in range(200):
        gpu = rnd.random() < 0.4
        request = LeaseRequest(
            key=f"ns/l{i % 60}",
            replicas=rnd.randint(1, 5),
            resources=ReplicaResources(
                cpu_milli=rnd.choice([500, 1000]),
                memory_bytes=rnd.choice([1, 2]) * GI,
                gpu_count=1 if gpu else 0,
                gpu_model=rnd.choice([None, *MODELS]) if gpu else None,
            ),
            max_price_per_hour=rnd.choice([None, 100_000, 2 * TOKEN]),
            spread=rnd.random() < 0.3,
        )
        exclude = frozenset({f"p{rnd.randrange(40):02d}"}) if rnd.random() < 0.2 else frozenset()
        twin.check(request, pool, exclude)
        decision = twin.market.decide(request, pool, exclude=exclude)
        twin.market.commit(decision, request, at=1.0 + i)
        twin.ledger.record(decision, request, at=1.0 + i)
        if i % 10 == 9:  # a report that reflects every hold so far, with less capacity
            name = rnd.choice(sorted(views))
            old = views[name]
            views[name] = ProviderView(
                name=name,
                region=old.region,
                reputation=old.reputation,
                cordoned=old.cordoned,
                available=twin.market.free(name).minus(Resources(cpu_milli=500)),
                pricing=old.pricing,
                observed_at=1.5 + i,
            )
            twin.set_provider(views[name])
            assert not list(twin.market.holds(name))


@pytest.mark.parametrize(
    "limit",
    [
        {"cpu": 3000},
        {"memory": 3 * GI},
        {"pods": 3},
        {"gpus": {"nvidia-l4": 3}},
    ],
)
@pytest.mark.parametrize("gpu", [False, True])
def test_refit_after_commits_follows_the_scarcest_dimension(
    limit: dict[str, object], gpu: bool
) -> None:
    """The same lease shape decided again after commits: slots come from the refit."""
    available = {"cpu": 64_000, "memory": 64 * GI, "pods": 64, "gpus": {"nvidia-l4": 64}}
    available.update(limit)
    twin = Twin(0.0)
    twin.set_provider(
        ProviderView(
            name="a",
            region="eu-west",
            available=Resources(
                cpu_milli=available["cpu"],  # type: ignore[arg-type]
                memory_bytes=available["memory"],  # type: ignore[arg-type]
                pods=available["pods"],  # type: ignore[arg-type]
                gpus=available["gpus"],  # type: ignore[arg-type]
            ),
            pricing=Pricing(cpu_core_hour=1, gpu_hour={"nvidia-l4": 1}),
        )
    )
    for strategy in Strategy:
        pool = PoolPolicy(strategy=strategy)
        for i, replicas in enumerate([1, 3, 2, 1, 1]):
            request = LeaseRequest(
                key=f"ns/{strategy.value}{i}",
                replicas=replicas,
                resources=ReplicaResources(
                    cpu_milli=1000,
                    memory_bytes=GI,
                    gpu_count=1 if gpu else 0,
                    gpu_model="nvidia-l4" if gpu else None,
                ),
            )
            twin.check(request, pool)
            decision = twin.market.decide(request, pool)
            twin.market.commit(decision, request, at=1.0 + i)
            twin.ledger.record(decision, request, at=1.0 + i)
        twin.market.release_lease(f"ns/{strategy.value}0")
        twin.ledger.release_lease(f"ns/{strategy.value}0")
