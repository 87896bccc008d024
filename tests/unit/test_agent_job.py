"""Unit tests of run-to-completion placements on the agent side (a ``batch/v1`` Job).

Behaviour matrix (case -> expected):

- a placement with ``spec.job`` -> the same sandbox (restricted namespace, quota, limit range,
  default-deny network policy) and a Job: parallelism = replicas, completions and
  backoffLimit from the placement, pods ``restartPolicy: Never``, the Kommons pod labels;
  suspended -> the Job's ``suspend`` and a zero quota.
- a placement without it -> a Deployment, as before.
- Job observed (table): Complete -> Succeeded/JobComplete with the succeeded count; Failed
  -> Failed with the condition's reason and the failed pods' cause, never a pod name;
  running with every wanted pod ready -> Running/AllReplicasReady; the tail of a Job (fewer
  completions left than parallelism) -> still AllReplicasReady; pods waiting on a bad image
  -> that reason; no Job -> WorkloadMissing.
- the status carries the Job's succeeded and failed counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.agent import plan
from kommons.api import LeasePlacement, get_condition
from tests.unit.test_agent_plan import body, pod

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def job_placement(
    *, replicas: int = 2, completions: int = 4, suspend: bool = False
) -> LeasePlacement:
    raw = body(replicas=replicas, suspend=suspend)
    raw["spec"]["job"] = {"completions": completions, "backoffLimit": 3}
    return plan.parse_placement(raw)


def job_object(
    *,
    active: int = 0,
    ready: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    condition: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "active": active,
        "ready": ready,
        "succeeded": succeeded,
        "failed": failed,
    }
    if condition:
        kind, reason, message = condition
        status["conditions"] = [
            {"type": kind, "status": "True", "reason": reason, "message": message}
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "status": status}


def test_a_job_placement_runs_a_job_in_the_same_sandbox() -> None:
    objects = plan.desired_manifests(job_placement(), runtime_class=None)
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Job",
    ]
    namespace, quota, _, _, job = objects
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert quota["spec"]["hard"]["pods"] == "2"
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"], spec["suspend"]) == (
        2,
        4,
        3,
        False,
    )
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["template"]["metadata"]["labels"]["kommons.io/placement"] == "web-abc12-prov-a"


def test_a_suspended_job_is_suspended_and_holds_nothing() -> None:
    objects = plan.desired_manifests(job_placement(suspend=True), runtime_class=None)
    assert objects[1]["spec"]["hard"]["pods"] == "0"
    assert objects[4]["spec"]["suspend"] is True


def test_a_placement_without_job_runs_a_deployment() -> None:
    objects = plan.desired_manifests(plan.parse_placement(body()), runtime_class=None)
    assert objects[4]["kind"] == "Deployment"


FAILED_POD = pod(name="workload-abcde", phase="Failed", message="testbed.kommons.io/fail=true")


@pytest.mark.parametrize(
    ("job", "pods", "completions", "phase", "reason", "in_message"),
    [
        (
            job_object(succeeded=4, condition=("Complete", "", "")),
            None,
            4,
            "Succeeded",
            "JobComplete",
            "4 pod(s) succeeded",
        ),
        (
            job_object(failed=4, condition=("Failed", "BackoffLimitExceeded", "reached limit")),
            [FAILED_POD],
            4,
            "Failed",
            "BackoffLimitExceeded",
            "1 pod(s) Failed: testbed.kommons.io/fail=true",
        ),
        (job_object(active=2, ready=2), None, 4, "Running", "AllReplicasReady", "2/2"),
        (job_object(active=1, ready=1, succeeded=3), None, 4, "Running", "AllReplicasReady", "1/1"),
        (
            job_object(active=2),
            [pod(name="workload-x1", waiting=("ErrImagePull", "pull failed"))] * 2,
            4,
            "Pending",
            "ErrImagePull",
            "2 pod(s) ErrImagePull",
        ),
        (None, None, 4, "Pending", "WorkloadMissing", "not on the provider cluster"),
    ],
)
def test_job_status_table(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]] | None,
    completions: int,
    phase: str,
    reason: str,
    in_message: str,
) -> None:
    workload = plan.observe_job(job, pods)
    status = plan.placement_status(
        job_placement(completions=completions), workload, previous=None, now=NOW
    )
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None
    assert (status.phase, ready.reason) == (phase, reason)
    assert in_message in ready.message
    assert "workload-" not in ready.message


def test_job_status_carries_the_counts_and_skips_succeeded_pods() -> None:
    done = pod(name="workload-done", phase="Succeeded")
    running = pod(name="workload-run", phase="Running", ready="True")
    job = job_object(active=1, ready=0, succeeded=2, failed=1)
    workload = plan.observe_job(job, [done, running])
    assert (workload.replicas, workload.ready_replicas, len(workload.pods)) == (1, 1, 1)
    status = plan.placement_status(job_placement(), workload, previous=None, now=NOW)
    assert (status.succeeded, status.failed) == (2, 1)
    plain = plan.placement_status(
        plan.parse_placement(body()), plan.observe_workload(None), previous=None, now=NOW
    )
    assert (plain.succeeded, plain.failed) == (None, None)
