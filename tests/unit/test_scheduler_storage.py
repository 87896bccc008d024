"""Persistent storage in the pure scheduler (``kommons.scheduler``).

Behaviour matrix:

- model: ``Resources.plus``/``minus`` add and subtract storage per tier (clamped at zero);
  ``as_resources`` multiplies one replica's storage by the replicas; a zero or negative size
  is refused.
- price: ``replica_price`` adds size x storageGiBHour per tier to cpu, memory and gpu and
  rounds up once over the exact sum (never per part).
- filters (in order): a provider that does not price a tier or reports no capacity for it is
  rejected ``StorageTier`` (after ``Gpu``, before ``Price``) naming the tier and what it has;
  the storage price counts against maxPricePerHour (``Price``); a tier with less free than one
  replica's volumes is ``InsufficientStorage`` (after memory, before pods) with free and
  needed sizes; ``fit_count`` is bounded by storage.
- decisions: a storage lease goes only where its tier has room, at a price including storage;
  a burst of reservations cannot over-commit a tier; ``Market.decide`` equals ``schedule``
  for storage leases (holds included) and ``commit`` holds the storage.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from kommons.scheduler import (
    LeaseRequest,
    Market,
    PoolPolicy,
    Pricing,
    ProviderView,
    RejectionKind,
    ReplicaResources,
    Reservations,
    Resources,
    fit_count,
    placement_key,
    replica_price,
    schedule,
)
from kommons.scheduler.filters import FilterContext, classify

GI = 1 << 30
TOKEN = 1_000_000
POOL = PoolPolicy()


def provider(
    name: str,
    *,
    storage: Mapping[str, int] | None = None,
    storage_price: Mapping[str, int] | None = None,
    cpu: int = 8000,
    gpus: Mapping[str, int] | None = None,
    gpu_price: Mapping[str, int] | None = None,
) -> ProviderView:
    return ProviderView(
        name=name,
        region="eu-west",
        available=Resources(
            cpu_milli=cpu, memory_bytes=32 * GI, gpus=gpus or {}, pods=110, storage=storage or {}
        ),
        pricing=Pricing(
            cpu_core_hour=TOKEN // 50,
            memory_gib_hour=3000,
            gpu_hour=gpu_price or {},
            storage_gib_hour=storage_price or {},
        ),
    )


def lease(
    *,
    storage: Mapping[str, int],
    replicas: int = 1,
    max_price: int | None = None,
    gpu_count: int = 0,
    key: str = "team-a/db",
) -> LeaseRequest:
    return LeaseRequest(
        key=key,
        replicas=replicas,
        resources=ReplicaResources(
            cpu_milli=1000, memory_bytes=GI, gpu_count=gpu_count, storage=storage
        ),
        max_price_per_hour=max_price,
    )


def outcome(view: ProviderView, request: LeaseRequest) -> tuple[RejectionKind, str] | int:
    result = classify(view, view.available, FilterContext(lease=request, pool=POOL))
    return result if isinstance(result, tuple) else result.price


FAST = {"fast": 200}  # 0.0002 per GiB-hour


# --- model and price ----------------------------------------------------------------------


def test_resources_carry_storage_per_tier() -> None:
    a = Resources(storage={"fast": 10 * GI, "slow": GI})
    b = Resources(storage={"fast": 4 * GI, "cold": GI})
    assert a.plus(b).storage == {"fast": 14 * GI, "slow": GI, "cold": GI}
    assert a.minus(b).storage == {"fast": 6 * GI, "slow": GI}
    assert b.minus(a).storage == {"fast": 0, "cold": GI}
    per = ReplicaResources(cpu_milli=100, memory_bytes=GI, storage={"fast": 2 * GI})
    assert per.as_resources(3, None).storage == {"fast": 6 * GI}


@pytest.mark.parametrize("size", [0, -1])
def test_a_replica_storage_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="storage"):
        ReplicaResources(cpu_milli=100, memory_bytes=GI, storage={"fast": size})


def test_replica_price_adds_storage_and_rounds_up_once() -> None:
    base = dict(
        cpu_milli=1000,
        memory_bytes=GI,
        gpu_count=0,
        cpu_core_hour=20_000,
        memory_gib_hour=3000,
        gpu_hour=0,
    )
    assert replica_price(**base) == 23_000
    # 50 GiB at 0.0002 = 0.01 exactly, plus 0.5 GiB at 0.0001 (= 50 units): 23_000 + 10_000 + 50
    assert replica_price(**base, storage=[(50 * GI, 200), (GI // 2, 100)]) == 33_050
    # a third of a unit from memory and a third from storage round up together, once: 1 unit
    thirds = dict(base, cpu_milli=1, cpu_core_hour=0, memory_gib_hour=1, memory_bytes=GI // 3)
    assert replica_price(**thirds, storage=[(GI // 3, 1)]) == 1
    assert replica_price(**thirds) + replica_price(**thirds) == 2  # per part it would be 2


# --- filters ------------------------------------------------------------------------------


def test_a_provider_without_the_tier_is_rejected_naming_it() -> None:
    request = lease(storage={"fast": GI})
    no_price = provider("a", storage={"fast": 10 * GI, "slow": GI}, storage_price={"slow": 1})
    no_capacity = provider("b", storage_price=FAST)
    assert outcome(no_price, request) == (
        RejectionKind.STORAGE_TIER,
        "no storage tier fast (has: slow)",
    )
    assert outcome(no_capacity, request) == (
        RejectionKind.STORAGE_TIER,
        "no storage tier fast (has: none)",
    )


def test_the_gpu_filter_comes_before_the_storage_tier() -> None:
    request = lease(storage={"fast": GI}, gpu_count=1)
    assert outcome(provider("a"), request)[0] == RejectionKind.GPU  # type: ignore[index]


def test_the_storage_price_counts_against_the_maximum() -> None:
    view = provider("a", storage={"fast": 100 * GI}, storage_price=FAST)
    cheap = outcome(view, lease(storage={"fast": GI}))
    assert cheap == 23_000 + 200
    kind, text = outcome(view, lease(storage={"fast": 50 * GI}, max_price=30_000))  # type: ignore[misc]
    assert kind == RejectionKind.PRICE
    assert text == "price 0.033/h > max 0.03/h"


def test_too_little_free_storage_is_insufficient_storage() -> None:
    view = provider("a", storage={"fast": 3 * GI}, storage_price=FAST)
    assert outcome(view, lease(storage={"fast": 4 * GI})) == (
        RejectionKind.INSUFFICIENT_STORAGE,
        "insufficient storage fast (3Gi free < 4Gi)",
    )
    short_cpu = provider("b", storage={"fast": GI}, storage_price=FAST, cpu=500)
    assert outcome(short_cpu, lease(storage={"fast": 4 * GI}))[0] == (  # type: ignore[index]
        RejectionKind.INSUFFICIENT_CPU
    )


def test_fit_count_is_bounded_by_every_tier() -> None:
    free = Resources(
        cpu_milli=8000, memory_bytes=32 * GI, pods=110, storage={"fast": 10 * GI, "slow": 3 * GI}
    )
    assert fit_count(free, lease(storage={"fast": 2 * GI}), None) == 5
    assert fit_count(free, lease(storage={"fast": 2 * GI, "slow": GI}), None) == 3


# --- decisions ----------------------------------------------------------------------------


def providers() -> list[ProviderView]:
    return [
        provider("a", storage={"fast": 4 * GI}, storage_price=FAST),
        provider("b", storage={"fast": 100 * GI}, storage_price={"fast": 400}),
        provider("c"),
    ]


def test_a_storage_lease_goes_where_its_tier_has_room() -> None:
    decision = schedule(lease(storage={"fast": 5 * GI}, replicas=2), providers(), POOL)
    assert [(p.provider, p.replicas, p.price_per_hour) for p in decision.chosen] == [
        ("b", 2, 23_000 + 5 * 400)
    ]
    assert decision.rejected_counts == {
        RejectionKind.INSUFFICIENT_STORAGE: 1,
        RejectionKind.STORAGE_TIER: 1,
    }


def test_a_burst_cannot_over_commit_a_tier() -> None:
    views = [provider("a", storage={"fast": 10 * GI}, storage_price=FAST)]
    ledger = Reservations()
    placed = 0
    for i in range(5):
        request = lease(storage={"fast": 4 * GI}, key=f"t/l{i}")
        decision = schedule(request, views, POOL, ledger)
        ledger.record(decision, request, at=0.0)
        placed += sum(p.replicas for p in decision.chosen)
    assert placed == 2


def test_the_market_decides_storage_leases_as_schedule_does_and_holds_storage() -> None:
    market = Market()
    views = providers()
    for view in views:
        market.set_provider(view)
    held = Resources(storage={"fast": 99 * GI})
    market.hold(key=placement_key("t/other", "b"), provider="b", resources=held, at=1.0)
    ledger = Reservations()
    ledger.reserve(key=placement_key("t/other", "b"), provider="b", resources=held, at=1.0)

    request = lease(storage={"fast": 2 * GI}, replicas=2)
    decision = market.decide(request, POOL)
    assert decision == schedule(request, views, POOL, ledger)
    assert [(p.provider, p.replicas) for p in decision.chosen] == [("a", 2)]

    market.commit(decision, request, at=2.0)
    again = market.decide(lease(storage={"fast": 2 * GI}, key="t/next"), POOL)
    assert again.chosen == ()
    assert again.rejected_counts[RejectionKind.INSUFFICIENT_STORAGE] == 2
