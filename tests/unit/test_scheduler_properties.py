"""Property-based tests of the scheduler's invariants (hypothesis).

Invariants, for any providers, lease and pool:

- never over-commits a provider's effective free cpu, memory or gpus, also across a burst of
  leases recorded in the reservation ledger;
- all or nothing: placed replicas equal the missing replicas when scheduled, zero otherwise,
  and it is scheduled exactly when the feasible providers have room for every replica;
- deterministic: the same inputs in any order give the same decision;
- every provider is either feasible or rejected with a non-empty reason;
- chosen providers pass every filter; the price of a replica never exceeds the lease's max;
- spread puts replicas on distinct providers when there are enough feasible ones;
- LowestPrice without spread never leaves a cheaper feasible provider unused;
- money: the replica price is the exact price rounded up to the next base unit.
"""

from __future__ import annotations

import os
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.scheduler import (
    Candidate,
    Decision,
    FilterContext,
    LabelSelector,
    LeaseRequest,
    Operator,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Requirement,
    Reservations,
    Resources,
    Strategy,
    evaluate,
    replica_price,
    schedule,
)

GI = 1 << 30
MODELS = ("nvidia-a100", "nvidia-l4")
REGIONS = ("eu-west", "eu-central", "us-east")
NAMES = tuple(f"prov-{c}" for c in "abcdefgh")

EXAMPLES = int(os.environ.get("KOMMONS_SCHEDULER_EXAMPLES", "30"))
"""Examples per property; raise it for a thorough run (the default keeps the suite fast)."""
FAST = settings(max_examples=EXAMPLES, deadline=None)


SELECTORS = (
    LabelSelector({"tier": "x"}),
    LabelSelector(match_expressions=(Requirement("gpu", Operator.NOT_IN, frozenset({"y"})),)),
)


def rare(draw: st.DrawFn) -> bool:
    """True about one time in eight: keeps most examples feasible enough to place something."""
    return draw(st.sampled_from([False] * 7 + [True]))


@st.composite
def providers(draw: st.DrawFn) -> list[ProviderView]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    views = []
    for name in names:
        gpus = draw(st.dictionaries(st.sampled_from(MODELS), st.integers(0, 4)))
        gpu_prices = draw(st.dictionaries(st.sampled_from(MODELS), st.integers(0, 3_000_000)))
        views.append(
            ProviderView(
                name=name,
                region=draw(st.sampled_from(REGIONS)),
                labels=draw(
                    st.dictionaries(st.sampled_from(["tier", "gpu"]), st.sampled_from(["x", "y"]))
                ),
                ready=not rare(draw),
                phase="Ready",
                cordoned=rare(draw),
                reputation=draw(st.floats(0.0, 1.0)) if rare(draw) else 1.0,
                available=Resources(
                    cpu_milli=0 if rare(draw) else draw(st.integers(1, 16)) * 500,
                    memory_bytes=0 if rare(draw) else draw(st.integers(1, 16)) * GI // 2,
                    gpus=gpus,
                    pods=0 if rare(draw) else draw(st.integers(1, 12)),
                ),
                pricing=Pricing(
                    cpu_core_hour=draw(st.integers(0, 100_000)),
                    memory_gib_hour=draw(st.integers(0, 10_000)),
                    gpu_hour=gpu_prices,
                ),
                observed_at=0.0,
            )
        )
    return views


