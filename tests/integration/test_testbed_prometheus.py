"""Evidence that the bed's Prometheus is real: it scrapes an exporter and promtool checks rules."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from kommons_testbed.handles import PrometheusHandle
from kommons_testbed.processes import free_port, is_alive, stop, wait_for
from kommons_testbed.prometheus import (
    promtool_check_config,
    promtool_check_rules,
    query,
    query_values,
    start_prometheus,
)

pytestmark = [
    pytest.mark.bed,
    # processes.spawn lets go of its Popen while the server runs on purpose (the process outlives
    # its starter and is stopped by pid); CPython's Popen.__del__ reports that as a ResourceWarning.
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]

PROBE_VALUE = 42.5

GOOD_RULES = textwrap.dedent(
    """\
    groups:
      - name: kommons-testbed
        rules:
          - record: kommons_testbed:probe:doubled
            expr: 2 * kommons_testbed_probe
          - alert: KommonsTestbedProbeHigh
            expr: kommons_testbed_probe > 40
            for: 0s
            labels:
              severity: info
            annotations:
              summary: "probe is {{ $value }}"
    """
)

BROKEN_RULES = textwrap.dedent(
    """\
    groups:
      - name: broken
        rules:
          - alert: Unbalanced
            expr: sum(rate(kommons_testbed_probe[5m])
    """
)


@pytest.fixture(scope="module")
def exporter_target() -> Iterator[str]:
    registry = CollectorRegistry()
    gauge = Gauge("kommons_testbed_probe", "A value the test bed exposes", registry=registry)
    gauge.set(PROBE_VALUE)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def prom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="module")
def rule_file(prom_dir: Path) -> Path:
    path = prom_dir / "good.rules.yml"
    path.write_text(GOOD_RULES)
    return path


@pytest.fixture(scope="module")
def prometheus(prom_dir: Path, exporter_target: str, rule_file: Path) -> Iterator[PrometheusHandle]:
    record, handle = start_prometheus(prom_dir, [exporter_target], rule_files=[rule_file])
    try:
        yield handle
    finally:
        stop(record)
        assert not is_alive(record.pid)


def test_scrapes_the_exporter_and_query_returns_its_value(
    prometheus: PrometheusHandle, exporter_target: str
) -> None:
    assert prometheus.url.startswith("http://127.0.0.1:")
    wait_for(
        lambda: bool(query(prometheus, "kommons_testbed_probe")),
        timeout=30,
        what="prometheus to scrape the exporter",
    )
    (series,) = query(prometheus, "kommons_testbed_probe")
    assert series["metric"]["instance"] == exporter_target
    assert series["metric"]["job"] == "kommons"
    assert float(series["value"][1]) == PROBE_VALUE
    assert query_values(prometheus, f'up{{instance="{exporter_target}"}}') == [1.0]


def test_loads_rule_files_and_evaluates_them(prometheus: PrometheusHandle) -> None:
    wait_for(
        lambda: bool(query(prometheus, "kommons_testbed:probe:doubled")),
        timeout=30,
        what="the recording rule to produce a sample",
    )
    assert query_values(prometheus, "kommons_testbed:probe:doubled") == [2 * PROBE_VALUE]
    wait_for(
        lambda: bool(query(prometheus, 'ALERTS{alertname="KommonsTestbedProbeHigh"}')),
        timeout=30,
        what="the alert to fire",
    )


def test_written_config_passes_promtool(prometheus: PrometheusHandle) -> None:
    ok, output = promtool_check_config(prometheus.config_file)
    assert ok, output


def test_promtool_accepts_good_rules(rule_file: Path) -> None:
    ok, output = promtool_check_rules(rule_file)
    assert ok, output
    assert "2 rules found" in output


def test_promtool_rejects_broken_rules(tmp_path: Path) -> None:
    path = tmp_path / "broken.rules.yml"
    path.write_text(BROKEN_RULES)
    ok, output = promtool_check_rules(path)
    assert not ok
    assert "FAILED" in output


def test_a_taken_port_is_retried_on_another(
    tmp_path: Path, exporter_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        ports = iter([taken, free_port()])
        monkeypatch.setattr("kommons_testbed.prometheus.free_port", lambda: next(ports))
        record, handle = start_prometheus(tmp_path, [exporter_target])
        try:
            assert handle.url != f"http://127.0.0.1:{taken}"
            assert "address already in use" in (tmp_path / "logs" / "prometheus.log").read_text()
            assert query_values(handle, "vector(1)") == [1.0]
        finally:
            stop(record)
