"""The alerting rules (``helm/kommons/files/kommons-alerts.yaml``) against the real ``promtool``.

Behaviour matrix:

- ``promtool check rules`` accepts the file with no lint finding;
- ``promtool test rules`` passes ``kommons-alerts.test.yaml``, and every alert has a case there
  that expects it to fire;
- every alert names a severity and links the runbook ``docs/runbooks/<alert>.md``, which exists;
  every runbook belongs to an alert and is listed in the runbooks' index;
- every ``kommons_*`` series an expression reads is one the hub or the agent exports (a renamed
  metric cannot leave an alert that never fires).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from kommons.metrics import AgentMetrics, HubMetrics
from kommons_testbed.prometheus import promtool_binary

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "helm" / "kommons" / "files"
RULES = FILES / "kommons-alerts.yaml"
RULE_TESTS = FILES / "kommons-alerts.test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_PREFIX = "https://github.com/kommons/kommons/blob/main/docs/runbooks/"


def _promtool(*args: str, cwd: Path = FILES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool_binary()), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules_with_no_finding() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout
    assert "WARNING" not in checked.stdout + checked.stderr


def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    tested = _promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert {a["alert"] for a in _alerts()} <= firing


def test_every_alert_has_a_severity_and_an_existing_runbook() -> None:
    names = set()
    for alert in _alerts():
        name = alert["alert"]
        names.add(name)
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        url = alert["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_PREFIX}{name}.md", name
        assert (RUNBOOKS / f"{name}.md").is_file(), f"{name}: no docs/runbooks/{name}.md"
        assert alert["annotations"]["summary"], name
        assert alert["annotations"]["description"], name
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == names, f"runbooks without an alert: {sorted(pages - names)}"
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"[{name}]({name}.md)" in index for name in names)


def _exported() -> set[str]:
    hub, agent = HubMetrics(), AgentMetrics()
    hub.scheduling_attempts.labels(result="placed")
    hub.scheduling_rejections.labels(reason="Price")
    hub.settlement_transactions.labels(kind="commit", outcome="failed")
    hub.settlement_gas.labels(kind="commit")
    hub.chain_errors.labels(loop="payment")
    agent.step_seconds.labels(step="heartbeat")
    agent.step_errors.labels(step="heartbeat")
    text = (generate_latest(hub.registry) + generate_latest(agent.registry)).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, flags=re.MULTILINE))
    samples = set(re.findall(r"^(kommons_\w+?)(?:\{| )", text, flags=re.MULTILINE))
    return names | samples


def test_every_series_an_alert_reads_is_exported() -> None:
    exported = _exported()
    for alert in _alerts():
        for series in re.findall(r"\bkommons_\w+", alert["expr"]):
            assert series in exported, f"{alert['alert']} reads {series}, which nothing exports"
