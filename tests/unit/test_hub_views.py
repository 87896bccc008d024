"""Unit tests of the hub's typed API-to-scheduler conversions (``kommons.hub.views``).

Behaviour matrix:

- ``selects``: a missing selector or one with neither ``matchLabels`` nor ``matchExpressions``
  → ``empty_selects_all``; otherwise ``matchLabels`` and ``matchExpressions`` (In, NotIn,
  Exists, DoesNotExist) are ANDed, whatever ``empty_selects_all`` says.
- ``lease_request``: key ``namespace/name``; replicas default 1; cpu/memory in millicores and
  bytes (rounded up); GPU count and model (none → 0/None); max price in base units rounded
  down; regions, providers, spread (empty without ``spec.placement``).
- ``pool_policy``: strategy (default LowestPrice), selector converted (labels and
  expressions), regions, min reputation; an empty pool spec is the default policy.
- ``provider_view``: name, region, labels, available, prices rounded up (GPU prices too),
  ``observed_at`` passed through; ready only when the hub saw a fresh heartbeat, the hub's
  phase is Ready and inventory was reported (missing → ``NotReady: no inventory reported
  yet``); the hub's phase is shown otherwise; cordoned flag carried; reputation default 0.9
  (a new provider's), clamped to [0, 1].
  Excluded with a reason (and not ready, phase ``Invalid: ...``, no capacity, no prices): a
  zero cpu, memory or gpu price ("quotes a zero price..."); a malformed or negative inventory.
  A sub-unit price rounds up to one base unit and is not zero.
- ``placement_resources``: replicas × per-replica resources (one pod slot per replica), GPUs
  under their model; no GPUs entry without GPUs; ``replicas`` overrides the spec's count.
  Property: linear in replicas.
- storage: a lease's ``spec.storage`` becomes one replica's bytes by tier (entries of a tier
  summed); a placement holds replicas x that; a provider's reported storage per tier is read,
  its storage prices rounded up; a malformed or negative storage report and a zero storage
  price exclude the provider naming why.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.api import ComputeLease, LabelSelector, LeasePlacement, Provider, ProviderPool
from kommons.api.provider import Reputation
from kommons.hub.views import (
    ProviderHealth,
    lease_request,
    placement_resources,
    pool_policy,
    provider_view,
    selects,
)
from kommons.quantity import to_bytes, to_millicores
from kommons.scheduler import Operator, Pricing, Resources, Strategy

GIB = 1024**3
FRESH = ProviderHealth(phase="Ready", fresh=True)
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}

# --- selectors -------------------------------------------------------------------------


def selector(body: dict[str, Any] | None) -> LabelSelector | None:
    return None if body is None else LabelSelector.model_validate(body)


@pytest.mark.parametrize("body", [None, {}, {"matchLabels": {}, "matchExpressions": []}])
def test_empty_selector_selects_per_the_caller(body: dict[str, Any] | None) -> None:
    assert selects(selector(body), {"a": "b"}, empty_selects_all=True) is True
    assert selects(selector(body), {"a": "b"}, empty_selects_all=False) is False
    assert selects(selector(body), {}, empty_selects_all=True) is True


@pytest.mark.parametrize(
    ("body", "labels", "expected"),
    [
        ({"matchLabels": {"tier": "gold"}}, {"tier": "gold", "x": "y"}, True),
        ({"matchLabels": {"tier": "gold"}}, {"tier": "silver"}, False),
        ({"matchLabels": {"tier": "gold"}}, {}, False),
        (
            {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]},
            {"region": "eu"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
            {"region": "eu"},
            False,
        ),
        (
            {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
            {},
            True,
        ),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": "1"}, False),
        (
            {
                "matchLabels": {"tier": "gold"},
                "matchExpressions": [{"key": "gpu", "operator": "Exists"}],
            },
            {"tier": "gold"},
            False,
        ),
    ],
)
def test_selects(body: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selects(selector(body), labels, empty_selects_all=False) is expected
    assert selects(selector(body), labels, empty_selects_all=True) is expected


# --- lease_request ----------------------------------------------------------------------


def lease(**spec: Any) -> ComputeLease:
    body: dict[str, Any] = {
        "poolRef": {"name": "pool"},
        "resources": {"cpu": "500m", "memory": "1Gi"},
        "maxPricePerHour": "2",
        "template": TEMPLATE,
    }
    body.update(spec)
    return ComputeLease.model_validate(
        {"metadata": {"namespace": "team-a", "name": "web", "uid": "u1"}, "spec": body}
    )


def test_minimal_lease_request() -> None:
    req = lease_request(lease())
    assert req.key == "team-a/web"
    assert req.replicas == 1
    assert req.resources.cpu_milli == 500
    assert req.resources.memory_bytes == GIB
    assert req.resources.gpu_count == 0
    assert req.resources.gpu_model is None
    assert req.max_price_per_hour == 2_000_000
    assert req.regions == frozenset()
    assert req.providers == frozenset()
    assert req.spread is False


def test_full_lease_request() -> None:
    req = lease_request(
        lease(
            replicas=3,
            resources={"cpu": "0.0001", "memory": "1.5Gi", "gpu": {"count": 2, "model": "T4"}},
            maxPricePerHour="1.2345678",
            placement={"regions": ["eu"], "providers": ["p1", "p2"], "spread": True},
        )
    )
    assert req.replicas == 3
    assert req.resources.cpu_milli == 1  # rounded up: a request never counts for less
    assert req.resources.memory_bytes == 3 * GIB // 2
    assert req.resources.gpu_count == 2
    assert req.resources.gpu_model == "T4"
    assert req.max_price_per_hour == 1_234_567  # rounded down: never pay more than the max
    assert req.regions == frozenset({"eu"})
    assert req.providers == frozenset({"p1", "p2"})
    assert req.spread is True


def test_placement_preferences_without_lists_allow_anything() -> None:
    req = lease_request(lease(placement={"spread": True}))
    assert req.regions == frozenset()
    assert req.providers == frozenset()
    assert req.spread is True


# --- pool_policy ------------------------------------------------------------------------


def pool(**spec: Any) -> ProviderPool:
    return ProviderPool.model_validate({"metadata": {"name": "pool"}, "spec": spec})


def test_empty_pool_is_the_default_policy() -> None:
    policy = pool_policy(pool())
    assert policy.strategy is Strategy.LOWEST_PRICE
    assert policy.selector is None
    assert policy.regions == frozenset()
    assert policy.min_reputation == 0.0


def test_pool_policy_reads_every_field() -> None:
    policy = pool_policy(
        pool(
            strategy="BinPack",
            providerSelector={
                "matchLabels": {"tier": "gold"},
                "matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a", "b"]}],
            },
            regions=["eu", "us"],
            minReputation=0.5,
        )
    )
    assert policy.strategy is Strategy.BIN_PACK
    assert policy.selector is not None
    assert dict(policy.selector.match_labels) == {"tier": "gold"}
    (expr,) = policy.selector.match_expressions
    assert expr.key == "gpu"
    assert expr.operator is Operator.IN
    assert expr.values == frozenset({"a", "b"})
    assert policy.regions == frozenset({"eu", "us"})
    assert policy.min_reputation == 0.5


def test_exists_expression_has_no_values() -> None:
    policy = pool_policy(
        pool(providerSelector={"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})
    )
    assert policy.selector is not None
    (expr,) = policy.selector.match_expressions
    assert expr.operator is Operator.EXISTS
    assert expr.values == frozenset()
    assert dict(policy.selector.match_labels) == {}


# --- provider_view ----------------------------------------------------------------------

AVAILABLE: dict[str, Any] = {"cpu": "3500m", "memory": "8Gi", "gpus": {"T4": 2}, "pods": 20}
PRICING: dict[str, Any] = {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001"}


def provider(
    *,
    available: dict[str, Any] | None = AVAILABLE,
    status: bool = True,
    pricing: dict[str, Any] | None = None,
    **spec: Any,
) -> Provider:
    body: dict[str, Any] = {
        "metadata": {"name": "p1", "labels": {"tier": "gold"}},
        "spec": {
            "region": "eu",
            "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
            "pricing": pricing or PRICING,
            **spec,
        },
    }
    if status:
        body["status"] = {"nodes": 1} if available is None else {"nodes": 1, "available": available}
    return Provider.model_validate(body)


def test_provider_view_reads_inventory_and_prices() -> None:
    body = provider(
        pricing={"cpuCoreHour": "0.01", "memoryGiBHour": "0.0000005", "gpuHour": {"T4": "0.5"}}
    )
    assert body.status is not None
    body.status.reputation = None
    view, excluded = provider_view(body, FRESH, observed_at=12.5)
    assert excluded is None
    assert view.name == "p1"
    assert view.region == "eu"
    assert dict(view.labels) == {"tier": "gold"}
    assert view.available == Resources(
        cpu_milli=3500, memory_bytes=8 * GIB, gpus={"T4": 2}, pods=20
    )
    assert view.pricing.cpu_core_hour == 10_000
    assert view.pricing.memory_gib_hour == 1  # rounded up: a provider is never underpaid
    assert dict(view.pricing.gpu_hour) == {"T4": 500_000}
    assert view.ready is True
    assert view.phase == "Ready"
    assert view.cordoned is False
    assert view.reputation == 0.9  # absent: a new provider's score (NEUTRAL_SCORE)
    assert view.observed_at == 12.5


@pytest.mark.parametrize(
    ("health", "ready", "phase"),
    [
        (ProviderHealth("Ready", True), True, "Ready"),
        (ProviderHealth("Ready", False), False, "Ready"),
        (ProviderHealth("Unreachable", False), False, "Unreachable"),
        (ProviderHealth("NotReady", True), False, "NotReady"),
        (ProviderHealth("Cordoned", True), False, "Cordoned"),
        (ProviderHealth("Cordoned", False), False, "Cordoned"),
    ],
)
def test_readiness_follows_the_hubs_health(health: ProviderHealth, ready: bool, phase: str) -> None:
    view, excluded = provider_view(provider(), health)
    assert excluded is None
    assert view.ready is ready
    assert view.phase == phase


@pytest.mark.parametrize("status", [False, True])
def test_missing_inventory_is_not_ready(status: bool) -> None:
    view, excluded = provider_view(provider(available=None, status=status), FRESH)
    assert excluded is None
    assert view.ready is False
    assert view.phase == "NotReady: no inventory reported yet"
    assert view.available == Resources()


def test_cordoned_spec_is_carried() -> None:
    view, _ = provider_view(provider(cordoned=True), FRESH)
    assert view.cordoned is True


@pytest.mark.parametrize(("score", "expected"), [(0.75, 0.75), (1.5, 1.0), (-0.5, 0.0)])
def test_reputation_is_the_hubs_record_clamped(score: float, expected: float) -> None:
    body = provider()
    assert body.status is not None
    # the model refuses scores outside [0, 1]; an object built without validation must not
    # break the view either
    body.status.reputation = Reputation.model_construct(score=score)
    view, _ = provider_view(body, FRESH)
    assert view.reputation == expected


@pytest.mark.parametrize(
    ("pricing", "reason"),
    [
        (
            {"cpuCoreHour": "0", "memoryGiBHour": "0.001"},
            "quotes a zero price (spec.pricing.cpuCoreHour and memoryGiBHour must be > 0)",
        ),
        (
            {"cpuCoreHour": "0.01", "memoryGiBHour": "0.000"},
            "quotes a zero price (spec.pricing.cpuCoreHour and memoryGiBHour must be > 0)",
        ),
        (
            {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001", "gpuHour": {"T4": "1", "A100": "0"}},
            "quotes a zero price for gpu A100",
        ),
    ],
)
def test_zero_price_is_excluded(pricing: dict[str, Any], reason: str) -> None:
    view, excluded = provider_view(provider(pricing=pricing), FRESH)
    assert excluded == reason
    assert view.ready is False
    assert view.phase == f"Invalid: {reason}"
    assert view.pricing == Pricing()
    assert view.available == Resources()


def test_sub_unit_price_rounds_up_and_is_not_zero() -> None:
    view, excluded = provider_view(
        provider(pricing={"cpuCoreHour": "0.0000001", "memoryGiBHour": "0.0000001"}), FRESH
    )
    assert excluded is None
    assert view.ready is True
    assert (view.pricing.cpu_core_hour, view.pricing.memory_gib_hour) == (1, 1)


@pytest.mark.parametrize(
    ("available", "reason"),
    [
        ({**AVAILABLE, "cpu": "lots"}, "status.available is malformed"),
        ({**AVAILABLE, "memory": "8 GiB"}, "status.available is malformed"),
        ({**AVAILABLE, "cpu": "-1"}, "status.available has a negative amount"),
        ({**AVAILABLE, "memory": "-1Gi"}, "status.available has a negative amount"),
        ({**AVAILABLE, "gpus": {"T4": -1}}, "status.available has a negative amount"),
    ],
)
def test_malformed_or_negative_inventory_is_excluded(
    available: dict[str, Any], reason: str
) -> None:
    view, excluded = provider_view(provider(available=available), FRESH)
    assert excluded is not None
    assert excluded.startswith(reason)
    assert view.ready is False
    assert view.phase.startswith("Invalid: status.available")
    assert view.available == Resources()


def test_missing_amounts_are_zero() -> None:
    view, excluded = provider_view(provider(available={"cpu": "2", "pods": 3}), FRESH)
    assert excluded is None
    assert view.available == Resources(cpu_milli=2000, pods=3)


def test_missing_pod_allowance_is_excluded() -> None:
    """An agent that does not report pods would look like a provider with no pod slot."""
    view, excluded = provider_view(provider(available={"cpu": "2", "memory": "1Gi"}), FRESH)
    assert excluded is not None
    assert excluded.startswith("status.available.pods is missing")
    assert view.ready is False


# --- placement_resources ---------------------------------------------------------------


def placement(replicas: int, resources: dict[str, Any]) -> LeasePlacement:
    return LeasePlacement.model_validate(
        {
            "metadata": {"name": "web-1", "namespace": "kommons-provider-p1"},
            "spec": {
                "leaseRef": {"namespace": "team-a", "name": "web", "uid": "u1"},
                "provider": "p1",
                "replicas": replicas,
                "resources": resources,
                "template": TEMPLATE,
                "pricePerHour": "0.5",
                "billingAccount": "acct",
            },
        }
    )


def test_placement_resources_multiply_by_replicas() -> None:
    held = placement_resources(
        placement(3, {"cpu": "500m", "memory": "1Gi", "gpu": {"count": 2, "model": "T4"}})
    )
    assert held == Resources(cpu_milli=1500, memory_bytes=3 * GIB, gpus={"T4": 6}, pods=3)


def test_placement_without_gpus_has_no_gpu_entry() -> None:
    held = placement_resources(placement(2, {"cpu": "1", "memory": "1Mi"}))
    assert held == Resources(cpu_milli=2000, memory_bytes=2 * 1024**2, pods=2)
    assert dict(held.gpus) == {}


def test_replicas_override_the_spec_count() -> None:
    spec = {"cpu": "1", "memory": "1Gi", "gpu": {"count": 1, "model": "T4"}}
    assert placement_resources(placement(5, spec), 2) == Resources(
        cpu_milli=2000, memory_bytes=2 * GIB, gpus={"T4": 2}, pods=2
    )
    assert nothing(placement_resources(placement(5, spec), 0))


def nothing(held: Resources) -> bool:
    """Whether ``held`` is zero in every dimension (a zero GPU entry counts as none)."""
    return held == Resources(gpus=dict.fromkeys(held.gpus, 0))


def test_placement_with_no_replicas_holds_nothing() -> None:
    spec = {"cpu": "1", "memory": "1Gi", "gpu": {"count": 1, "model": "T4"}}
    assert nothing(placement_resources(placement(0, spec)))
    assert not nothing(placement_resources(placement(1, spec)))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 200),
    st.integers(1, 64_000),
    st.integers(1, 256 * GIB),
    st.integers(0, 8),
    st.sampled_from(["T4", "A100"]),
)
def test_placement_resources_are_linear_in_replicas(
    replicas: int, milli: int, memory: int, gpus: int, model: str
) -> None:
    resources: dict[str, Any] = {"cpu": f"{milli}m", "memory": str(memory)}
    if gpus:
        resources["gpu"] = {"count": gpus, "model": model}
    held = placement_resources(placement(replicas, resources))
    assert held.cpu_milli == replicas * to_millicores(f"{milli}m")
    assert held.memory_bytes == replicas * to_bytes(str(memory))
    assert held.pods == replicas
    assert {m: n for m, n in held.gpus.items() if n} == (
        {model: replicas * gpus} if replicas * gpus else {}
    )


# --- storage ------------------------------------------------------------------------------

STORAGE = [
    {"name": "data", "size": "10Gi", "tier": "fast", "mountPath": "/data"},
    {"name": "wal", "size": "512Mi", "tier": "fast", "mountPath": "/wal"},
    {"name": "logs", "size": "1Gi", "tier": "slow", "mountPath": "/logs"},
]


def test_a_lease_with_storage_asks_bytes_by_tier() -> None:
    req = lease_request(lease(storage=STORAGE))
    assert req.resources.storage == {"fast": 10 * GIB + GIB // 2, "slow": GIB}
    assert lease_request(lease()).resources.storage == {}
    held = placement(2, {"cpu": "500m", "memory": "1Gi"})
    held.spec.storage = lease(storage=STORAGE).spec.storage
    assert placement_resources(held).storage == {"fast": 21 * GIB, "slow": 2 * GIB}


def test_reported_storage_and_storage_prices_are_read() -> None:
    view, excluded = provider_view(
        provider(
            available={**AVAILABLE, "storage": {"fast": "20Gi", "slow": "0"}},
            pricing={**PRICING, "storageGiBHour": {"fast": "0.0002", "slow": "0.0000001"}},
        ),
        FRESH,
    )
    assert excluded is None
    assert view.available.storage == {"fast": 20 * GIB, "slow": 0}
    assert view.pricing.storage_gib_hour == {"fast": 200, "slow": 1}


@pytest.mark.parametrize(
    ("storage", "pricing", "reason"),
    [
        ({"fast": "lots"}, None, "status.available.storage is malformed"),
        ({"fast": "-1Gi"}, None, "status.available has a negative amount"),
        ({"fast": "1Gi"}, {"fast": "0"}, "quotes a zero price for storage tier fast"),
    ],
    ids=["malformed", "negative", "zero-price"],
)
def test_a_bad_storage_declaration_excludes_the_provider(
    storage: dict[str, str], pricing: dict[str, str] | None, reason: str
) -> None:
    prices = {**PRICING, "storageGiBHour": pricing} if pricing else PRICING
    view, excluded = provider_view(
        provider(available={**AVAILABLE, "storage": storage}, pricing=prices), FRESH
    )
    assert excluded is not None
    assert excluded.startswith(reason)
    assert view.ready is False
