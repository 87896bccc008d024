"""Unit tests of the exported metrics (``kommons.metrics``, ``kommons.hub.metrics_snapshot``).

Behaviour matrix:

- snapshot: leases count by (pool, phase), a lease without status as ``Pending``; providers by
  the phase the hub gives them now (a stale heartbeat is ``Unreachable``, a cordoned provider
  ``Cordoned`` either way); heartbeat age on the
  hub's clock; pool capacity sums the allocatable of the providers its selector and regions
  admit; pool free sums only those Ready and not cordoned; epochs by phase; accounts by
  standing (``Unknown`` before the payment guard's verdict).
- exposition: every family the hub and the agent register is in the text format with its
  HELP and TYPE, gauges read from the latest snapshot (replaced whole); the text passes the
  real ``promtool check metrics`` (Prometheus naming and unit conventions).
- label sets are bounded: no metric has a label naming a lease, pod, namespace or tenant.
- the exposition server serves ``/metrics`` on the port it bound.
"""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kommons.api import BillingAccount, ComputeLease, ProviderPool
from kommons.hub.market_view import MarketView
from kommons.hub.metrics_snapshot import take
from kommons.metering.acceptance import EpochWindow
from kommons.metering.ledger import Epoch
from kommons.metrics import AgentMetrics, HubMetrics, MarketSnapshot, serve
from kommons_testbed.prometheus import promtool_binary
from tests.unit.clocks import Clock, fake_market_clock

TIMEOUT = 30.0
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return fake_market_clock(monkeypatch)


def provider_body(
    name: str, *, region: str = "eu", tier: str = "community", cordoned: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "Provider",
        "metadata": {"name": name, "generation": 1, "labels": {"tier": tier}},
        "spec": {
            "region": region,
            "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
            "pricing": {"cpuCoreHour": "0.02", "memoryGiBHour": "0.001"},
            "cordoned": cordoned,
        },
        "status": {
            "nodes": 1,
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": 110, "gpus": {"a100": 2}},
            "available": {"cpu": "6", "memory": "8Gi", "pods": 100, "gpus": {"a100": 1}},
        },
    }


def lease(name: str, pool: str, phase: str | None) -> ComputeLease:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"},
        "spec": {
            "poolRef": {"name": pool},
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "maxPricePerHour": "10",
            "template": TEMPLATE,
        },
    }
    if phase is not None:
        body["status"] = {"phase": phase}
    return ComputeLease.model_validate(body)


def pool(name: str, **spec: Any) -> ProviderPool:
    return ProviderPool.model_validate({"metadata": {"name": name}, "spec": spec})


def account(name: str, standing: str | None) -> BillingAccount:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "namespaceSelector": {"matchLabels": {"team": name}},
        },
    }
    if standing is not None:
        body["status"] = {"standing": standing}
    return BillingAccount.model_validate(body)


def market(clock: Clock) -> MarketView:
    view = MarketView(heartbeat_timeout=TIMEOUT)
    for body in (
        provider_body("a"),
        provider_body("b", cordoned=True),
        provider_body("c", region="us"),
        provider_body("d", tier="gold"),
    ):
        view.set_provider(body)
        view.heartbeat(body["metadata"]["name"], "t0")
    clock.now += 40  # every heartbeat is stale now but a's and c's, renewed below
    view.heartbeat("a", "t1")
    view.heartbeat("c", "t1")
    view.refresh_health()
    clock.now += 5
    for item in (
        lease("w1", "eu-pool", "Running"),
        lease("w2", "eu-pool", "Running"),
        lease("w3", "eu-pool", None),
        lease("w4", "any", "Suspended"),
    ):
        view.set_lease(item)
    view.pools["eu-pool"] = pool(
        "eu-pool", regions=["eu"], providerSelector={"matchLabels": {"tier": "community"}}
    )
    view.pools["any"] = pool("any")
    view.accounts["x"] = account("x", "Covered")
    view.accounts["y"] = account("y", "Low")
    view.accounts["z"] = account("z", None)
    return view


EPOCHS = {
    1: Epoch(EpochWindow(1, 0, 10), "Confirmed"),
    2: Epoch(EpochWindow(2, 10, 20), "Confirmed"),
    3: Epoch(EpochWindow(3, 20, 30), "Open"),
}


