"""The hub's executor writes a plan in a safe order (a recording fake client, no cluster).

Behaviour matrix (case -> expected):

- a new lease (finalizer missing, placements to create, a status) -> the finalizer is added
  first, then the placements are created, then the status is written with the
  resourceVersion the finalizer patch returned;
- the lease is gone when the finalizer is added -> nothing else is written (no placement of a
  lease that no longer exists);
- a lease being deleted with nothing left -> the finalizer is removed, no status written;
- a scale-down that deletes a placement -> the Normal Event ScaledDown is posted first
  (naming the provider and the replicas removed), then the placement is deleted, then the
  status carrying the ScaledDown history entry is written;
- a placement update conflicting because the agent reported status meanwhile (same uid,
  same generation) -> read again and PUT on the fresh resourceVersion, keeping the fresh
  metadata; conflicting because the spec changed, the object was replaced or is deleting ->
  stays a conflict (plan again).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from kommons.api import ComputeLease, LeasePlacement
from kommons.api_names import FINALIZER_HUB
from kommons.hub.executor import Executor
from kommons.hub.plan import LeasePlan
from kommons.kube import Conflict, Kube, NotFound
from kommons.kube import resources as r
from tests.unit.test_hub_plan import (
    lease_body,
    lease_of,
    market,
    placed,
    provider_body,
    step,
)


class RecordingKube:
    """Records writes in order; ``gone`` makes the lease's patch answer 404."""

    def __init__(self, *, gone: bool = False, left: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[str] = []
        self.gone = gone
        self.status_version: str | None = None
        self.left = left or []
        """Placements the API server still has for the lease (the view may not)."""

    def list(self, resource: Any, *_: Any, label_selector: str = "", **__: Any) -> Any:
        self.calls.append(f"list {resource.plural} {label_selector}")
        return self.left

    def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> Any:
        self.calls.append(f"create {resource.plural}")
        return {**body, "metadata": {**body["metadata"], "uid": "u", "resourceVersion": "1"}}

    def patch(self, resource: Any, name: str, patch: dict[str, Any], *_: Any, **__: Any) -> Any:
        self.calls.append(f"patch {resource.plural} finalizers={patch['metadata']['finalizers']}")
        if self.gone:
            raise NotFound(404, "NotFound", "gone", "PATCH", name)
        return {"metadata": {"name": name, "resourceVersion": "42"}}

    def request(self, method: str, path: str, body: dict[str, Any]) -> Any:
        self.calls.append(f"{method} status")
        self.status_version = body["metadata"]["resourceVersion"]
        return body

    def delete(self, *_: Any, **__: Any) -> bool:
        self.calls.append("delete")
        return True


def new_lease_plan() -> tuple[ComputeLease, LeasePlan]:
    raw = lease_body()
    raw["metadata"]["finalizers"] = []
    lease = ComputeLease.model_validate(raw)
    plan = step(lease, market(provider_body("cheap")))
    plan.events = []
    assert plan.add_finalizer
    assert plan.create
    assert plan.status is not None
    return lease, plan


def test_finalizer_first_then_placements_then_status() -> None:
    lease, plan = new_lease_plan()
    kube = RecordingKube()
    outcome = Executor(cast(Kube, kube)).execute(lease, plan)
    assert kube.calls == [
        f"patch computeleases finalizers=['{FINALIZER_HUB}']",
        f"create {r.LEASE_PLACEMENTS.plural}",
        "PUT status",
    ]
    assert kube.status_version == "42"
    assert len(outcome.written) == 1
    assert not outcome.conflict


def test_no_placement_for_a_lease_gone_before_its_finalizer() -> None:
    lease, plan = new_lease_plan()
    kube = RecordingKube(gone=True)
    outcome = Executor(cast(Kube, kube)).execute(lease, plan)
    assert kube.calls == [f"patch computeleases finalizers=['{FINALIZER_HUB}']"]
    assert outcome.written == []


def test_deleted_lease_with_nothing_left_drops_the_finalizer_only() -> None:
    raw = lease_body()
    raw["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    lease = ComputeLease.model_validate(raw)
    plan = step(lease, market(provider_body("cheap")))
    assert plan.remove_finalizer
    kube = RecordingKube()
    Executor(cast(Kube, kube)).execute(lease, plan)
    uid = lease.metadata.uid
    assert kube.calls == [
        f"list leaseplacements kommons.io/lease-uid={uid}",
        "patch computeleases finalizers=[]",
    ]


def test_deleted_lease_keeps_its_finalizer_while_the_api_server_still_has_a_placement() -> None:
    """The view lags behind the hub's own create: the placement is deleted, the lease kept."""
    raw = lease_body()
    raw["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    lease = ComputeLease.model_validate(raw)
    plan = step(lease, market(provider_body("cheap")))
    assert plan.remove_finalizer  # the view shows no placement
    left = {"metadata": {"name": "p1", "namespace": "kommons-provider-cheap", "uid": "u1"}}
    gone = {**left, "metadata": {**left["metadata"], "deletionTimestamp": "2026-12-01T12:00:01Z"}}
    kube = RecordingKube(left=[left, gone])
    outcome = Executor(cast(Kube, kube)).execute(lease, plan)
    assert kube.calls[1:] == ["delete"]  # the live one only; the finalizer stays
    assert outcome.conflict


class BodyKube(RecordingKube):
    """Also keeps the Events created and the status written."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {}

    def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> Any:
        if resource is r.EVENTS:
            self.events.append(body)
        return super().create(resource, body, namespace)

    def request(self, method: str, path: str, body: dict[str, Any]) -> Any:
        self.status = body["status"]
        return super().request(method, path, body)


def test_scale_down_event_placement_delete_then_status_with_history() -> None:
    view = market(provider_body("a", cpu_price="0.01", cpu="1"), provider_body("b"))
    existing = placed(step(lease_of(), view), ready=1)
    lease = lease_of(replicas=1)
    plan = step(lease, view, placements=existing)
    kube = BodyKube()

    outcome = Executor(cast(Kube, kube)).execute(lease, plan)

    assert not outcome.conflict
    assert kube.calls == ["create events", "delete", "PUT status"]
    assert [p.spec.provider for p in outcome.deleted] == ["b"]
    [event] = kube.events
    assert (event["type"], event["reason"]) == ("Normal", "ScaledDown")
    assert event["message"].startswith("1 replica(s) removed from b (its placement deleted)")
    [entry] = kube.status["history"]
    assert (entry["type"], entry["provider"], entry["replicas"]) == ("ScaledDown", "b", 1)
    assert entry["message"] == event["message"]


class ConflictingKube(RecordingKube):
    """The first PUT of a placement conflicts; GET serves ``fresh``."""

    def __init__(self, fresh: dict[str, Any] | None) -> None:
        super().__init__()
        self.fresh = fresh
        self.put_versions: list[str] = []

    def replace(self, resource: Any, body: dict[str, Any]) -> Any:
        self.put_versions.append(str(body["metadata"].get("resourceVersion")))
        if len(self.put_versions) == 1:
            raise Conflict(409, "Conflict", "the object has been modified", "PUT", "p")
        return body

    def get_or_none(self, resource: Any, name: str, namespace: str | None = None) -> Any:
        self.calls.append("get")
        return self.fresh


def scale_plan() -> tuple[ComputeLease, LeasePlan, dict[str, Any]]:
    """A lease scaled from 2 to 3 on its one provider: the plan updates that placement."""
    view = market(provider_body("cheap"))
    lease = ComputeLease.model_validate(lease_body())
    first = step(lease, view)
    placement = first.create[0].to_api()
    placement["metadata"].update(uid="p-0", resourceVersion="7", generation=1)
    observed = LeasePlacement.model_validate(placement)
    raw = lease_body()
    raw["spec"]["replicas"] = 3
    raw["metadata"]["generation"] = 2
    plan = step(ComputeLease.model_validate(raw), view, placements=[observed])
    plan.events = []
    assert [p.spec.replicas for p in plan.update] == [3]
    return ComputeLease.model_validate(raw), plan, placement


def test_update_conflicting_with_a_status_report_is_put_again_on_the_fresh_version() -> None:
    lease, plan, placement = scale_plan()
    fresh = {**placement, "metadata": {**placement["metadata"], "resourceVersion": "9"}}
    fresh["metadata"]["annotations"] = {"agent.kommons.io/kopf-managed": "yes"}
    kube = ConflictingKube(fresh)
    outcome = Executor(cast(Kube, kube)).execute(lease, plan)
    assert kube.put_versions == ["7", "9"]
    assert not outcome.conflict
    assert outcome.written[0]["spec"]["replicas"] == 3
    assert outcome.written[0]["metadata"]["annotations"] == {"agent.kommons.io/kopf-managed": "yes"}


@pytest.mark.parametrize(
    "change",
    [{"generation": 2}, {"uid": "another"}, {"deletionTimestamp": "2026-12-01T12:00:00Z"}],
)
def test_update_conflicting_with_a_spec_change_stays_a_conflict(change: dict[str, Any]) -> None:
    lease, plan, placement = scale_plan()
    fresh = {**placement, "metadata": {**placement["metadata"], "resourceVersion": "9", **change}}
    kube = ConflictingKube(fresh)
    outcome = Executor(cast(Kube, kube)).execute(lease, plan)
    assert kube.put_versions == ["7"]
    assert outcome.conflict
