"""Dynamic provider pricing (``Provider.spec.pricing.policy``): the curve, the quote, decisions.

Behaviour matrix:

- curve: Static (maxMultiplier 1) = 1 whatever the load; Utilization idle = 1, full =
  maxMultiplier, a zero ceiling counts as full; linear in the utilisation of the scarcest
  dimension, rounded up to 1/10000 (property: exact formula, bounded by 1 and maxMultiplier,
  monotonic as free capacity falls, gpus only when the lease asks for them).
- quote: the list price times the multiplier, rounded up once to a base unit (property: exact
  against a Fraction, never below the list price, at most maxMultiplier × list + 1 unit);
  multiplier 1 = today's ``replica_price``.
- decisions (``schedule`` and ``Market``): a busy Utilization provider with the lower list
  price loses a LowestPrice decision to a quieter one with a higher list price; the quote
  counts capacity held in the same burst; the max-price filter and the reason use the quote;
  the locked price is the quote, with list price and multiplier in the Placement, the status
  (only when multiplied) and the message.
- hub views: policy Utilization → maxMultiplier in ten-thousandths, ceiling = allocatable capped
  by the offer (GPU models by the offer's total); Static → multiplier 1; an out-of-bounds
  multiplier (the API refuses it; the hub checks again) excludes the provider with a reason.
- API: maxMultiplier from 1 to 10 with at most 4 decimals; a Static policy with a multiplier
  other than 1 is refused naming maxMultiplier.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kommons.api import PricingPolicy, Provider
from kommons.hub.views import ProviderHealth, provider_view
from kommons.scheduler import (
    MULTIPLIER_ONE,
    LeaseRequest,
    Market,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Resources,
    Strategy,
    placement_key,
    quote,
    replica_price,
    schedule,
    utilization_multiplier,
)

GI = 1 << 30
TOKEN = 1_000_000
CORES = 1000


def multiplier(max_m: int, free: int, ceiling: int) -> int:
    """The multiplier with cpu the scarcest dimension (memory idle)."""
    return utilization_multiplier(
        max_m, free_cpu=free, ceiling_cpu=ceiling, free_memory=GI, ceiling_memory=GI
    )


# --- the curve -------------------------------------------------------------------------


def test_static_is_one_whatever_the_load() -> None:
    assert multiplier(MULTIPLIER_ONE, 0, 8 * CORES) == MULTIPLIER_ONE
    assert multiplier(MULTIPLIER_ONE, 8 * CORES, 8 * CORES) == MULTIPLIER_ONE


def test_idle_is_one_full_is_the_maximum_and_half_is_linear() -> None:
    assert multiplier(30_000, 8 * CORES, 8 * CORES) == MULTIPLIER_ONE
    assert multiplier(30_000, 0, 8 * CORES) == 30_000
    assert multiplier(30_000, 4 * CORES, 8 * CORES) == 20_000
    # a zero ceiling (nothing allocatable reported) counts as full
    assert multiplier(30_000, 0, 0) == 30_000


def test_rounding_is_up_to_a_ten_thousandth() -> None:
    # u = 1/3, 1 + 2/3 = 1.6666... -> 1.6667
    assert multiplier(30_000, 2 * CORES, 3 * CORES) == 16_667


def test_the_scarcest_dimension_sets_the_multiplier() -> None:
    got = utilization_multiplier(
        20_000,
        free_cpu=8 * CORES,
        ceiling_cpu=8 * CORES,
        free_memory=GI,
        ceiling_memory=4 * GI,
    )
    assert got == 17_500  # memory 3/4 used


def test_gpus_count_only_for_a_lease_asking_gpus_of_that_model() -> None:
    common: dict[str, Any] = {
        "free_cpu": 8 * CORES,
        "ceiling_cpu": 8 * CORES,
        "free_memory": GI,
        "ceiling_memory": GI,
        "free_gpus": {"a100": 0, "l4": 4},
        "ceiling_gpus": {"a100": 4, "l4": 4},
    }
    assert utilization_multiplier(20_000, **common) == MULTIPLIER_ONE
    assert utilization_multiplier(20_000, gpu_model="l4", **common) == MULTIPLIER_ONE
    assert utilization_multiplier(20_000, gpu_model="a100", **common) == 20_000


MAXES = st.integers(MULTIPLIER_ONE, 10 * MULTIPLIER_ONE)


@settings(max_examples=300, deadline=None)
@given(
    max_m=MAXES,
    ceiling=st.integers(0, 10**6),
    free=st.integers(0, 2 * 10**6),
    less=st.integers(0, 10**6),
)
def test_curve_is_exact_bounded_and_monotonic(
    max_m: int, ceiling: int, free: int, less: int
) -> None:
    got = multiplier(max_m, free, ceiling)
    used = Fraction(1) if ceiling == 0 else Fraction(min(ceiling, max(0, ceiling - free)), ceiling)
    exact = MULTIPLIER_ONE + (max_m - MULTIPLIER_ONE) * used
    assert got == -(-exact.numerator // exact.denominator)
    assert MULTIPLIER_ONE <= got <= max_m
    assert multiplier(max_m, max(0, free - less), ceiling) >= got


# --- the quote -------------------------------------------------------------------------

PRICE = st.integers(0, 10 * TOKEN)


@settings(max_examples=300, deadline=None)
@given(
    cpu=st.integers(1, 64 * CORES),
    memory=st.integers(1, 256 * GI),
    gpus=st.integers(0, 8),
    cpu_price=PRICE,
    memory_price=PRICE,
    gpu_price=PRICE,
    m=MAXES,
)
def test_quote_is_the_list_price_times_the_multiplier_rounded_up_once(
    cpu: int, memory: int, gpus: int, cpu_price: int, memory_price: int, gpu_price: int, m: int
) -> None:
    args = {
        "cpu_milli": cpu,
        "memory_bytes": memory,
        "gpu_count": gpus,
        "cpu_core_hour": cpu_price,
        "memory_gib_hour": memory_price,
        "gpu_hour": gpu_price,
    }
    got = quote(**args, multiplier=m)
    exact = (
        Fraction(cpu * cpu_price, CORES) + Fraction(memory * memory_price, GI) + gpus * gpu_price
    ) * Fraction(m, MULTIPLIER_ONE)
    assert got.price == -(-exact.numerator // exact.denominator)
    assert got.list_price == replica_price(**args)
    assert got.list_price <= got.price <= got.list_price * m // MULTIPLIER_ONE + 1
    assert got.multiplier == m
    static = quote(**args)
    assert static.price == static.list_price == replica_price(**args)


# --- decisions -------------------------------------------------------------------------


def view(
    name: str,
    *,
    cpu_price: int,
    free_cpu: int,
    max_m: int = MULTIPLIER_ONE,
    ceiling_cpu: int = 16 * CORES,
) -> ProviderView:
    return ProviderView(
        name=name,
        region="eu-west",
        available=Resources(cpu_milli=free_cpu, memory_bytes=64 * GI, pods=110),
        ceiling=Resources(cpu_milli=ceiling_cpu, memory_bytes=64 * GI, pods=110),
        pricing=Pricing(cpu_core_hour=cpu_price, memory_gib_hour=0, max_multiplier=max_m),
    )


def request(key: str = "ns/l", *, cpu: int = CORES, max_price: int | None = None) -> LeaseRequest:
    return LeaseRequest(
        key=key,
        replicas=1,
        resources=ReplicaResources(cpu_milli=cpu, memory_bytes=GI),
        max_price_per_hour=max_price,
    )


LOWEST = PoolPolicy(strategy=Strategy.LOWEST_PRICE)
# cheap: list 0.02/core-h, Utilization up to 3x, 12 of 16 cores busy -> x2.5 = 0.05
BUSY = view("cheap", cpu_price=20_000, free_cpu=4 * CORES, max_m=30_000)
# dear: list 0.03/core-h, static
QUIET = view("dear", cpu_price=30_000, free_cpu=16 * CORES)


def both(views: list[ProviderView], lease: LeaseRequest) -> Any:
    """The reference decision, after checking the market decides the same."""
    market = Market()
    for v in views:
        market.set_provider(v)
    decided = market.decide(lease, LOWEST)
    reference = schedule(lease, views, LOWEST)
    assert decided == reference
    return reference


def test_a_busy_cheaper_provider_loses_lowest_price_to_a_quiet_dearer_one() -> None:
    decision = both([BUSY, QUIET], request())
    assert [(p.provider, p.price_per_hour) for p in decision.chosen] == [("dear", 30_000)]
    # the same cheap provider idle wins at its list price
    idle = view("cheap", cpu_price=20_000, free_cpu=16 * CORES, max_m=30_000)
    decision = both([idle, QUIET], request())
    chosen = decision.chosen[0]
    assert (chosen.provider, chosen.price_per_hour, chosen.multiplier) == (
        "cheap",
        20_000,
        MULTIPLIER_ONE,
    )
    assert "listPricePerHour" not in decision.to_status()["chosen"][0]


def test_the_locked_price_is_the_quote_with_its_list_price_and_multiplier() -> None:
    decision = both([BUSY], request())
    chosen = decision.chosen[0]
    assert (chosen.price_per_hour, chosen.list_price_per_hour, chosen.multiplier) == (
        50_000,
        20_000,
        25_000,
    )
    status = decision.to_status()["chosen"][0]
    assert status == {
        "provider": "cheap",
        "replicas": 1,
        "pricePerHour": "0.05",
        "listPricePerHour": "0.02",
        "priceMultiplier": "2.5",
    }
    assert "cheap (1 at 0.05/h = 0.02/h list × 2.5)" in decision.message


def test_a_storage_lease_pays_the_multiplier_on_its_storage_too() -> None:
    """Storage is priced in the quote (times the multiplier) and does not enter ``u``."""
    busy = ProviderView(
        name="cheap",
        region="eu-west",
        available=Resources(
            cpu_milli=4 * CORES, memory_bytes=64 * GI, pods=110, storage={"fast": 100 * GI}
        ),
        ceiling=Resources(cpu_milli=16 * CORES, memory_bytes=64 * GI, pods=110),
        pricing=Pricing(
            cpu_core_hour=20_000,
            memory_gib_hour=0,
            storage_gib_hour={"fast": 100},
            max_multiplier=30_000,
        ),
    )
    lease = LeaseRequest(
        key="ns/s",
        replicas=1,
        resources=ReplicaResources(cpu_milli=CORES, memory_bytes=GI, storage={"fast": 10 * GI}),
    )
    chosen = both([busy], lease).chosen[0]
    # list: 1 core x 0.02 + 10 GiB x 0.0001 = 0.021; 12 of 16 cores busy -> x2.5 = 0.0525
    assert (chosen.list_price_per_hour, chosen.multiplier, chosen.price_per_hour) == (
        21_000,
        25_000,
        52_500,
    )


def test_the_max_price_filter_uses_the_quote() -> None:
    decision = both([BUSY, QUIET], request(max_price=25_000))
    assert not decision.chosen
    assert decision.rejected["cheap"] == "price 0.05/h > max 0.025/h"


def test_capacity_held_in_the_same_burst_raises_the_next_quote() -> None:
    cheap = view("cheap", cpu_price=20_000, free_cpu=16 * CORES, max_m=30_000)
    market = Market()
    for v in (cheap, QUIET):
        market.set_provider(v)
    first = request("ns/a", cpu=8 * CORES)
    decision = market.decide(first, LOWEST)
    assert [(p.provider, p.price_per_hour) for p in decision.chosen] == [("cheap", 160_000)]
    market.commit(decision, first, at=1.0)
    # half of cheap is now held: x2 -> 0.04/core-h, dearer than dear's 0.03
    second = request("ns/b")
    decision = market.decide(second, LOWEST)
    assert [p.provider for p in decision.chosen] == ["dear"]
    assert market.decide(second, LOWEST, exclude=frozenset({"dear"})).chosen[0].price_per_hour == (
        40_000
    )
    # releasing the hold brings the list price back
    market.release(placement_key("ns/a", "cheap"), "cheap")
    assert market.decide(second, LOWEST).chosen[0].provider == "cheap"


# --- hub views and the API -------------------------------------------------------------

FRESH = ProviderHealth(phase="Ready", fresh=True)
SUMMARY = {"cpu": "32", "memory": "128Gi", "gpus": {"l4": 8}, "pods": 110}


def provider(policy: dict[str, Any] | None, offer: dict[str, Any] | None = None) -> Provider:
    pricing: dict[str, Any] = {"cpuCoreHour": "0.02", "memoryGiBHour": "0.003"}
    if policy is not None:
        pricing["policy"] = policy
    spec: dict[str, Any] = {
        "region": "eu",
        "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "pricing": pricing,
    }
    if offer is not None:
        spec["offer"] = offer
    return Provider.model_validate(
        {
            "metadata": {"name": "p1"},
            "spec": spec,
            "status": {"nodes": 1, "available": SUMMARY, "allocatable": SUMMARY},
        }
    )


def test_hub_reads_the_policy_and_the_offer_capped_ceiling() -> None:
    got, excluded = provider_view(
        provider(
            {"type": "Utilization", "maxMultiplier": "2.25"},
            {"cpu": "16", "memory": "256Gi", "gpus": 2},
        ),
        FRESH,
    )
    assert excluded is None
    assert got.pricing.max_multiplier == 22_500
    assert got.ceiling == Resources(
        cpu_milli=16_000, memory_bytes=128 * GI, gpus={"l4": 2}, pods=110
    )


@pytest.mark.parametrize("policy", [None, {"type": "Static"}, {"type": "Utilization"}])
def test_static_or_a_multiplier_of_one_quotes_list_prices(policy: dict[str, Any] | None) -> None:
    got, excluded = provider_view(provider(policy), FRESH)
    assert excluded is None
    assert got.pricing.max_multiplier == MULTIPLIER_ONE
    assert not got.pricing.dynamic


def test_hub_excludes_an_out_of_bounds_multiplier_it_did_not_admit() -> None:
    body = provider({"type": "Utilization", "maxMultiplier": "2"})
    assert body.spec.pricing.policy is not None
    body.spec.pricing.policy.max_multiplier = "11"  # as if admission had been bypassed
    got, excluded = provider_view(body, FRESH)
    assert excluded is not None
    assert "maxMultiplier must be from 1 to 10" in excluded
    assert not got.ready


@pytest.mark.parametrize("value", ["1", "1.5", "2.2500", "10", "10.0000", "01"])
def test_api_admits_multipliers_from_one_to_ten(value: str) -> None:
    PricingPolicy.model_validate({"type": "Utilization", "maxMultiplier": value})


@pytest.mark.parametrize("value", ["0.5", "0", "10.0001", "11", "1.00001", "-2", "2e0", ""])
def test_api_refuses_multipliers_out_of_bounds(value: str) -> None:
    with pytest.raises(ValidationError, match=r"max_multiplier|maxMultiplier"):
        PricingPolicy.model_validate({"type": "Utilization", "maxMultiplier": value})


def test_api_refuses_a_multiplier_on_a_static_policy() -> None:
    with pytest.raises(ValidationError, match="applies to type Utilization only"):
        PricingPolicy.model_validate({"type": "Static", "maxMultiplier": "2"})
    PricingPolicy.model_validate({"type": "Static", "maxMultiplier": "1.0"})
