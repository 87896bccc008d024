"""The hub's and the agents' ``/metrics`` on the bed, scraped by a real Prometheus.

The module runs a settling hub (the suite's shared one does not settle), so the settlement
series have data too.

Behaviour matrix:

- every hub and agent process of the stack serves ``/metrics``; the real ``promtool check
  metrics`` accepts each live scrape (naming, units, ``_total``) with no lint finding;
- a real Prometheus scraping them sees every target up, the acting hub as leader, every
  provider Ready with a fresh heartbeat, the pool's capacity and free capacity, a lease placed
  on the bed counted Running in its pool, the scheduling latency observed, the agents' report
  steps and metering checkpoints counting, cost accruing and an epoch committed and confirmed;
- then every query of every panel of the Grafana dashboard
  (``helm/kommons/files/kommons-dashboard.json``) returns data from that Prometheus.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.handles import PrometheusHandle
from kommons_testbed.processes import stop, wait_for
from kommons_testbed.prometheus import promtool_binary, query_values, start_prometheus
from kommons_testbed.stack import Stack
from tests.integration.conftest import POOL, lease_body, wait_lease

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm" / "kommons" / "files" / "kommons-dashboard.json"
RATE_INTERVAL = "30s"
"""What Grafana's ``$__rate_interval`` stands for here (Prometheus scrapes every second)."""

pytestmark = [
    pytest.mark.bed,
    # processes.spawn lets go of its Popen while the server runs on purpose (stopped by pid).
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def settling_hub(stack: Stack) -> Iterator[Stack]:
    with stack.hub_with(settle=True):
        yield stack


def _scrape(target: str) -> str:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _scrape_when_up(name: str, target: str) -> str:
    """Scrape ``target``; a process just (re)started binds its port a moment after it starts."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return _scrape(target)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} does not serve /metrics on {target}") from None
            time.sleep(0.5)


def test_every_process_serves_metrics_promtool_accepts(stack: Stack) -> None:
    targets = stack.metrics_targets()
    assert {"hub", "agent-prov-a", "agent-prov-b", "agent-prov-c"} <= set(targets)
    for name, target in targets.items():
        text = _scrape_when_up(name, target)
        family = "kommons_hub_leader" if name.startswith("hub") else "kommons_agent_step"
        assert family in text, f"{name}: no {family} in its /metrics"
        checked = subprocess.run(
            [str(promtool_binary()), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
        assert checked.stdout.strip() == "", f"{name}: promtool findings:\n{checked.stdout}"


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusHandle]:
    state = tmp_path_factory.mktemp("prometheus")
    record, handle = start_prometheus(state, list(stack.metrics_targets().values()))
    try:
        yield handle
    finally:
        stop(record)


def _value(handle: PrometheusHandle, promql: str) -> float | None:
    values = query_values(handle, promql)
    return values[0] if values else None


def test_prometheus_sees_the_market(
    stack: Stack, hub: Kube, tenant: str, prometheus: PrometheusHandle
) -> None:
    targets = len(stack.metrics_targets())
    wait_for(
        lambda: _value(prometheus, "sum(up)") == targets,
        timeout=60,
        what=f"all {targets} targets up",
    )
    hub.create(r.COMPUTE_LEASES, lease_body("watched", tenant, replicas=2), tenant)
    wait_lease(
        hub,
        tenant,
        "watched",
        lambda lease: (lease.get("status") or {}).get("phase") == "Running",
        what="lease watched Running",
        timeout=120,
    )
    providers = len(stack.provider_kubeconfigs)
    expectations = {
        "kommons_hub_leader": lambda v: v == 1,
        'kommons_providers{phase="Ready"}': lambda v: v == providers,
        "max(kommons_provider_heartbeat_age_seconds)": lambda v: v < 30,
        f'kommons_leases{{pool="{POOL}",phase="Running"}}': lambda v: v >= 1,
        f'kommons_pool_capacity{{pool="{POOL}",resource="cpu"}}': lambda v: v > 0,
        f'kommons_pool_free{{pool="{POOL}",resource="pods"}}': lambda v: v > 0,
        "kommons_scheduling_latency_seconds_count": lambda v: v >= 1,
        'sum(kommons_scheduling_attempts_total{result="placed"})': lambda v: v >= 1,
        "sum(kommons_hub_reconcile_duration_seconds_count)": lambda v: v >= 1,
        'sum(kommons_agent_step_duration_seconds_count{step="report"})': lambda v: v >= 1,
        'sum(kommons_agent_step_duration_seconds_count{step="heartbeat"})': lambda v: v >= 1,
        "sum(kommons_agent_metering_checkpoints_total)": lambda v: v >= 1,
        "kommons_metered_accrued_tokens_total": lambda v: v > 0,
        'sum(kommons_settlement_transactions_total{kind="commit",outcome="confirmed"})': (
            lambda v: v >= 1
        ),
        "kommons_settlement_epoch_settle_seconds_count": lambda v: v >= 1,
    }
    seen: dict[str, float | None] = {}

    def all_hold() -> bool:
        for promql in expectations:
            seen[promql] = _value(prometheus, promql)
        return all(
            (value := seen[q]) is not None and holds(value) for q, holds in expectations.items()
        )

    try:
        # an epoch is 20 s on the bed, sealed 8 s after its end, then committed and confirmed
        wait_for(all_hold, timeout=150, what="every expected series", every=1)
    except Exception as exc:
        raise AssertionError(f"{exc}; last values: {seen}") from exc
    _check_dashboard(prometheus)
    hub.delete(r.COMPUTE_LEASES, "watched", tenant)  # while a hub settles its epochs
    wait_for(
        lambda: hub.get_or_none(r.COMPUTE_LEASES, "watched", tenant) is None,
        timeout=150,
        what="the lease to be gone once its epochs are settled",
    )


def _panel_queries() -> list[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def _check_dashboard(prometheus: PrometheusHandle) -> None:
    """Every panel's every query returns at least one series.

    A rate over a series born a second ago has no data until its second sample: waited for.
    """
    queries = _panel_queries()
    assert len(queries) >= 20
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [f"{t}: {e}" for t, e in queries if not query_values(prometheus, e)]
        return not empty

    try:
        wait_for(all_have_data, timeout=60, what="every dashboard query to have data", every=2)
    except Exception as exc:
        raise AssertionError("dashboard queries without data:\n" + "\n".join(empty)) from exc
