"""Dynamic provider pricing on the real bed (``Provider.spec.pricing.policy: Utilization``).

Behaviour matrix (case -> expected):

- prov-a (the lowest list prices of the bed: 0.02/core-h, 0.003/GiB-h) declares, with its
  agent's own credentials, ``policy: {type: Utilization, maxMultiplier: "3"}`` -> admitted.
- a lease pinned to prov-a -> locked at prov-a's list price when prov-a is idle (no multiplier
  shown in the decision), at list price × the multiplier shown when leases of earlier tests
  still hold some of prov-a (the whole suite shares one bed).
- that lease holds 45 of the 64 cores prov-a offers; a second lease pinned to prov-a -> its
  decision shows list price 0.01075 × a multiplier between 1 + 2 × 45/64 and 3, and its
  locked price is that product rounded up, and its Scheduled Event quotes list price ×
  multiplier; the first lease's locked price is unchanged.
- a new LowestPrice lease, not pinned -> placed on prov-c (list 0.013375 for its shape, above
  prov-a's list price but below prov-a's quote), locked at prov-c's quote.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed

BUSY_CORES = 45
OFFERED_CORES = 64  # examples/providers/prov-a.yaml offer (allocatable is 96)


def _running(lease: dict[str, Any]) -> bool:
    return (lease.get("status") or {}).get("phase") == "Running"


def _chosen(lease: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((lease.get("status") or {}).get("decision") or {}).get("chosen") or [])


def _pinned(name: str, tenant: str, *, replicas: int, cpu: str, memory: str) -> dict[str, Any]:
    body = lease_body(name, tenant, replicas=replicas, cpu=cpu, memory=memory)
    body["spec"]["placement"] = {"providers": ["prov-a"]}
    return body


def _times(price: str, multiplier: str) -> Decimal:
    """A list price times a multiplier, rounded up to the token's base unit (6 decimals)."""
    return (Decimal(price) * Decimal(multiplier)).quantize(Decimal("0.000001"), "ROUND_CEILING")


def _locked(hub: Kube, tenant: str, name: str) -> list[str]:
    lease = hub.get(r.COMPUTE_LEASES, name, tenant)
    return [p["pricePerHour"] for p in lease["status"]["placements"]]


def test_a_busy_provider_loses_lowest_price_to_a_quieter_dearer_one(
    hub: Kube, tenant: str, stack: Stack
) -> None:
    agent = connect(stack.agent_kubeconfig("prov-a"), field_manager="tests")
    agent.patch(
        r.PROVIDERS,
        "prov-a",
        {"spec": {"pricing": {"policy": {"type": "Utilization", "maxMultiplier": "3"}}}},
    )
    try:
        # its list price, 15 x 0.02 + 1 x 0.003, times what prov-a's load is now: 1 when idle
        # (alone on a bed), more when leases of earlier tests still hold some of prov-a
        hub.create(
            r.COMPUTE_LEASES,
            _pinned("busy", tenant, replicas=3, cpu=str(BUSY_CORES // 3), memory="1Gi"),
            tenant,
        )
        busy = wait_lease(hub, tenant, "busy", _running, what="busy Running on prov-a")
        [first] = _chosen(busy)
        assert (first["provider"], first["replicas"]) == ("prov-a", 3)
        if "priceMultiplier" in first:  # prov-a was not idle: the quote says so
            assert first["listPricePerHour"] == "0.303"
            assert Decimal(first["pricePerHour"]) == _times("0.303", first["priceMultiplier"])
        else:
            assert first["pricePerHour"] == "0.303", "an idle Utilization provider quotes its list"
        busy_price = first["pricePerHour"]

        # busy: list 0.5 x 0.02 + 0.25 x 0.003 = 0.01075, times the multiplier
        hub.create(
            r.COMPUTE_LEASES,
            _pinned("probe", tenant, replicas=1, cpu="500m", memory="256Mi"),
            tenant,
        )
        probe = wait_lease(hub, tenant, "probe", lambda x: bool(_chosen(x)), what="probe placed")
        [chosen] = _chosen(probe)
        assert chosen["provider"] == "prov-a"
        assert chosen["listPricePerHour"] == "0.01075"
        multiplier = Decimal(chosen["priceMultiplier"])
        assert 1 + 2 * Decimal(BUSY_CORES) / OFFERED_CORES <= multiplier <= 3
        quoted = _times("0.01075", chosen["priceMultiplier"])
        assert Decimal(chosen["pricePerHour"]) == quoted
        assert [Decimal(p) for p in _locked(hub, tenant, "probe")] == [quoted]
        wait_for(
            lambda: any(
                e["reason"] == "Scheduled"
                and f"prov-a (1 at {chosen['pricePerHour']}/h = 0.01075/h list ×" in e["message"]
                for e in hub.list(r.EVENTS, tenant, field_selector="involvedObject.name=probe")
            ),
            timeout=30,
            what="a Scheduled Event quoting list price × multiplier",
        )
        assert _locked(hub, tenant, "busy") == [busy_price], "a locked price never moves"

        # a LowestPrice lease anywhere: prov-c's 0.013375 beats prov-a's quote (> 0.0258)
        hub.create(r.COMPUTE_LEASES, lease_body("new", tenant, replicas=1, memory="256Mi"), tenant)
        new = wait_lease(hub, tenant, "new", _running, what="new Running")
        assert _chosen(new) == [{"provider": "prov-c", "replicas": 1, "pricePerHour": "0.013375"}]
        assert new["status"]["providers"] == "prov-c"
        assert _locked(hub, tenant, "new") == ["0.013375"]
    finally:
        agent.patch(r.PROVIDERS, "prov-a", {"spec": {"pricing": {"policy": None}}})
