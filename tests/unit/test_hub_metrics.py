"""Unit tests of how one hub step is counted (``Hub._observe``, ``kommons.metrics``).

Behaviour matrix:

- a decision that places a never-placed lease: one ``placed`` attempt, the scheduling latency
  from the lease's creation observed once; a later decision for a lease already placed (a
  failover's replacement) counts as an attempt but not as latency;
- an unschedulable decision: one ``unschedulable`` attempt, its rejections counted by reason;
- a step whose writes conflicted (to be planned again) counts no latency, no failover and no
  cost;
- failovers count only the FailedOver placements the executor did delete;
- the accrued cost counter grows by the step's increase of ``status.cost.accrued`` only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from kommons.api import ComputeLease, ComputeLeaseStatus
from kommons.hub.executor import Outcome
from kommons.hub.handlers import Hub, HubOptions
from kommons.hub.placements import placement_object
from kommons.hub.plan import LeasePlan, ending
from kommons.metrics import HubMetrics
from kommons.scheduler.decision import Decision, Placement

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def lease(status: dict[str, Any] | None = None) -> ComputeLease:
    body: dict[str, Any] = {
        "metadata": {
            "name": "web",
            "namespace": "team-a",
            "uid": "u1",
            "creationTimestamp": (NOW - timedelta(seconds=4)).isoformat(),
        },
        "spec": {
            "poolRef": {"name": "pool"},
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "maxPricePerHour": "1",
            "template": TEMPLATE,
        },
    }
    if status is not None:
        body["status"] = status
    return ComputeLease.model_validate(body)


def hub() -> Hub:
    return Hub(HubOptions(kubeconfig=None), kube=None, metrics=HubMetrics(CollectorRegistry()))  # type: ignore[arg-type]


def value(h: Hub, name: str, **labels: str) -> float:
    found = h.metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


PLACED = Decision(
    lease="team-a/web",
    wanted=1,
    considered=3,
    feasible=1,
    chosen=(Placement("prov-a", 1, 10_000),),
    scheduled=True,
)
UNSCHEDULABLE = Decision(
    lease="team-a/web",
    wanted=1,
    considered=3,
    feasible=0,
    rejected_counts={"Price": 2, "InsufficientCpu": 1},
    rejected_total=3,
)


def test_a_first_placement_observes_the_latency_once() -> None:
    h = hub()
    h._observe(lease(), LeasePlan(decision=PLACED), Outcome(), NOW, 0.01)
    assert value(h, "kommons_scheduling_attempts_total", result="placed") == 1
    assert value(h, "kommons_scheduling_latency_seconds_count") == 1
    assert value(h, "kommons_scheduling_latency_seconds_sum") == 4.0
    placed = lease({"placements": [{"provider": "prov-b", "replicas": 1}]})
    h._observe(placed, LeasePlan(decision=PLACED), Outcome(), NOW, 0.01)
    assert value(h, "kommons_scheduling_attempts_total", result="placed") == 2
    assert value(h, "kommons_scheduling_latency_seconds_count") == 1
    assert value(h, "kommons_hub_reconcile_duration_seconds_count") == 2


def test_an_unschedulable_decision_counts_its_rejections() -> None:
    h = hub()
    h._observe(lease(), LeasePlan(decision=UNSCHEDULABLE), Outcome(), NOW, 0.01)
    assert value(h, "kommons_scheduling_attempts_total", result="unschedulable") == 1
    assert value(h, "kommons_scheduling_rejections_total", reason="Price") == 2
    assert value(h, "kommons_scheduling_rejections_total", reason="InsufficientCpu") == 1
    assert value(h, "kommons_scheduling_latency_seconds_count") == 0


def test_failovers_cost_and_conflicts() -> None:
    h = hub()
    the_lease = lease({"cost": {"accrued": "0.5"}})
    gone = placement_object(
        the_lease, provider="prov-b", replicas=1, price_per_hour=10_000, account="acct"
    )
    gone.metadata.uid = "p-gone"
    kept = placement_object(
        the_lease, provider="prov-c", replicas=1, price_per_hour=10_000, account="acct"
    )
    kept.metadata.uid = "p-kept"
    status = ComputeLeaseStatus.model_validate({"cost": {"accrued": "0.75"}})
    plan = LeasePlan(
        decision=PLACED,
        status=status,
        endings=[ending(gone, "FailedOver"), ending(kept, "FailedOver")],
    )
    h._observe(the_lease, plan, Outcome(conflict=True), NOW, 0.01)
    assert value(h, "kommons_failovers_total") == 0
    assert value(h, "kommons_metered_accrued_tokens_total") == 0
    assert value(h, "kommons_scheduling_latency_seconds_count") == 0
    h._observe(the_lease, plan, Outcome(deleted=[gone]), NOW, 0.01)
    assert value(h, "kommons_failovers_total") == 1  # only the one deleted
    assert value(h, "kommons_metered_accrued_tokens_total") == 0.25