@st.composite
def leases(draw: st.DrawFn, key: str = "ns/lease") -> LeaseRequest:
    gpu_count = draw(st.sampled_from([0, 0, 1, 2]))
    return LeaseRequest(
        key=key,
        replicas=0 if rare(draw) else draw(st.integers(1, 10)),
        resources=ReplicaResources(
            cpu_milli=draw(st.integers(1, 8).map(lambda n: n * 250)),
            memory_bytes=draw(st.integers(1, 8).map(lambda n: n * GI // 4)),
            gpu_count=gpu_count,
            gpu_model=draw(st.sampled_from([None, *MODELS])) if gpu_count else None,
        ),
        max_price_per_hour=draw(st.integers(0, 5_000_000)) if draw(st.booleans()) else None,
        regions=draw(st.frozensets(st.sampled_from(REGIONS))) if rare(draw) else frozenset(),
        providers=draw(st.frozensets(st.sampled_from(NAMES))) if rare(draw) else frozenset(),
        spread=draw(st.booleans()),
    )


@st.composite
def pools(draw: st.DrawFn) -> PoolPolicy:
    selector = draw(st.sampled_from(SELECTORS)) if rare(draw) else None
    return PoolPolicy(
        strategy=draw(st.sampled_from(list(Strategy))),
        selector=selector,
        regions=draw(st.frozensets(st.sampled_from(REGIONS))) if rare(draw) else frozenset(),
        min_reputation=draw(st.sampled_from([0.0, 0.0, 0.5, 0.8])),
    )


def assert_within(decision: Decision, lease: LeaseRequest, free: dict[str, Resources]) -> None:
    need = lease.resources
    for p in decision.chosen:
        have = free[p.provider]
        assert p.replicas >= 1
        assert p.replicas * need.cpu_milli <= have.cpu_milli
        assert p.replicas * need.memory_bytes <= have.memory_bytes
        if need.gpu_count:
            assert p.gpu_model is not None
            assert p.replicas * need.gpu_count <= have.gpus.get(p.gpu_model, 0)
        else:
            assert p.gpu_model is None


@FAST
@given(providers(), leases(), pools(), st.frozensets(st.sampled_from(NAMES), max_size=2))
def test_decision_invariants(
    views: list[ProviderView], lease: LeaseRequest, pool: PoolPolicy, exclude: frozenset[str]
) -> None:
    decision = schedule(lease, views, pool, exclude=exclude)
    by_name = {v.name: v for v in views}
    free = {v.name: v.available for v in views}

    # never over-commits
    assert_within(decision, lease, free)
    # every provider is feasible or rejected with a reason
    assert decision.considered == len(views)
    assert decision.feasible + len(decision.rejected) == len(views)
    assert all(reason.strip() for reason in decision.rejected.values())
    # chosen providers pass every filter, at the price they were chosen for
    ctx = FilterContext(lease=lease, pool=pool, exclude=exclude)
    chosen = {p.provider for p in decision.chosen}
    assert len(chosen) == len(decision.chosen)
    assert not chosen & set(decision.rejected)
    candidates = {}
    for name, view in by_name.items():
        outcome = evaluate(view, view.available, ctx)
        if isinstance(outcome, Candidate):
            candidates[name] = outcome
        else:
            assert decision.rejected[name] == outcome
    for p in decision.chosen:
        view = by_name[p.provider]
        assert view.ready
        assert not view.cordoned
        assert view.name not in exclude
        assert view.reputation >= pool.min_reputation
        assert not lease.regions or view.region in lease.regions
        assert not pool.regions or view.region in pool.regions
        assert pool.selector is None or pool.selector.matches(view.labels)
        assert p.price_per_hour == candidates[p.provider].price
        assert lease.max_price_per_hour is None or p.price_per_hour <= lease.max_price_per_hour
    # all or nothing
    capacity = sum(c.slots for c in candidates.values())
    assert decision.scheduled == (lease.replicas <= capacity)
    assert decision.placed == (lease.replicas if decision.scheduled else 0)
    # spread lands on distinct providers when there are enough feasible ones
    spread = lease.spread or pool.strategy is Strategy.SPREAD
    if spread and decision.scheduled and len(candidates) >= lease.replicas:
        assert all(p.replicas == 1 for p in decision.chosen)
    # lowest price without spread leaves no cheaper feasible provider unused
    if pool.strategy is Strategy.LOWEST_PRICE and not spread and decision.chosen:
        dearest = max(p.price_per_hour for p in decision.chosen)
        unused = [c for name, c in candidates.items() if name not in chosen]
        assert all(c.price >= dearest for c in unused)
    # status is renderable
    status = decision.to_status()
    assert sum(c["replicas"] for c in status["chosen"]) == decision.placed


@FAST
@given(providers(), leases(), pools(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_provider_order(
    views: list[ProviderView], lease: LeaseRequest, pool: PoolPolicy, rnd: object
) -> None:
    shuffled = list(views)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert schedule(lease, views, pool) == schedule(lease, shuffled, pool)


@FAST
@given(
    providers(),
    st.lists(leases(), min_size=2, max_size=8),
    pools(),
)
def test_burst_never_overcommits_with_the_ledger(
    views: list[ProviderView], burst: list[LeaseRequest], pool: PoolPolicy
) -> None:
    ledger = Reservations()
    used = {v.name: {"cpu": 0, "memory": 0, **{m: 0 for m in MODELS}} for v in views}
    for i, base in enumerate(burst):
        lease = LeaseRequest(
            key=f"ns/l{i}",
            replicas=base.replicas,
            resources=base.resources,
            max_price_per_hour=base.max_price_per_hour,
            regions=base.regions,
            providers=base.providers,
            spread=base.spread,
        )
        decision = schedule(lease, views, pool, ledger)
        ledger.record(decision, lease, at=1.0 + i)  # every report is older (observed_at=0)
        for p in decision.chosen:
            total = used[p.provider]
            total["cpu"] += p.replicas * lease.resources.cpu_milli
            total["memory"] += p.replicas * lease.resources.memory_bytes
            if p.gpu_model:
                total[p.gpu_model] += p.replicas * lease.resources.gpu_count
    for view in views:
        total = used[view.name]
        assert total["cpu"] <= view.available.cpu_milli
        assert total["memory"] <= view.available.memory_bytes
        for model in MODELS:
            assert total[model] <= view.available.gpus.get(model, 0)


@FAST
@given(providers(), leases(), pools())
def test_already_placed_only_missing_replicas_are_placed(
    views: list[ProviderView], lease: LeaseRequest, pool: PoolPolicy
) -> None:
    kept = {v.name: 1 for v in views[:2]}
    decision = schedule(lease, views, pool, already_placed=kept)
    missing = max(0, lease.replicas - sum(kept.values()))
    assert decision.wanted == missing
    assert decision.placed in (0, missing)
    assert decision.scheduled == (decision.placed == missing)


@FAST
@given(
    st.integers(1, 10**6),
    st.integers(1, 2**40),
    st.integers(0, 16),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
)
def test_price_is_the_exact_price_rounded_up(
    cpu: int, memory: int, gpus: int, cpu_price: int, memory_price: int, gpu_price: int
) -> None:
    exact = Fraction(cpu, 1000) * cpu_price + Fraction(memory, GI) * memory_price + gpus * gpu_price
    price = replica_price(
        cpu_milli=cpu,
        memory_bytes=memory,
        gpu_count=gpus,
        cpu_core_hour=cpu_price,
        memory_gib_hour=memory_price,
        gpu_hour=gpu_price,
    )
    assert exact <= price < exact + 1
