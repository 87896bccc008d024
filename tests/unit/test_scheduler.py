"""Example-based tests of the pure scheduler (``kommons.scheduler``).

Behaviour matrix:

- money: exact formatting/parsing of base units; replica price rounded up once.
- selector: matchLabels AND matchExpressions with In, NotIn, Exists, DoesNotExist; invalid
  requirements refused.
- filters: each rejection reason, and that the first failing filter (fixed order) wins; a
  lease with public ports only goes where the provider's publishing mode can publish them.
- strategies: LowestPrice, BinPack, Spread, Balanced ordering; name tie-break.
- allocation: fill best-first, spread round-robin, all or nothing, exclude, already placed.
- output: ``Decision.to_status`` camelCase with money strings; messages.
- reservations: a burst cannot over-commit; reflected reservations stop counting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from kommons.scheduler import (
    BALANCED_WEIGHTS,
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
    effective_available,
    format_bytes,
    format_price,
    format_units,
    matches_selector,
    parse_units,
    placement_key,
    replica_price,
    schedule,
)

GI = 1 << 30
TOKEN = 1_000_000  # base units per token at the default 6 decimals


def provider(
    name: str,
    *,
    cpu: int = 8000,
    memory: int = 32 * GI,
    gpus: Mapping[str, int] | None = None,
    pods: int = 110,
    cpu_price: int = TOKEN // 50,  # 0.02 per core-hour
    memory_price: int = 3000,  # 0.003 per GiB-hour
    gpu_price: Mapping[str, int] | None = None,
    region: str = "eu-west",
    labels: Mapping[str, str] | None = None,
    ready: bool = True,
    phase: str = "Ready",
    cordoned: bool = False,
    reputation: float = 1.0,
    observed_at: float = 0.0,
) -> ProviderView:
    return ProviderView(
        name=name,
        region=region,
        labels=labels or {},
        ready=ready,
        phase=phase,
        cordoned=cordoned,
        reputation=reputation,
        available=Resources(cpu_milli=cpu, memory_bytes=memory, gpus=gpus or {}, pods=pods),
        pricing=Pricing(
            cpu_core_hour=cpu_price, memory_gib_hour=memory_price, gpu_hour=gpu_price or {}
        ),
        observed_at=observed_at,
    )


def lease(
    *,
    replicas: int = 1,
    cpu: int = 1000,
    memory: int = GI,
    gpu_count: int = 0,
    gpu_model: str | None = None,
    max_price: int | None = None,
    regions: frozenset[str] = frozenset(),
    providers: frozenset[str] = frozenset(),
    spread: bool = False,
    key: str = "team-a/train",
) -> LeaseRequest:
    return LeaseRequest(
        key=key,
        replicas=replicas,
        resources=ReplicaResources(
            cpu_milli=cpu, memory_bytes=memory, gpu_count=gpu_count, gpu_model=gpu_model
        ),
        max_price_per_hour=max_price,
        regions=regions,
        providers=providers,
        spread=spread,
    )


POOL = PoolPolicy()


# --- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [
        (1_234_500, 6, "1.2345"),
        (1_000_000, 6, "1.00"),
        (5, 6, "0.000005"),
        (0, 6, "0.00"),
        (7, 0, "7"),
        (15, 1, "1.5"),
        (10**18 + 1, 18, "1.000000000000000001"),
    ],
)
def test_format_price_is_exact_with_two_places_at_least(
    amount: int, decimals: int, text: str
) -> None:
    assert format_price(amount, decimals=decimals) == text


def test_money_helpers_are_the_projects_own() -> None:
    import kommons.money

    assert format_units is kommons.money.format_units
    assert parse_units is kommons.money.parse_units


def test_format_bytes_uses_exact_binary_suffixes() -> None:
    assert format_bytes(2 * GI) == "2Gi"
    assert format_bytes(GI + GI // 2) == "1536Mi"
    assert format_bytes(1000) == "1000"
    assert format_bytes(0) == "0"


def test_replica_price_is_rounded_up_once_over_the_exact_sum() -> None:
    # 1 core at 0.02 + 1 GiB at 0.003 + 1 gpu at 1.10 = 1.123 exactly
    exact = replica_price(
        cpu_milli=1000,
        memory_bytes=GI,
        gpu_count=1,
        cpu_core_hour=20_000,
        memory_gib_hour=3000,
        gpu_hour=1_100_000,
    )
    assert exact == 1_123_000
    # 1m of a 1-unit core-hour is 1/1000 unit: rounds up to 1, never to 0
    assert (
        replica_price(
            cpu_milli=1,
            memory_bytes=1,
            gpu_count=0,
            cpu_core_hour=1,
            memory_gib_hour=1,
            gpu_hour=0,
        )
        == 1
    )
    # two fractions summing to exactly one unit round once, not twice
    assert (
        replica_price(
            cpu_milli=500,
            memory_bytes=GI // 2,
            gpu_count=0,
            cpu_core_hour=1,
            memory_gib_hour=1,
            gpu_hour=0,
        )
        == 1
    )


# --- selector ----------------------------------------------------------------------------

LABELS = {"tier": "gold", "gpu": "yes", "zone": "a"}


@pytest.mark.parametrize(
    ("match_labels", "expressions", "expected"),
    [
        ({}, (), True),
        ({"tier": "gold"}, (), True),
        ({"tier": "silver"}, (), False),
        ({"missing": "x"}, (), False),
        ({}, (Requirement("tier", Operator.IN, frozenset({"gold", "silver"})),), True),
        ({}, (Requirement("tier", Operator.IN, frozenset({"silver"})),), False),
        ({}, (Requirement("missing", Operator.IN, frozenset({"x"})),), False),
        ({}, (Requirement("tier", Operator.NOT_IN, frozenset({"silver"})),), True),
        ({}, (Requirement("tier", Operator.NOT_IN, frozenset({"gold"})),), False),
        ({}, (Requirement("missing", Operator.NOT_IN, frozenset({"x"})),), True),
        ({}, (Requirement("gpu", Operator.EXISTS),), True),
        ({}, (Requirement("missing", Operator.EXISTS),), False),
        ({}, (Requirement("missing", Operator.DOES_NOT_EXIST),), True),
        ({}, (Requirement("gpu", Operator.DOES_NOT_EXIST),), False),
        (
            {"tier": "gold"},
            (
                Requirement("zone", Operator.IN, frozenset({"a"})),
                Requirement("gpu", Operator.EXISTS),
            ),
            True,
        ),
        (
            {"tier": "gold"},
            (
                Requirement("zone", Operator.IN, frozenset({"b"})),
                Requirement("gpu", Operator.EXISTS),
            ),
            False,
        ),
    ],
)
def test_matches_selector(
    match_labels: dict[str, str], expressions: tuple[Requirement, ...], expected: bool
) -> None:
    assert matches_selector(LABELS, match_labels, expressions) is expected
    assert LabelSelector(match_labels, expressions).matches(LABELS) is expected


def test_requirement_accepts_operator_strings() -> None:
    assert Requirement("tier", "In", frozenset({"gold"})).matches(LABELS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operator", "values"),
    [
        (Operator.IN, frozenset()),
        (Operator.NOT_IN, frozenset()),
        (Operator.EXISTS, frozenset({"x"})),
    ],
)
def test_invalid_requirements_are_refused(operator: Operator, values: frozenset[str]) -> None:
    with pytest.raises(ValueError, match="tier"):
        Requirement("tier", operator, values)


# --- filters: one test per reason --------------------------------------------------------


def reason(view: ProviderView, request: LeaseRequest, pool: PoolPolicy = POOL) -> str:
    decision = schedule(request, [view], pool)
    assert not decision.scheduled
    assert decision.feasible == 0
    return decision.rejected[view.name]


def test_reason_not_selected_by_pool() -> None:
    pool = PoolPolicy(selector=LabelSelector({"tier": "gold"}))
    assert reason(provider("a", labels={"tier": "bronze"}), lease(), pool) == "not selected by pool"


def test_reason_not_ready_quotes_phase() -> None:
    view = provider("a", ready=False, phase="Unreachable")
    assert reason(view, lease()) == "not ready (phase Unreachable)"


def test_reason_cordoned() -> None:
    assert reason(provider("a", cordoned=True), lease()) == "cordoned"


def test_reason_pool_region() -> None:
    pool = PoolPolicy(regions=frozenset({"eu-west", "eu-central"}))
    got = reason(provider("a", region="us-east"), lease(), pool)
    assert got == "region us-east not in pool regions [eu-central, eu-west]"


def test_reason_lease_region() -> None:
    request = lease(regions=frozenset({"eu-west", "eu-central"}))
    assert reason(provider("a", region="us-east"), request) == (
        "region us-east not in [eu-central, eu-west]"
    )


def test_reason_provider_allow_list() -> None:
    got = reason(provider("a"), lease(providers=frozenset({"b"})))
    assert got == "not in the lease's provider allow-list"


def test_reason_excluded() -> None:
    decision = schedule(lease(), [provider("a")], POOL, exclude=frozenset({"a"}))
    assert decision.rejected == {"a": "excluded from this decision (being replaced)"}


@pytest.mark.parametrize(
    ("mode", "protocols", "why"),
    [
        ("None", {"TCP"}, "publishes no public ports (expose.mode None)"),
        ("Ingress", {"TCP", "UDP"}, "publishes through an Ingress (HTTP over TCP): no public UDP"),
        ("Ingress", {"TCP"}, ""),
        ("NodePort", {"TCP", "UDP"}, ""),
        ("LoadBalancer", {"UDP"}, ""),
        ("None", set(), ""),
    ],
)
def test_reason_public_ports_the_provider_cannot_publish(
    mode: str, protocols: set[str], why: str
) -> None:
    view = replace(provider("a"), publish_mode=mode)
    request = replace(lease(), public_protocols=frozenset(protocols))
    if why:
        assert reason(view, request).startswith(why)
        assert schedule(request, [view], POOL).rejected_counts == {"PortNotPublishable": 1}
    else:
        assert schedule(request, [view], POOL).scheduled


def test_reason_reputation() -> None:
    pool = PoolPolicy(min_reputation=0.8)
    assert reason(provider("a", reputation=0.42), lease(), pool) == "reputation 0.42 < 0.80"
    # never prints two equal-looking numbers
    assert reason(provider("a", reputation=0.799), lease(), pool) == "reputation 0.7990 < 0.8000"


def test_reason_gpu_model_missing_lists_what_the_provider_has() -> None:
    view = provider("a", gpus={"nvidia-l4": 2}, gpu_price={"nvidia-l4": TOKEN})
    request = lease(gpu_count=1, gpu_model="nvidia-a100")
    assert reason(view, request) == "no gpu nvidia-a100 (has: nvidia-l4)"
    assert reason(provider("b"), request) == "no gpu nvidia-a100 (has: none)"
    assert reason(provider("b"), lease(gpu_count=1)) == "no gpu (has: none)"
    unpriced = provider("c", gpus={"nvidia-l4": 1})
    assert reason(unpriced, lease(gpu_count=1)) == "no gpu with a price (has: nvidia-l4)"


def test_reason_gpu_without_price() -> None:
    view = provider("a", gpus={"nvidia-a100": 2})
    got = reason(view, lease(gpu_count=1, gpu_model="nvidia-a100"))
    assert got == "gpu nvidia-a100 offered without a price"


def test_reason_price_above_max() -> None:
    # 1 core at 1.2345 + 1 GiB free of charge
    view = provider("a", cpu_price=1_234_500, memory_price=0)
    assert reason(view, lease(max_price=TOKEN)) == "price 1.2345/h > max 1.00/h"


def test_price_equal_to_max_passes() -> None:
    view = provider("a", cpu_price=TOKEN, memory_price=0)
    assert schedule(lease(max_price=TOKEN), [view], POOL).scheduled


def test_reason_price_uses_the_given_formatter() -> None:
    view = provider("a", cpu_price=15, memory_price=0)
    decision = schedule(
        lease(max_price=10), [view], POOL, money=lambda amount: format_price(amount, decimals=1)
    )
    assert decision.rejected["a"] == "price 1.5/h > max 1.0/h"


def test_reason_insufficient_gpu() -> None:
    view = provider("a", gpus={"nvidia-a100": 0}, gpu_price={"nvidia-a100": TOKEN})
    got = reason(view, lease(gpu_count=1, gpu_model="nvidia-a100"))
    assert got == "insufficient gpu nvidia-a100 (0 < 1)"


def test_reason_insufficient_cpu() -> None:
    assert (
        reason(provider("a", cpu=1500), lease(cpu=2000)) == "insufficient cpu (1500m free < 2000m)"
    )


def test_reason_insufficient_memory() -> None:
    got = reason(provider("a", memory=GI + GI // 2), lease(memory=2 * GI))
    assert got == "insufficient memory (1536Mi free < 2Gi)"


def test_first_failing_filter_wins() -> None:
    # not ready AND cordoned AND wrong region AND too small: readiness comes first
    view = provider("a", ready=False, phase="NotReady", cordoned=True, region="us", cpu=1)
    assert reason(view, lease(regions=frozenset({"eu"}))) == "not ready (phase NotReady)"
    view = provider("a", cordoned=True, region="us", cpu=1)
    assert reason(view, lease(regions=frozenset({"eu"}))) == "cordoned"


def test_gpu_lease_lands_on_the_provider_with_that_model() -> None:
    a = provider("a", gpus={"nvidia-l4": 4}, gpu_price={"nvidia-l4": TOKEN})
    b = provider("b", gpus={"nvidia-a100": 1}, gpu_price={"nvidia-a100": 2 * TOKEN})
    decision = schedule(lease(gpu_count=1, gpu_model="nvidia-a100"), [a, b], POOL)
    assert [(p.provider, p.replicas, p.gpu_model) for p in decision.chosen] == [
        ("b", 1, "nvidia-a100")
    ]
    assert decision.rejected == {"a": "no gpu nvidia-a100 (has: nvidia-l4)"}


def test_gpu_lease_without_model_takes_cheapest_model_with_room() -> None:
    view = provider(
        "a",
        gpus={"nvidia-a100": 1, "nvidia-l4": 0, "nvidia-t4": 2},
        gpu_price={"nvidia-a100": 3 * TOKEN, "nvidia-l4": TOKEN, "nvidia-t4": 2 * TOKEN},
    )
    decision = schedule(lease(replicas=2, gpu_count=1), [view], POOL)
    assert decision.chosen[0].gpu_model == "nvidia-t4"
    assert decision.chosen[0].replicas == 2


# --- strategies --------------------------------------------------------------------------


def order(
    strategy: Strategy, views: list[ProviderView], request: LeaseRequest | None = None
) -> list[str]:
    request = request or lease(replicas=1)
    from kommons.scheduler import FilterContext, evaluate, rank

    ctx = FilterContext(lease=request, pool=PoolPolicy(strategy=strategy))
    candidates = [evaluate(v, v.available, ctx) for v in views]
    return [c.name for c in rank([c for c in candidates if not isinstance(c, str)], strategy)]


def test_lowest_price_orders_by_price_then_reputation_then_name() -> None:
    views = [
        provider("d", cpu_price=30_000),
        provider("c", cpu_price=10_000, reputation=0.9),
        provider("b", cpu_price=10_000),
        provider("a", cpu_price=10_000),
    ]
    assert order(Strategy.LOWEST_PRICE, views) == ["a", "b", "c", "d"]


def test_bin_pack_prefers_least_headroom() -> None:
    views = [provider("big", cpu=16_000), provider("small", cpu=2000), provider("mid", cpu=4000)]
    assert order(Strategy.BIN_PACK, views) == ["small", "mid", "big"]


def test_spread_prefers_most_headroom() -> None:
    views = [provider("big", cpu=16_000), provider("small", cpu=2000), provider("mid", cpu=4000)]
    assert order(Strategy.SPREAD, views) == ["big", "mid", "small"]


def test_balanced_weighs_price_reputation_and_headroom() -> None:
    assert sum(BALANCED_WEIGHTS) == 1
    views = [
        # cheapest but poor reputation: 0.5*0 + 0.3*0.5 + 0.2*0 = 0.15
        provider("cheap", cpu_price=10_000, reputation=0.5),
        # dearest, perfect reputation: 0.5*1 + 0 + 0 = 0.5
        provider("dear", cpu_price=30_000),
        # middle price, perfect: 0.5*0.5 + 0 + 0 = 0.25
        provider("mid", cpu_price=20_000),
    ]
    assert order(Strategy.BALANCED, views) == ["cheap", "mid", "dear"]
    # with equal prices, reputation decides
    views = [provider("x", reputation=0.9), provider("y", reputation=0.95)]
    assert order(Strategy.BALANCED, views) == ["y", "x"]


def test_bin_pack_fills_one_provider_before_the_next() -> None:
    views = [provider("a", cpu=4000), provider("b", cpu=3000)]
    decision = schedule(lease(replicas=3), views, PoolPolicy(strategy=Strategy.BIN_PACK))
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("b", 3)]


# --- allocation --------------------------------------------------------------------------


def test_without_spread_fills_best_then_next() -> None:
    views = [provider("cheap", cpu=2000, cpu_price=10_000), provider("dear", cpu_price=20_000)]
    decision = schedule(lease(replicas=5), views, POOL)
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("cheap", 2), ("dear", 3)]
    assert decision.scheduled
    assert decision.placed == 5


def test_spread_round_robins_in_rank_order() -> None:
    views = [provider(n, cpu_price=p) for n, p in [("a", 10_000), ("b", 20_000), ("c", 30_000)]]
    decision = schedule(lease(replicas=4, spread=True), views, POOL)
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("a", 2), ("b", 1), ("c", 1)]


def test_spread_strategy_implies_spread_and_skips_full_providers() -> None:
    views = [provider("a", cpu=1000), provider("b", cpu=8000)]
    decision = schedule(lease(replicas=3), views, PoolPolicy(strategy=Strategy.SPREAD))
    assert {p.provider: p.replicas for p in decision.chosen} == {"a": 1, "b": 2}


def test_all_or_nothing_when_total_capacity_is_short() -> None:
    views = [provider("a", cpu=2000), provider("b", cpu=1000), provider("c", cordoned=True)]
    decision = schedule(lease(replicas=4), views, POOL)
    assert not decision.scheduled
    assert decision.chosen == ()
    assert decision.feasible == 2
    assert decision.message == (
        "2/3 providers feasible but they fit only 3 of 4 replica(s) (all or nothing); "
        "rejected: 1 Cordoned; c: cordoned"
    )


def test_no_feasible_provider_message_lists_reasons() -> None:
    views = [provider("a", cordoned=True), provider("b", cpu=10)]
    decision = schedule(lease(), views, POOL)
    assert decision.message == (
        "0/2 providers feasible: 1 Cordoned, 1 InsufficientCpu; a: cordoned; "
        "b: insufficient cpu (10m free < 1000m)"
    )


def test_message_quotes_at_most_five_reasons() -> None:
    views = [provider(f"p{i}", cordoned=True) for i in range(7)]
    assert schedule(lease(), views, POOL).message.endswith("p4: cordoned; and 2 more")


def test_already_placed_replicas_are_not_placed_again() -> None:
    views = [provider("a"), provider("b"), provider("c")]
    decision = schedule(
        lease(replicas=3, spread=True),
        views,
        POOL,
        exclude=frozenset({"a"}),
        already_placed={"b": 2},
    )
    # one replica missing; spread avoids b which already holds two
    assert decision.wanted == 1
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("c", 1)]


def test_nothing_missing_is_trivially_scheduled() -> None:
    decision = schedule(lease(replicas=2), [provider("a")], POOL, already_placed={"a": 2})
    assert decision.scheduled
    assert decision.chosen == ()
    assert decision.wanted == 0


def test_zero_providers() -> None:
    decision = schedule(lease(), [], POOL)
    assert not decision.scheduled
    assert decision.message == "0/0 providers feasible"


def test_duplicate_provider_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        schedule(lease(), [provider("a"), provider("a")], POOL)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReplicaResources(cpu_milli=0, memory_bytes=1),
        lambda: Resources(cpu_milli=-1),
        lambda: Resources(gpus={"x": -1}),
        lambda: lease(replicas=-1),
        lambda: lease(max_price=-1),
        lambda: provider("a", reputation=1.5),
        lambda: PoolPolicy(min_reputation=-0.1),
        lambda: PoolPolicy(strategy="Random"),  # type: ignore[arg-type]
    ],
)
def test_invalid_inputs_are_refused(build: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each constructor names its own field
        build()  # type: ignore[operator]


# --- output ------------------------------------------------------------------------------


def test_to_status_is_camel_case_with_money_strings() -> None:
    views = [
        provider("a", cpu=1000, cpu_price=TOKEN, memory_price=234_500),
        provider("b", cordoned=True),
    ]
    decision = schedule(lease(), views, POOL)
    assert decision.to_status() == {
        "considered": 2,
        "feasible": 1,
        "chosen": [{"provider": "a", "replicas": 1, "pricePerHour": "1.2345"}],
        "rejected": {"b": "cordoned"},
        "rejectedCounts": {"Cordoned": 1},
    }
    assert decision.message == "placed 1 replica(s) on a (1); 1/2 providers feasible"
    assert decision.to_status(decimals=2)["chosen"][0]["pricePerHour"] == "12345.00"


def test_decision_is_independent_of_provider_order() -> None:
    views = [provider(n, cpu=2000, cpu_price=10_000) for n in "edcba"]
    first = schedule(lease(replicas=3), views, POOL)
    second = schedule(lease(replicas=3), list(reversed(views)), POOL)
    assert first == second
    assert [p.provider for p in first.chosen] == ["a", "b"]


# --- reservations ------------------------------------------------------------------------


def test_burst_of_leases_cannot_overcommit_one_provider() -> None:
    ledger = Reservations()
    view = provider("a", cpu=4000, observed_at=100.0)
    outcomes = []
    for i in range(6):
        request = lease(key=f"team/l{i}", cpu=1000)
        decision = schedule(request, [view], POOL, ledger)
        outcomes.append(decision.scheduled)
        ledger.record(decision, request, at=101.0 + i)
    assert outcomes == [True, True, True, True, False, False]
    assert ledger.effective_available(view).cpu_milli == 0
    assert schedule(lease(key="team/x"), [view], POOL, ledger).rejected["a"] == (
        "insufficient cpu (0m free < 1000m)"
    )


def test_a_newer_report_includes_reservations_made_before_it() -> None:
    ledger = Reservations()
    ledger.reserve(key="k1", provider="a", resources=Resources(cpu_milli=1000), at=10.0)
    ledger.reserve(key="k2", provider="a", resources=Resources(cpu_milli=500), at=20.0)
    view = provider("a", cpu=4000, observed_at=15.0)
    # k1 (made before the report) is reflected, k2 is not
    assert ledger.effective_available(view).cpu_milli == 3500
    assert effective_available(view, ledger).cpu_milli == 3500
    # an equally old report does not count; a strictly newer one does
    assert ledger.effective_available(provider("a", cpu=4000, observed_at=10.0)).cpu_milli == 2500
    dropped = ledger.observe(view)
    assert [r.key for r in dropped] == ["k1"]
    assert len(ledger) == 1


def test_settle_seconds_keeps_reservations_until_the_agent_had_time() -> None:
    ledger = Reservations(settle_seconds=30.0)
    ledger.reserve(key="k", provider="a", resources=Resources(cpu_milli=1000), at=100.0)
    assert ledger.effective_available(provider("a", cpu=4000, observed_at=120.0)).cpu_milli == 3000
    assert ledger.effective_available(provider("a", cpu=4000, observed_at=130.0)).cpu_milli == 4000


def test_accounted_placements_are_reflected_immediately() -> None:
    ledger = Reservations(settle_seconds=1e9)
    ledger.reserve(key="k", provider="a", resources=Resources(cpu_milli=1000), at=100.0)
    view = ProviderView(
        name="a",
        region="eu-west",
        available=Resources(cpu_milli=4000, memory_bytes=GI),
        pricing=Pricing(),
        observed_at=50.0,
        accounted=frozenset({"k"}),
    )
    assert ledger.effective_available(view).cpu_milli == 4000


def test_reserving_a_pending_key_adds_and_restamps() -> None:
    ledger = Reservations()
    ledger.reserve(key="k", provider="a", resources=Resources(gpus={"g": 1}), at=1.0)
    held = ledger.reserve(key="k", provider="a", resources=Resources(gpus={"g": 2}), at=5.0)
    assert held.resources.gpus == {"g": 3}
    assert held.created_at == 5.0


def test_record_and_release() -> None:
    ledger = Reservations()
    request = lease(replicas=3, gpu_count=1, gpu_model="g", key="ns/l")
    views = [
        provider("a", gpus={"g": 2}, gpu_price={"g": 1}),
        provider("b", gpus={"g": 2}, gpu_price={"g": 2}),
    ]
    decision = schedule(request, views, POOL, ledger)
    held = ledger.record(decision, request, at=1.0)
    assert [(r.key, r.resources.gpus["g"], r.resources.cpu_milli) for r in held] == [
        (placement_key("ns/l", "a"), 2, 2000),
        ("ns/l@b", 1, 1000),
    ]
    assert ledger.release("ns/l@a", "a") is not None
    assert ledger.release("ns/l@a", "a") is None
    assert [r.key for r in ledger.release_lease("ns/l")] == ["ns/l@b"]
    assert len(ledger) == 0


def test_negative_settle_is_refused() -> None:
    with pytest.raises(ValueError, match="settle_seconds"):
        Reservations(settle_seconds=-1)


# --- purity ------------------------------------------------------------------------------


def test_scheduler_imports_only_the_standard_library_and_kommons_money() -> None:
    import ast
    import sys
    from pathlib import Path

    import kommons.scheduler

    allowed = {"kommons.money", "kommons.scheduler"}
    for path in Path(kommons.scheduler.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                ok = top in sys.stdlib_module_names or any(
                    module == a or module.startswith(a + ".") for a in allowed
                )
                assert ok, f"{path.name} imports {module}"
