"""Hollow agents on the real bed: they onboard, turn Ready on the hub and run a lease.

Behaviour matrix (case -> expected):

- 3 hollow providers onboarded by the real ``onboard()`` -> Provider phase Ready (the hub's own
  judgement from their heartbeats and inventory), inventory with 2 nodes' worth of capacity.
- a hollow agent's client -> the provider's scoped token: 403 on another Provider.
- a lease restricted to one hollow provider -> placed there, placement Running 2/2 written by
  the hollow agent, lease Running, ``namespace/name=2`` in the provider's accountedLeases.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from kommons.kube import Forbidden, Kube
from kommons.kube import resources as r
from kommons_testbed.hollow import Fleet, HollowOptions, offboard
from kommons_testbed.processes import wait_for
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed

PREFIX = "hollow-it"


@pytest.fixture(scope="module")
def fleet(hub: Kube) -> Iterator[Fleet]:
    """Three hollow providers, running in a thread for this module; offboarded afterwards."""
    options = HollowOptions(
        providers=3,
        prefix=PREFIX,
        heartbeat_seconds=1.0,
        report_seconds=1.0,
        ready_delay=0.2,
        workers=4,
        duration=300.0,
    )
    running = Fleet(hub, options)
    thread = threading.Thread(target=running.run, name="hollow-fleet", daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(running.providers) == 3, timeout=60, what="hollow providers onboarded")
        yield running
    finally:
        running.stop.set()
        thread.join(timeout=30)
        for name in options.names():
            offboard(hub, name)


def _phase(hub: Kube, name: str) -> str | None:
    body = hub.get_or_none(r.PROVIDERS, name) or {}
    return (body.get("status") or {}).get("phase")


def test_hollow_providers_register_and_turn_ready(hub: Kube, fleet: Fleet) -> None:
    names = sorted(fleet.providers)
    assert names == [f"{PREFIX}-0000", f"{PREFIX}-0001", f"{PREFIX}-0002"]
    wait_for(
        lambda: all(_phase(hub, n) == "Ready" for n in names),
        timeout=60,
        what="hollow providers Ready on the hub",
    )
    status = hub.get(r.PROVIDERS, names[0])["status"]
    assert status["allocatable"]["cpu"] == "32000m"
    assert status["allocatable"]["pods"] == 220
    assert status["available"]["pods"] == 220
    assert status["nodes"] == 2
    assert status["namespace"] == f"kommons-provider-{names[0]}"
    assert fleet.stats.to_json()["writes"]["heartbeat"] >= 1


def test_hollow_agent_writes_with_its_scoped_token(fleet: Fleet) -> None:
    agent = fleet.providers[f"{PREFIX}-0000"].kube
    with pytest.raises(Forbidden):
        agent.get(r.PROVIDERS, f"{PREFIX}-0001")
    assert agent.get(r.PROVIDERS, f"{PREFIX}-0000")["metadata"]["name"] == f"{PREFIX}-0000"


def test_lease_on_a_hollow_provider_runs(hub: Kube, fleet: Fleet, tenant: str) -> None:
    target = f"{PREFIX}-0001"
    wait_for(lambda: _phase(hub, target) == "Ready", timeout=60, what=f"{target} Ready")
    body = lease_body("hollow-web", tenant, replicas=2, cpu="100m", memory="64Mi")
    body["spec"]["placement"] = {"providers": [target]}
    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "hollow-web",
        lambda lease: (lease.get("status") or {}).get("phase") == "Running",
        what="lease on a hollow provider Running",
    )
    assert [p["provider"] for p in lease["status"]["placements"]] == [target]
    placements = hub.list(r.LEASE_PLACEMENTS, f"kommons-provider-{target}")
    assert len(placements) == 1
    status = placements[0]["status"]
    assert (status["phase"], status["replicas"], status["readyReplicas"]) == ("Running", 2, 2)

    def accounted() -> list[str]:
        return list(hub.get(r.PROVIDERS, target)["status"].get("accountedLeases") or [])

    try:
        wait_for(
            lambda: f"{tenant}/hollow-web=2" in accounted(),
            timeout=30,
            what="the lease in the hollow provider's accountedLeases",
        )
    except Exception as exc:
        raise AssertionError(f"{exc}: {accounted()}; fleet {fleet.stats.to_json()}") from exc
    hub.delete(r.COMPUTE_LEASES, "hollow-web", tenant)
