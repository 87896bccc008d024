"""Unit tests of the hub's API-to-scheduler conversions (``kommons.hub.views``).

Behaviour matrix:

- ``parse_time``: ``None``/empty → ``None``; ``Z`` Time and MicroTime and ``+hh:mm`` offsets →
  aware UTC datetimes.
- ``heartbeat_age``: seconds since the renew time (negative if it is in the future); ``None``
  when there was never a heartbeat.
- ``selects``: empty or missing selector → ``empty_selects_all``; ``matchLabels`` and
  ``matchExpressions`` (In, NotIn, Exists, DoesNotExist) are ANDed.
- ``lease_request``: key ``namespace/name``; replicas default 1; cpu/memory in millicores and
  bytes (rounded up); GPU count and model; max price in base units rounded down, ``None``
  when absent; regions, providers, spread.
- ``pool_policy``: strategy (default LowestPrice), selector, regions, min reputation; an empty
  pool is the default policy.
- ``provider_view``: region, labels, available, prices rounded up; ready only when heartbeat
  fresh, phase Ready and inventory reported; a stale heartbeat makes any phase but Cordoned
  ``Unreachable``; cordoned flag; reputation (default 1.0); accounted leases as placement keys.
- ``placement_resources``: replicas × per-replica resources, GPUs under their model; no GPUs
  entry without GPUs. Property: linear in replicas.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.hub.views import (
    heartbeat_age,
    lease_request,
    parse_time,
    placement_resources,
    pool_policy,
    provider_view,
    selects,
)
from kommons.quantity import to_bytes, to_millicores
from kommons.scheduler import Operator, Resources, Strategy, placement_key

GIB = 1024**3
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- time -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_parse_time_of_nothing_is_none(value: str | None) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.250000Z", datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_time_gives_aware_utc(value: str, expected: datetime) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


def test_heartbeat_age() -> None:
    assert heartbeat_age(None, NOW) is None
    assert heartbeat_age("2026-01-02T03:03:55.500000Z", NOW) == pytest.approx(9.5)
    assert heartbeat_age("2026-01-02T03:04:15Z", NOW) == pytest.approx(-10.0)


# --- selectors -------------------------------------------------------------------------


@pytest.mark.parametrize("selector", [None, {}, {"matchLabels": {}, "matchExpressions": []}])
def test_empty_selector_selects_per_the_caller(selector: dict[str, Any] | None) -> None:
    assert selects(selector, {"a": "b"}, empty_selects_all=True) is True
    assert selects(selector, {"a": "b"}, empty_selects_all=False) is False


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
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
def test_selects(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selects(selector, labels, empty_selects_all=False) is expected
    assert selects(selector, labels, empty_selects_all=True) is expected


# --- lease_request ----------------------------------------------------------------------


def lease(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"resources": {"cpu": "500m", "memory": "1Gi"}}
    base.update(spec)
    return {"metadata": {"namespace": "team-a", "name": "web", "uid": "u1"}, "spec": base}


def test_minimal_lease_request() -> None:
    req = lease_request(lease())
    assert req.key == "team-a/web"
    assert req.replicas == 1
    assert req.resources.cpu_milli == 500
    assert req.resources.memory_bytes == GIB
    assert req.resources.gpu_count == 0
    assert req.resources.gpu_model is None
    assert req.max_price_per_hour is None
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


# --- pool_policy ------------------------------------------------------------------------


def test_empty_pool_is_the_default_policy() -> None:
    policy = pool_policy({})
    assert policy.strategy is Strategy.LOWEST_PRICE
    assert policy.selector is None
    assert policy.regions == frozenset()
    assert policy.min_reputation == 0.0


def test_pool_policy_reads_every_field() -> None:
    policy = pool_policy(
        {
            "spec": {
                "strategy": "BinPack",
                "providerSelector": {
                    "matchLabels": {"tier": "gold"},
                    "matchExpressions": [{"key": "gpu", "operator": "Exists"}],
                },
                "regions": ["eu", "us"],
                "minReputation": "0.5",
            }
        }
    )
    assert policy.strategy is Strategy.BIN_PACK
    assert policy.selector is not None
    assert dict(policy.selector.match_labels) == {"tier": "gold"}
    (expr,) = policy.selector.match_expressions
    assert expr.key == "gpu"
    assert expr.operator is Operator.EXISTS
    assert policy.regions == frozenset({"eu", "us"})
    assert policy.min_reputation == 0.5


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="Cheapest"):
        pool_policy({"spec": {"strategy": "Cheapest"}})


# --- provider_view ----------------------------------------------------------------------


def provider(
    *, phase: str | None = "Ready", available: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if available is not None:
        status["available"] = available
    return {
        "metadata": {"name": "p1", "labels": {"tier": "gold"}},
        "spec": {"region": "eu", **spec},
        "status": status,
    }


AVAILABLE = {"cpu": "3500m", "memory": "8Gi", "gpus": {"T4": 2}}


def test_provider_view_reads_inventory_and_prices() -> None:
    body = provider(
        available=AVAILABLE,
        pricing={"cpuCoreHour": "0.01", "memoryGiBHour": "0.0000005", "gpuHour": {"T4": "0.5"}},
    )
    body["status"]["reputation"] = {"score": 0.75}
    body["status"]["accountedLeases"] = ["team-a/web", "team-b/db"]
    view = provider_view(body, heartbeat_fresh=True)
    assert view.name == "p1"
    assert view.region == "eu"
    assert dict(view.labels) == {"tier": "gold"}
    assert view.available == Resources(cpu_milli=3500, memory_bytes=8 * GIB, gpus={"T4": 2})
    assert view.pricing.cpu_core_hour == 10_000
    assert view.pricing.memory_gib_hour == 1  # rounded up: a provider is never underpaid
    assert dict(view.pricing.gpu_hour) == {"T4": 500_000}
    assert view.ready is True
    assert view.phase == "Ready"
    assert view.reputation == 0.75
    assert view.accounted == frozenset(
        {placement_key("team-a/web", "p1"), placement_key("team-b/db", "p1")}
    )


@pytest.mark.parametrize(
    ("phase", "available", "fresh", "ready", "seen_phase"),
    [
        ("Ready", AVAILABLE, True, True, "Ready"),
        ("Ready", AVAILABLE, False, False, "Unreachable"),
        ("Ready", None, True, False, "Ready"),
        ("NotReady", AVAILABLE, True, False, "NotReady"),
        (None, AVAILABLE, True, False, "NotReady"),
        (None, AVAILABLE, False, False, "Unreachable"),
        ("Cordoned", AVAILABLE, True, False, "Cordoned"),
        ("Cordoned", AVAILABLE, False, False, "Cordoned"),
    ],
)
def test_provider_readiness(
    phase: str | None,
    available: dict[str, Any] | None,
    fresh: bool,
    ready: bool,
    seen_phase: str,
) -> None:
    view = provider_view(provider(phase=phase, available=available), heartbeat_fresh=fresh)
    assert view.ready is ready
    assert view.phase == seen_phase


def test_provider_defaults() -> None:
    view = provider_view(
        {"metadata": {"name": "bare"}, "spec": {}, "status": {}}, heartbeat_fresh=True
    )
    assert view.available == Resources()
    assert view.reputation == 1.0
    assert view.cordoned is False
    assert view.pricing.cpu_core_hour == 0
    assert view.region == ""


def test_cordoned_spec_is_carried() -> None:
    view = provider_view(provider(available=AVAILABLE, cordoned=True), heartbeat_fresh=True)
    assert view.cordoned is True


# --- placement_resources ---------------------------------------------------------------


def test_placement_resources_multiply_by_replicas() -> None:
    placement = {
        "spec": {
            "replicas": 3,
            "resources": {"cpu": "500m", "memory": "1Gi", "gpu": {"count": 2, "model": "T4"}},
        }
    }
    assert placement_resources(placement) == Resources(
        cpu_milli=1500, memory_bytes=3 * GIB, gpus={"T4": 6}
    )


def test_placement_without_gpus_has_no_gpu_entry() -> None:
    placement = {"spec": {"replicas": 2, "resources": {"cpu": "1", "memory": "1Mi"}}}
    assert placement_resources(placement) == Resources(cpu_milli=2000, memory_bytes=2 * 1024**2)


def test_placement_with_no_replicas_holds_nothing() -> None:
    placement = {
        "spec": {"replicas": 0, "resources": {"cpu": "1", "gpu": {"count": 1, "model": "T4"}}}
    }
    assert placement_resources(placement) == Resources()


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
    held = placement_resources({"spec": {"replicas": replicas, "resources": resources}})
    assert held.cpu_milli == replicas * to_millicores(f"{milli}m")
    assert held.memory_bytes == replicas * to_bytes(str(memory))
    assert dict(held.gpus) == ({model: replicas * gpus} if replicas * gpus else {})
