"""Unit tests of the agent's pure plan (``kommons.agent.plan``).

Behaviour matrix:

- Edge (``parse_placement``):
  - a valid body -> a typed ``LeasePlacement``; its template round-trips unchanged;
  - a body with a bad field -> ``InvalidPlacement`` naming the field path (``spec.replicas``);
  - no spec -> ``InvalidPlacement`` ("spec: missing");
  - an unreadable status -> the placement parses, status dropped.
  - ``invalid_status`` -> phase Failed, Ready=False/InvalidPlacement, the named error as message.
- Plan: placement -> manifests:
  - namespace, quota, limit range, network policy, deployment, in that order; quota annotated
    with the lease and GPU model; replicas from spec; suspended -> Deployment of 0 replicas.
- Observation (``observe_pod`` / ``observe_workload``), the reasons table:

  ======================================================== ==============================
  pod situation                                             cause (label)
  ======================================================== ==============================
  Ready=True                                                ready
  PodScheduled=False/Unschedulable                          PodsUnschedulable (Pending)
  container waiting ImagePullBackOff / ErrImagePull /       that reason
  CrashLoopBackOff / CreateContainerConfigError (init too)
  waiting ContainerCreating                                 ContainersNotReady
  Running, Ready=False (probe)                              ContainersNotReady (its message)
  phase Failed                                              PodsFailed
  being deleted                                             not observed
  Deployment ReplicaFailure=True                            ReplicaFailure (its message)
  ======================================================== ==============================

- Messages: no pod names or uids; the scheduler's ``preemption:`` tail dropped; identical
  causes aggregate ("2 pod(s) Pending: ..."); the condition's reason is the highest-ranked
  cause and comes first; at most 3 causes quoted.
- Status (``placement_status``): phase Running / Degraded / Pending / Suspended; replicas and
  readyReplicas from the listed pods when listed (the same source as the reasons), else
  from the Deployment; Ready condition True/AllReplicasReady or False with the
  cause; observedGeneration; lastTransitionTime kept while the status does not flip;
  no Deployment -> WorkloadMissing.
- Property: whatever the pods, the reason is a known word, Ready is True exactly when all
  wanted replicas are ready (or suspended), no pod name reaches the message, at most 3 causes
  are quoted, and the phase follows the ready count.
- Writes (``needs_write``): first report, any change, and a refresh after STATUS_REFRESH are
  written; an unchanged status within the refresh period is not.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.agent import plan
from kommons.agent.plan import (
    ALL_READY,
    INVALID,
    NOT_READY,
    PODS_FAILED,
    REPLICA_FAILURE,
    SUSPENDED,
    UNSCHEDULABLE,
    WORKLOAD_MISSING,
    InvalidPlacement,
    PodView,
    WorkloadView,
)
from kommons.api import LeasePlacement, get_condition

NOW = datetime(2026, 12, 1, 5, 0, 0, tzinfo=UTC)
SCHEDULER_MESSAGE = (
    "0/3 nodes are available: 3 Too many pods. preemption: 0/3 nodes are available: "
    "3 No preemption victims found for incoming pod."
)


def body(*, replicas: int = 2, suspend: bool = False, generation: int = 3) -> dict[str, Any]:
    """A LeasePlacement as the agent receives it from the hub."""
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "LeasePlacement",
        "metadata": {
            "name": "web-abc12-prov-a",
            "namespace": "kommons-provider-prov-a",
            "generation": generation,
            "uid": "0000-1111",
            "annotations": {"agent.kommons.io/last-handled-configuration": "{}"},
        },
        "spec": {
            "leaseRef": {"namespace": "team-a", "name": "web", "uid": "lease-uid-1"},
            "provider": "prov-a",
            "replicas": replicas,
            "resources": {"cpu": "500m", "memory": "256Mi"},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginxinc/nginx-unprivileged:1.27-alpine",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ],
                    "terminationGracePeriodSeconds": 10,
                },
            },
            "pricePerHour": "0.01075",
            "billingAccount": "acct",
            "suspend": suspend,
        },
    }


def placement(**kwargs: Any) -> LeasePlacement:
    return plan.parse_placement(body(**kwargs))


def pod(
    *,
    name: str = "workload-6b7c9d5f4-x2k9z",
    phase: str = "Pending",
    ready: str | None = None,
    ready_message: str = "",
    scheduled: tuple[str, str, str] | None = None,
    waiting: tuple[str, str] | None = None,
    init_waiting: tuple[str, str] | None = None,
    deleting: bool = False,
    message: str = "",
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    if scheduled:
        status, reason, msg = scheduled
        conditions.append(
            {"type": "PodScheduled", "status": status, "reason": reason, "message": msg}
        )
    if ready:
        conditions.append({"type": "Ready", "status": ready, "message": ready_message})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if message:
        status["message"] = message
    if waiting:
        status["containerStatuses"] = [
            {"name": "app", "state": {"waiting": {"reason": waiting[0], "message": waiting[1]}}}
        ]
    if init_waiting:
        status["initContainerStatuses"] = [
            {
                "name": "setup",
                "state": {"waiting": {"reason": init_waiting[0], "message": init_waiting[1]}},
            }
        ]
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-01T04:59:00Z"
    return {"metadata": metadata, "status": status}


def deployment(
    replicas: int = 2, ready: int = 0, replica_failure: str | None = None
) -> dict[str, Any]:
    conditions = []
    if replica_failure is not None:
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": replica_failure,
            }
        )
    return {
        "metadata": {"name": "workload"},
        "status": {"replicas": replicas, "readyReplicas": ready, "conditions": conditions},
    }


def unschedulable(name: str) -> dict[str, Any]:
    return pod(name=name, scheduled=("False", "Unschedulable", SCHEDULER_MESSAGE))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SCHEDULER_MESSAGE, "0/3 nodes are available: 3 Too many pods."),
        (
            "0/3 nodes are available: 3 node(s) had untolerated taint(s). no new claims to "
            "deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful "
            "for scheduling.",
            "0/3 nodes are available: 3 node(s) had untolerated taint(s).",
        ),
        (
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{example.com/x: }. preemption: 0/2 nodes are available: 2 No preemption victims.",
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{example.com/x: }.",
        ),
        ("0/1 nodes are available: 1 Too many pods.", "0/1 nodes are available: 1 Too many pods."),
        ("something  else\n entirely", "something else entirely"),
    ],
)
def test_scheduler_messages_keep_their_first_sentence(raw: str, expected: str) -> None:
    assert plan.normalise(raw) == expected


# --- edge ----------------------------------------------------------------------------------


def test_a_valid_body_parses_and_its_template_round_trips() -> None:
    raw = body()
    parsed = plan.parse_placement(raw)
    assert parsed.spec.replicas == 2
    assert parsed.spec.resources.cpu == "500m"
    work = plan.placement_work(parsed, runtime_class=None)
    assert work.template == raw["spec"]["template"]
    assert work.lease_uid == "lease-uid-1"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["spec"].__setitem__("replicas", -1), "spec.replicas"),
        (lambda b: b["spec"]["resources"].__setitem__("cpu", "lots"), "spec.resources.cpu"),
        (lambda b: b["spec"].pop("leaseRef"), "spec.leaseRef"),
        (lambda b: b["spec"].__setitem__("surprise", 1), "spec.surprise"),
    ],
)
def test_a_bad_field_fails_at_the_edge_with_its_path(mutate: Any, field: str) -> None:
    raw = body()
    mutate(raw)
    with pytest.raises(InvalidPlacement) as info:
        plan.parse_placement(raw)
    assert info.value.name == "web-abc12-prov-a"
    assert any(p.startswith(field) for p in info.value.problems), info.value.problems
    assert field in str(info.value)


def test_no_spec_is_invalid() -> None:
    raw = body()
    del raw["spec"]
    with pytest.raises(InvalidPlacement, match="spec: missing"):
        plan.parse_placement(raw)


def test_an_unreadable_status_is_dropped_not_fatal() -> None:
    raw = body()
    raw["status"] = {"replicas": "many", "conditions": "nope"}
    assert plan.parse_placement(raw).status is None
    assert plan.previous_status(raw) is None


def test_invalid_status_reports_the_named_error() -> None:
    raw = body()
    raw["spec"]["replicas"] = -1
    with pytest.raises(InvalidPlacement) as info:
        plan.parse_placement(raw)
    status = plan.invalid_status(info.value, generation=3, previous=None, now=NOW)
    assert status.phase == "Failed"
    ready = get_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", INVALID)
    assert "spec.replicas" in ready.message
    assert status.message == ready.message
    assert status.observed_generation == 3
    wire = plan.status_patch(status)
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-12-01T05:00:00Z"


# --- plan: manifests -----------------------------------------------------------------------


def test_manifests_in_order_with_annotated_quota() -> None:
    objects = plan.desired_manifests(placement(replicas=3), runtime_class=None)
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Deployment",
    ]
    quota = objects[1]
    assert quota["spec"]["hard"]["pods"] == "3"
    assert quota["metadata"]["annotations"] == {
        plan.ANNOTATION_LEASE: "team-a/web",
        plan.ANNOTATION_GPU_MODEL: "",
    }
    assert objects[4]["spec"]["replicas"] == 3
    assert objects[4]["metadata"]["namespace"] == objects[0]["metadata"]["name"]


def test_suspended_placement_releases_its_quota_and_runs_nothing() -> None:
    objects = plan.desired_manifests(placement(replicas=3, suspend=True), runtime_class=None)
    hard = objects[1]["spec"]["hard"]
    # the reservation goes back to the market: the inventory reads it from the quota
    assert (hard["pods"], hard["requests.cpu"], hard["requests.memory"]) == ("0", "0", "0")
    assert objects[4]["spec"]["replicas"] == 0


# --- observation: the reasons table -----------------------------------------------------


@pytest.mark.parametrize(
    ("the_pod", "cause", "label", "detail"),
    [
        (pod(phase="Running", ready="True"), "", "", ""),
        (
            unschedulable("workload-6b7c9d5f4-x2k9z"),
            UNSCHEDULABLE,
            "Pending",
            "0/3 nodes are available: 3 Too many pods.",
        ),
        (
            pod(
                scheduled=("True", "", ""),
                waiting=("ImagePullBackOff", 'Back-off pulling image "nope:1"'),
            ),
            "ImagePullBackOff",
            "ImagePullBackOff",
            'container app: Back-off pulling image "nope:1"',
        ),
        (
            pod(waiting=("ErrImagePull", "")),
            "ErrImagePull",
            "ErrImagePull",
            "container app",
        ),
        (
            pod(
                phase="Running",
                ready="False",
                waiting=(
                    "CrashLoopBackOff",
                    "back-off 5m0s restarting failed container=app "
                    "pod=workload-6b7c9d5f4-x2k9z_kommons-web(uid-workload-6b7c9d5f4-x2k9z)",
                ),
            ),
            "CrashLoopBackOff",
            "CrashLoopBackOff",
            "container app: back-off 5m0s restarting failed container=app",
        ),
        (
            pod(init_waiting=("CreateContainerConfigError", 'secret "creds" not found')),
            "CreateContainerConfigError",
            "CreateContainerConfigError",
            'container setup: secret "creds" not found',
        ),
        (
            pod(scheduled=("True", "", ""), waiting=("ContainerCreating", "")),
            NOT_READY,
            "not ready",
            "ContainerCreating",
        ),
        (
            pod(
                phase="Running",
                ready="False",
                ready_message="containers with unready status: [app]",
            ),
            NOT_READY,
            "not ready",
            "containers with unready status: [app]",
        ),
        (
            pod(phase="Failed", message="Pod was rejected: Node didn't have enough resource"),
            PODS_FAILED,
            "Failed",
            "Pod was rejected: Node didn't have enough resource",
        ),
    ],
)
def test_pod_causes(the_pod: dict[str, Any], cause: str, label: str, detail: str) -> None:
    view = plan.observe_pod(the_pod)
    assert view == PodView(cause == "", cause, label, detail)
    assert "x2k9z" not in view.detail


def test_pods_being_deleted_are_not_observed() -> None:
    seen = plan.observe_workload(deployment(), [pod(deleting=True), unschedulable("p1")])
    assert len(seen.pods) == 1


def test_replica_failure_is_read_without_pod_names() -> None:
    message = (
        'pods "workload-6b7c9d5f4-x2k9z" is forbidden: exceeded quota: kommons-lease, '
        "requested: pods=1, used: pods=2, limited: pods=2"
    )
    seen = plan.observe_workload(deployment(replica_failure=message))
    assert seen.replica_failure == (
        "pod creation forbidden: exceeded quota: kommons-lease, "
        "requested: pods=1, used: pods=2, limited: pods=2"
    )


def test_no_deployment_is_not_existing() -> None:
    assert plan.observe_workload(None) == WorkloadView(exists=False)


# --- status --------------------------------------------------------------------------------


def status_of(the_placement: LeasePlacement, workload: WorkloadView, previous: Any = None) -> Any:
    return plan.placement_status(the_placement, workload, previous=previous, now=NOW)


def ready_of(status: Any) -> tuple[str, str, str]:
    condition = get_condition(status.conditions, "Ready")
    assert condition is not None
    assert condition.message == status.message  # the same human text in both
    return condition.status, condition.reason, condition.message


def test_all_ready_is_running() -> None:
    status = status_of(placement(), plan.observe_workload(deployment(2, 2)))
    assert status.phase == "Running"
    assert (status.replicas, status.ready_replicas) == (2, 2)
    assert ready_of(status) == ("True", ALL_READY, "2/2 replicas ready")
    assert status.observed_generation == 3
    assert status.namespace == "kommons-web-abc12-prov-a"
    assert status.last_report_time == NOW


def test_unschedulable_pods_aggregate_into_one_cause() -> None:
    pods = [
        pod(phase="Running", ready="True"),
        unschedulable("workload-6b7c9d5f4-aaaaa"),
        unschedulable("workload-6b7c9d5f4-bbbbb"),
    ]
    status = status_of(placement(replicas=3), plan.observe_workload(deployment(3, 1), pods))
    assert status.phase == "Degraded"
    assert (status.replicas, status.ready_replicas) == (3, 1)
    assert ready_of(status) == (
        "False",
        UNSCHEDULABLE,
        "2 pod(s) Pending: 0/3 nodes are available: 3 Too many pods.",
    )


def test_listed_pods_give_the_counts_when_the_deployment_lags() -> None:
    pods = [pod(phase="Running", ready="False", ready_message="probe failed")] * 2
    seen = plan.observe_workload(deployment(0, 0), pods)
    assert (seen.replicas, seen.ready_replicas) == (2, 0)
    status = status_of(placement(replicas=2), seen)
    assert (status.replicas, status.ready_replicas) == (2, 0)
    assert ready_of(status) == ("False", NOT_READY, "2 pod(s) not ready: probe failed")
    caught_up = plan.observe_workload(deployment(2, 1), [pod(phase="Running", ready="True")] * 2)
    assert status_of(placement(replicas=2), caught_up).phase == "Running"


def test_no_ready_replica_is_pending() -> None:
    status = status_of(
        placement(replicas=1), plan.observe_workload(deployment(1, 0), [unschedulable("p")])
    )
    assert status.phase == "Pending"
    assert ready_of(status)[1] == UNSCHEDULABLE


def test_the_highest_ranked_cause_names_the_condition_and_comes_first() -> None:
    pods = [
        pod(phase="Running", ready="False", ready_message="probe failed"),
        pod(phase="Running", ready="False", ready_message="probe failed"),
        pod(waiting=("ImagePullBackOff", "Back-off")),
        unschedulable("p3"),
    ]
    status = status_of(
        placement(replicas=5),
        plan.observe_workload(deployment(4, 0, replica_failure="exceeded quota"), pods),
    )
    _, reason, message = ready_of(status)
    assert reason == UNSCHEDULABLE
    assert message.startswith("1 pod(s) Pending: 0/3 nodes are available")
    assert "1 pod(s) ImagePullBackOff: container app: Back-off" in message
    assert "2 pod(s) not ready: probe failed" in message
    assert "and 1 more cause(s)" in message  # ReplicaFailure is the 4th


def test_replica_failure_alone() -> None:
    status = status_of(
        placement(replicas=3),
        plan.observe_workload(deployment(2, 2, replica_failure="exceeded quota: kommons-lease")),
    )
    assert ready_of(status) == (
        "False",
        REPLICA_FAILURE,
        "pods not created: exceeded quota: kommons-lease",
    )
    assert status.phase == "Degraded"


def test_nothing_to_explain_is_containers_not_ready() -> None:
    status = status_of(placement(replicas=2), plan.observe_workload(deployment(2, 1)))
    assert ready_of(status) == ("False", NOT_READY, "1/2 replicas ready")


def test_suspended() -> None:
    status = status_of(placement(suspend=True), plan.observe_workload(deployment(0, 0)))
    assert status.phase == "Suspended"
    assert ready_of(status)[:2] == ("True", SUSPENDED)


def test_missing_workload() -> None:
    status = status_of(placement(), plan.observe_workload(None))
    assert status.phase == "Pending"
    assert ready_of(status)[:2] == ("False", WORKLOAD_MISSING)


def test_transition_time_moves_only_when_readiness_flips() -> None:
    p = placement(replicas=1)
    first = status_of(p, plan.observe_workload(deployment(1, 0), [unschedulable("p")]))
    later = NOW + timedelta(seconds=30)
    still = plan.placement_status(
        p,
        plan.observe_workload(deployment(1, 0), [pod(waiting=("ContainerCreating", ""))]),
        previous=first,
        now=later,
    )
    cond = get_condition(still.conditions, "Ready")
    assert cond is not None
    assert (cond.reason, cond.last_transition_time) == (NOT_READY, NOW)
    ready = plan.placement_status(
        p, plan.observe_workload(deployment(1, 1)), previous=still, now=later
    )
    cond = get_condition(ready.conditions, "Ready")
    assert cond is not None
    assert (cond.status, cond.last_transition_time) == ("True", later)


def test_status_wire_form_round_trips_through_the_api_model() -> None:
    status = status_of(placement(), plan.observe_workload(deployment(2, 2)))
    wire = plan.status_patch(status)
    assert wire["readyReplicas"] == 2
    assert wire["observedGeneration"] == 3
    assert wire["lastReportTime"] == "2026-12-01T05:00:00Z"
    raw = body()
    raw["status"] = copy.deepcopy(wire)
    assert plan.previous_status(raw) == status


# --- writes --------------------------------------------------------------------------------


def test_needs_write_only_on_change_or_refresh() -> None:
    p = placement()
    workload = plan.observe_workload(deployment(2, 2))
    first = plan.placement_status(p, workload, previous=None, now=NOW)
    assert plan.needs_write(None, first, now=NOW)
    soon = NOW + timedelta(seconds=5)
    same = plan.placement_status(p, workload, previous=first, now=soon)
    assert not plan.needs_write(first, same, now=soon)
    changed = plan.placement_status(
        p, plan.observe_workload(deployment(2, 1)), previous=first, now=soon
    )
    assert plan.needs_write(first, changed, now=soon)
    late = NOW + plan.STATUS_REFRESH
    assert plan.needs_write(
        first, plan.placement_status(p, workload, previous=first, now=late), now=late
    )
    newer_spec = plan.placement_status(placement(generation=4), workload, previous=first, now=soon)
    assert plan.needs_write(first, newer_spec, now=soon)


# --- property ------------------------------------------------------------------------------

POD_SITUATIONS = [
    pod(phase="Running", ready="True"),
    unschedulable("workload-6b7c9d5f4-zzzzz"),
    pod(waiting=("ImagePullBackOff", "Back-off pulling image")),
    pod(waiting=("CrashLoopBackOff", "back-off 10s pod=workload-6b7c9d5f4-zzzzz_ns(uid)")),
    pod(phase="Running", ready="False", ready_message="probe failed"),
    pod(phase="Failed", message="Evicted"),
    pod(deleting=True),
]


@settings(max_examples=200, deadline=None)
@given(
    wanted=st.integers(0, 6),
    suspend=st.booleans(),
    situations=st.lists(st.sampled_from(range(len(POD_SITUATIONS))), max_size=8),
    failure=st.booleans(),
)
def test_status_is_always_explained_and_never_names_a_pod(
    wanted: int, suspend: bool, situations: list[int], failure: bool
) -> None:
    pods = []
    for n, i in enumerate(situations):
        the_pod = copy.deepcopy(POD_SITUATIONS[i])
        the_pod["metadata"]["name"] = f"workload-6b7c9d5f4-p{n:04d}"
        pods.append(the_pod)
    workload = plan.observe_workload(
        deployment(len(pods), 0, replica_failure="exceeded quota" if failure else None), pods
    )
    status = status_of(placement(replicas=wanted, suspend=suspend), workload)
    condition_status, reason, message = ready_of(status)
    assert reason in {ALL_READY, SUSPENDED, *plan.REASON_ORDER}
    assert (condition_status == "True") == (suspend or workload.ready_replicas >= wanted)
    assert "p0" not in message
    assert "zzzzz" not in message
    assert message.count(";") < plan.MAX_CAUSES + 1
    assert status.ready_replicas <= status.replicas
    if condition_status == "False":
        assert status.phase == ("Degraded" if status.ready_replicas else "Pending")