def test_the_snapshot_counts_the_market(clock: Clock) -> None:
    snap = take(market(clock), EPOCHS, now=clock.now)
    assert snap.leases == {
        ("eu-pool", "Running"): 2,
        ("eu-pool", "Pending"): 1,
        ("any", "Suspended"): 1,
    }
    assert snap.providers == {"Ready": 2, "Unreachable": 1, "Cordoned": 1}  # b: cordoned wins
    assert snap.heartbeat_age == {"a": 5.0, "b": 45.0, "c": 5.0, "d": 45.0}
    # eu-pool admits a and b (community, eu); "any" admits all four.
    assert snap.pool_capacity["eu-pool", "cpu"] == 16.0
    assert snap.pool_capacity["any", "cpu"] == 32.0
    assert snap.pool_capacity["any", "gpus"] == 8.0
    assert snap.pool_capacity["eu-pool", "memory"] == 2 * 16 * 1024**3
    # free: only Ready, uncordoned members (a in eu-pool; a and c in any)
    assert snap.pool_free["eu-pool", "cpu"] == 6.0
    assert snap.pool_free["any", "cpu"] == 12.0
    assert snap.pool_free["any", "pods"] == 200.0
    assert snap.epochs == {"Confirmed": 2, "Open": 1}
    assert snap.accounts == {"Covered": 1, "Low": 1, "Unknown": 1}


def families(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_the_hub_exposes_every_family_and_the_latest_snapshot() -> None:
    metrics = HubMetrics()
    metrics.snapshot = MarketSnapshot(
        leases={("eu-pool", "Running"): 3}, providers={"Ready": 2}, epochs={"Open": 1}
    )
    metrics.scheduling_attempts.labels(result="placed").inc()
    metrics.failovers.inc(2)
    found = families(generate_latest(metrics.registry))
    leases = found["kommons_leases"]
    assert [(s.labels, s.value) for s in leases.samples] == [
        ({"pool": "eu-pool", "phase": "Running"}, 3.0)
    ]
    assert found["kommons_failovers"].samples[0].value == 2.0
    metrics.snapshot = MarketSnapshot(leases={("eu-pool", "Running"): 1})
    again = families(generate_latest(metrics.registry))
    assert again["kommons_leases"].samples[0].value == 1.0
    assert again["kommons_providers"].samples == []


def _promtool_check(text: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool_binary()), "check", "metrics"],
        input=text.decode(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _filled_hub() -> HubMetrics:
    metrics = HubMetrics()
    metrics.snapshot = MarketSnapshot(
        leases={("p", "Running"): 1},
        providers={"Ready": 1},
        heartbeat_age={"a": 1.5},
        pool_capacity={("p", "cpu"): 8.0},
        pool_free={("p", "cpu"): 2.0},
        epochs={"Open": 1},
        accounts={"Covered": 1},
    )
    metrics.leader.set(1)
    metrics.reconcile_seconds.observe(0.01)
    metrics.reconcile_errors.inc()
    metrics.scheduling_latency.observe(1.2)
    metrics.scheduling_attempts.labels(result="unschedulable").inc()
    metrics.scheduling_rejections.labels(reason="InsufficientCpu").inc(3)
    metrics.failovers.inc()
    metrics.accrued_tokens.inc(0.25)
    metrics.late_seconds.inc(4)
    metrics.settlement_transactions.labels(kind="commit", outcome="confirmed").inc()
    metrics.settlement_gas.labels(kind="commit").observe(75_900)
    metrics.epoch_settle_seconds.observe(12.0)
    metrics.chain_errors.labels(loop="payment").inc()
    return metrics


def _filled_agent() -> AgentMetrics:
    metrics = AgentMetrics()
    metrics.step_seconds.labels(step="report").observe(0.02)
    metrics.step_errors.labels(step="heartbeat").inc()
    metrics.checkpoints.inc()
    return metrics


@pytest.mark.parametrize("make", [_filled_hub, _filled_agent], ids=["hub", "agent"])
def test_promtool_accepts_the_exposition(make: Any) -> None:
    text = generate_latest(make().registry)
    checked = _promtool_check(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", f"promtool lint findings:\n{checked.stdout}"


@pytest.mark.parametrize("make", [_filled_hub, _filled_agent], ids=["hub", "agent"])
def test_label_sets_are_bounded(make: Any) -> None:
    allowed = {"pool", "phase", "provider", "resource", "standing", "result", "reason", "kind"}
    allowed |= {"outcome", "loop", "step", "le"}
    for family in families(generate_latest(make().registry)).values():
        for sample in family.samples:
            assert set(sample.labels) <= allowed, (family.name, sample.labels)


def test_the_server_serves_metrics_on_the_port_it_bound() -> None:
    metrics = _filled_agent()
    port = serve(metrics.registry, 0, "127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        body = reply.read()
    assert b"kommons_agent_metering_checkpoints_total 1.0" in body
