"""Unit tests of what the market commands print (``kommons.reports``, ``kommons.cli_market``).

Behaviour matrix:

- ``age`` is kubectl's (s, m, h, d; ``-`` unknown); ``table`` aligns columns;
- lease rows: a lease without status is ``Pending`` at ``0/N`` with cost 0;
- explain: where it runs (per provider, ready and price), why (considered, feasible, chosen
  with list price × multiplier for a Utilization quote, rejected counts and samples), what
  moved (history), cost so far (accrued, settled);
- bill: a lease's settled total, then its unsettled usage per epoch and provider, and a TOTAL;
- provider report: list prices and price policy (Static, or Utilization up to its multiplier);
  earnings summed per epoch when readable, or says they are not readable;
- the commands: a missing kubeconfig, an unreachable hub, a namespace from the kubeconfig's
  context — one ``error:`` line and exit 1, never a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kommons.api import ComputeLease, LeasePlacement, PricingPolicy, Provider
from kommons.cli import app
from kommons.cli_common import context_namespace
from kommons.reports import (
    age,
    bill_lines,
    bill_rows,
    explain_lease,
    lease_rows,
    provider_report,
    table,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def lease(status: dict[str, Any] | None = None, name: str = "web") -> ComputeLease:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "creationTimestamp": (NOW - timedelta(minutes=7)).isoformat(),
        },
        "spec": {
            "poolRef": {"name": "default"},
            "replicas": 2,
            "resources": {"cpu": "500m", "memory": "256Mi"},
            "maxPricePerHour": "0.05",
            "template": TEMPLATE,
        },
    }
    if status is not None:
        body["status"] = status
    return ComputeLease.model_validate(body)


RUNNING = {
    "phase": "Running",
    "ready": "2/2",
    "providers": "prov-a",
    "billingAccount": "acme",
    "placements": [
        {
            "provider": "prov-a",
            "replicas": 2,
            "readyReplicas": 2,
            "pricePerHour": "0.01",
            "placedAt": (NOW - timedelta(minutes=5)).isoformat(),
        }
    ],
    "decision": {
        "considered": 3,
        "feasible": 2,
        "chosen": [{"provider": "prov-a", "replicas": 2, "pricePerHour": "0.01"}],
        "rejected": {"prov-c": "price 0.09/h above the lease's 0.05/h"},
        "rejectedCounts": {"Price": 1},
        "decidedAt": (NOW - timedelta(minutes=5)).isoformat(),
    },
    "history": [
        {
            "time": (NOW - timedelta(minutes=6)).isoformat(),
            "type": "FailedOver",
            "provider": "prov-b",
            "to": ["prov-a"],
            "replicas": 2,
            "reason": "ProviderUnreachable",
            "message": "no heartbeat for 20s",
        }
    ],
    "cost": {"accrued": "0.003", "settled": "0.001"},
    "usage": [
        {
            "epochId": 8,
            "provider": "prov-a",
            "placementUid": "u1",
            "billingAccount": "acme",
            "readySeconds": 360,
            "amount": "0.002",
        }
    ],
}


def test_age_and_table() -> None:
    assert age(None, NOW) == "-"
    assert age(NOW - timedelta(seconds=42), NOW) == "42s"
    assert age(NOW - timedelta(minutes=7, seconds=3), NOW) == "7m"
    assert age(NOW - timedelta(days=3, hours=2), NOW) == "3d"
    assert table(("A", "LONGER"), [["xyz", "1"], ["q", "22"]]).splitlines() == [
        "A     LONGER",
        "xyz   1",
        "q     22",
    ]


def test_a_lease_without_status_is_pending() -> None:
    assert lease_rows([lease()], NOW) == [
        ["team-a", "web", "Pending", "0/2", "-", "0", "7m"],
    ]
    assert lease_rows([lease(RUNNING)], NOW)[0][2:6] == ["Running", "2/2", "prov-a", "0.003"]


def test_explain_says_where_why_what_moved_and_the_cost() -> None:
    text = explain_lease(lease(RUNNING), NOW)
    assert "prov-a: 2/2 ready at 0.01/h per replica, placed 5m ago" in text
    assert "considered 3 provider(s), 2 feasible; chose prov-a (2 at 0.01/h)" in text
    assert "rejected 1 for Price" in text
    assert "e.g. prov-c: price 0.09/h above the lease's 0.05/h" in text
    assert "FailedOver: 2 replica(s) from prov-b → prov-a (ProviderUnreachable" in text
    assert "Cost so far: 0.003 accrued, 0.001 settled on chain" in text
    quiet = explain_lease(lease(), NOW)
    assert "nowhere yet" in quiet
    assert "What moved:\n  nothing" in quiet
    assert "nothing metered yet" in quiet


def test_explain_shows_list_price_times_multiplier_of_a_utilization_quote() -> None:
    status = dict(RUNNING)
    status["decision"] = {
        **RUNNING["decision"],
        "chosen": [
            {
                "provider": "prov-a",
                "replicas": 2,
                "pricePerHour": "0.025",
                "listPricePerHour": "0.01",
                "priceMultiplier": "2.5",
            }
        ],
    }
    text = explain_lease(lease(status), NOW)
    assert "chose prov-a (2 at 0.025/h = 0.01/h list × 2.5)" in text


def test_bill_has_the_settled_total_then_usage_per_epoch_and_a_total() -> None:
    lines = bill_lines([lease(RUNNING), lease(name="idle")])
    rows = bill_rows(lines)
    assert rows == [
        ["team-a", "web", "settled", "-", "acme", "-", "0.001"],
        ["team-a", "web", "8", "prov-a", "acme", "360", "0.002"],
        ["TOTAL", "", "", "", "", "", "0.003"],
    ]


def provider() -> Provider:
    return Provider.model_validate(
        {
            "metadata": {"name": "prov-a"},
            "spec": {
                "region": "eu",
                "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
                "pricing": {"cpuCoreHour": "0.02", "memoryGiBHour": "0.001"},
            },
            "status": {
                "phase": "Ready",
                "lastHeartbeatTime": (NOW - timedelta(seconds=4)).isoformat(),
                "available": {"cpu": "6", "memory": "8Gi", "pods": 100},
            },
        }
    )


def test_provider_report_with_and_without_earnings() -> None:
    placements: list[LeasePlacement] = []
    readable = provider_report(provider(), placements, NOW, {"7": "1.5", "8": "0.25"})
    assert "Phase: Ready; last heartbeat 4s ago" in readable
    assert "epoch 7: 1.5" in readable
    assert "Placements: 0" in readable
    assert "Prices:      0.02/core-h, 0.001/GiB-h; Static (list prices)" in readable
    hidden = provider_report(provider(), placements, NOW, None)
    assert "not readable with these credentials" in hidden


def test_provider_report_shows_a_utilization_policy() -> None:
    body = provider()
    body.spec.pricing.gpu_hour = {"nvidia-l4": "0.6"}
    body.spec.pricing.policy = PricingPolicy(type="Utilization", max_multiplier="3")
    text = provider_report(body, [], NOW, None)
    assert "Prices:      0.02/core-h, 0.001/GiB-h, 0.6/nvidia-l4-h; Utilization, up to ×3" in text


def test_commands_fail_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["lease", "list", "--kubeconfig", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("error: kubeconfig")
    assert "Traceback" not in missing.output
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: team-z}}]\n"
    )
    assert context_namespace(unreachable) == "team-z"
    down = runner.invoke(app, ["lease", "explain", "web", "--kubeconfig", str(unreachable)])
    assert down.exit_code == 1
    assert down.output.count("\n") == 1
    assert down.output.startswith("error: ")
    assert "Traceback" not in down.output
