"""Unit tests of the agent's kopf handler bodies (``kommons.agent.runner.Agent``), no cluster.

Behaviour matrix:

- a valid placement -> its manifests applied once, a status written through kopf's patch
  (phase, readyReplicas, Ready condition, lastReportTime);
- the same placement reported again with that status and nothing changed -> nothing written;
- a change on the provider (a replica stops being ready) -> written, with the new reason;
- a missing workload -> applied again, then reported;
- a missing workload of a placement gone (or deleting) on the hub, seen through a stale body
  (a kopf timer's copy) -> not applied again, nothing written (it would be an orphan);
- a malformed placement -> nothing applied, phase Failed, Ready=False/InvalidPlacement naming
  the field; reported again unchanged -> nothing written (no write loop);
- deletion reads only the name (a malformed placement is still removed);
- a placement being deleted whose workload is gone -> not applied again, nothing written
  (the removal waits for that namespace to go);
- a placement with storage -> a StatefulSet whose claims use the classes the agent config
  maps the tiers to, observed as a StatefulSet; the claims of replicas beyond its count are
  deleted, none while it is suspended; one asking for a tier the config does not
  map -> nothing applied, Ready=False/InvalidPlacement naming the tier;
- endpoints: applying a placement deletes the endpoint objects it no longer needs (all of them
  without ``expose``); an exposing placement's status carries the endpoints read back from
  the provider and its ``Endpoints`` condition; a Service refused by a quota not counted yet
  is retried in seconds (kopf TemporaryError), any other refusal is raised as it is;
- a placement whose config copy is not on the hub yet -> nothing applied, kopf retries
  (TemporaryError naming the copy); once it is -> the Secret is applied before the workload;
  dropped from the placement -> applied without it and pruned; a placement that never took
  config along -> no prune request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest

from kommons.agent.config import AgentConfig
from kommons.agent.hub_link import HubLink
from kommons.agent.plan import WorkloadView
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.runner import Agent, AgentOptions
from kommons.kube import Forbidden
from tests.unit.test_agent_plan import body

CONFIG = AgentConfig.model_validate(
    {
        "payoutAddress": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "pricing": {"cpuCoreHour": "0.02", "memoryGiBHour": "0.003"},
    }
)


class FakeCluster:
    """Records applies; shows a configurable workload."""

    def __init__(self, workload: WorkloadView) -> None:
        self.workload = workload
        self.applied: list[list[str]] = []
        self.removed: list[str] = []
        self.pod_list: list[dict[str, Any]] = []
        self.manifests: list[dict[str, Any]] = []
        self.observed: list[tuple[bool, bool]] = []
        self.claim_names: list[str] = []
        self.deleted_claims: list[str] = []
        self.pruned: list[list[tuple[str, str]]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.kept: list[list[str]] = []

    def apply(self, manifests: list[dict[str, Any]]) -> None:
        self.applied.append([m["kind"] for m in manifests])
        self.manifests = list(manifests)
        if not self.workload.exists:
            self.workload = WorkloadView(exists=True, replicas=0, ready_replicas=0)

    def observe(
        self, placement_name: str, *, wanted: int, job: bool = False, stateful: bool = False
    ) -> WorkloadView:
        self.observed.append((job, stateful))
        return self.workload

    def remove_endpoint_objects(self, placement_name: str, keys: list[tuple[str, str]]) -> None:
        self.pruned.append(list(keys))

    def endpoint_objects(self, placement_name: str) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects

    def pods(self, placement_name: str) -> list[dict[str, Any]]:
        return self.pod_list

    def claims(self, placement_name: str) -> list[str]:
        return list(self.claim_names)

    def delete_claims(self, placement_name: str, names: list[str]) -> None:
        self.deleted_claims.extend(names)

    def remove(self, placement_name: str) -> bool:
        self.removed.append(placement_name)
        return True

    def prune_config(self, placement_name: str, keep: list[dict[str, Any]]) -> list[str]:
        self.kept.append([f"{m['kind']}/{m['metadata']['name']}" for m in keep])
        return []


class FakeHub:
    """Answers whether a placement is live on the hub."""

    def __init__(self, live: bool = True, copies: dict[str, Any] | None = None) -> None:
        self.live = live
        self.asked: list[str] = []
        self.copies = copies or {}

    def config_copies(self, placement: str, keys: list[str]) -> dict[str, Any]:
        return {key: self.copies.get(key) for key in keys}

    def placement_live(self, name: str, uid: str | None) -> bool:
        self.asked.append(name)
        return self.live


def agent(cluster: FakeCluster, hub: FakeHub | None = None, config: AgentConfig = CONFIG) -> Agent:
    options = AgentOptions(provider="prov-a", hub_kubeconfig=None, kubeconfig=None, config=config)
    link = cast(HubLink, hub or FakeHub())
    return Agent(options, hub=link, cluster=cast(ProviderCluster, cluster))


def run(handler: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """Call a handler with a kopf body and patch; return what it put in ``status``."""
    patch = kopf.Patch()
    handler(kopf.Body(raw), patch)
    return dict(patch.get("status") or {})


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_valid_placement_applied_and_reported_once() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    the_agent = agent(cluster)
    raw = body()
    status = run(the_agent.apply_placement, raw)
    assert cluster.applied == [
        ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Deployment"]
    ]
    assert status["phase"] == "Running"
    assert status["readyReplicas"] == 2
    assert ready(status)["reason"] == "AllReplicasReady"
    assert status["lastReportTime"]

    raw["status"] = status
    assert run(the_agent.report_placement, raw) == {}  # unchanged: no write
    assert len(cluster.applied) == 1

    cluster.workload = WorkloadView(exists=True, replicas=2, ready_replicas=1)
    changed = run(the_agent.report_placement, raw)
    assert changed["phase"] == "Degraded"
    assert ready(changed)["reason"] == "ContainersNotReady"


def test_missing_workload_is_applied_again() -> None:
    cluster = FakeCluster(WorkloadView(exists=False))
    status = run(agent(cluster).report_placement, body())
    assert len(cluster.applied) == 1
    assert status["phase"] == "Pending"


def test_missing_workload_of_a_placement_gone_on_the_hub_is_not_applied_again() -> None:
    cluster = FakeCluster(WorkloadView(exists=False))
    hub = FakeHub(live=False)
    status = run(agent(cluster, hub).report_placement, body())
    assert hub.asked == ["web-abc12-prov-a"]
    assert cluster.applied == []
    assert status == {}


def test_malformed_placement_fails_at_the_edge_without_a_write_loop() -> None:
    cluster = FakeCluster(WorkloadView(exists=True))
    the_agent = agent(cluster)
    raw = body()
    raw["spec"]["resources"]["cpu"] = "a lot"
    status = run(the_agent.apply_placement, raw)
    assert cluster.applied == []
    assert status["phase"] == "Failed"
    assert ready(status)["reason"] == "InvalidPlacement"
    assert "spec.resources.cpu" in ready(status)["message"]
    raw["status"] = status
    assert run(the_agent.report_placement, raw) == {}
    assert cluster.applied == []


def test_a_malformed_placement_is_still_removed() -> None:
    cluster = FakeCluster(WorkloadView(exists=True))
    raw = body()
    del raw["spec"]
    agent(cluster).remove_placement(kopf.Body(raw))
    assert cluster.removed == ["web-abc12-prov-a"]


def test_a_placement_being_deleted_is_not_applied_again() -> None:
    cluster = FakeCluster(WorkloadView(exists=False))
    the_agent = agent(cluster)
    raw = body()
    raw["metadata"]["deletionTimestamp"] = "2026-12-01T05:00:00Z"
    assert run(the_agent.report_placement, raw) == {}
    assert run(the_agent.apply_placement, raw) == {}
    assert cluster.applied == []


# --- endpoints (kommons.agent.endpoints through the agent) --------------------------------


def test_apply_removes_endpoint_objects_no_longer_needed() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    status = run(agent(cluster).apply_placement, body())
    assert cluster.pruned == [
        [("Service", "workload"), ("Service", "workload-public"), ("Ingress", "workload")]
    ]
    assert "endpoints" not in status
    assert all(c["type"] != "Endpoints" for c in status["conditions"])


def test_an_exposing_placement_reports_its_endpoints() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    cluster.objects = {("Service", "workload"): {}}
    raw = body()
    raw["spec"]["expose"] = [{"name": "metrics", "port": 9090}]
    status = run(agent(cluster).apply_placement, raw)
    assert cluster.applied[0][-3:] == ["NetworkPolicy", "Service", "Deployment"]
    assert cluster.pruned == [[("Service", "workload-public"), ("Ingress", "workload")]]
    assert status["endpoints"] == [
        {"name": "metrics", "url": "tcp://workload.kommons-web-abc12-prov-a.svc:9090"}
    ]
    condition = next(c for c in status["conditions"] if c["type"] == "Endpoints")
    assert (condition["status"], condition["reason"]) == ("True", "Published")


class RefusingCluster(FakeCluster):
    """Refuses every apply with a 403 of the given message."""

    def __init__(self, message: str) -> None:
        super().__init__(WorkloadView(exists=True))
        self.message = message

    def apply(self, manifests: list[dict[str, Any]]) -> None:
        raise Forbidden(403, "Forbidden", self.message, "PATCH", "/api/v1/services/workload")


def test_a_service_over_a_quota_not_counted_yet_is_retried_soon() -> None:
    quota = RefusingCluster("exceeded quota: kommons-lease, requested: services.nodeports=1")
    with pytest.raises(kopf.TemporaryError) as caught:
        run(agent(quota).apply_placement, body())
    assert caught.value.delay == 3
    other = RefusingCluster('namespaces "kommons-web" is forbidden: being terminated')
    with pytest.raises(Forbidden):
        run(agent(other).apply_placement, body())


# --- metering (kommons.metering.accounting through the agent) -------------------------------


def _pod(uid: str, ready: bool, since: str) -> dict[str, Any]:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    condition["lastTransitionTime"] = since
    return {"metadata": {"uid": uid}, "status": {"conditions": [condition]}}


class MeteringHub(FakeHub):
    """Also records final metering checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.metering: list[dict[str, Any]] = []

    def write_metering(self, name: str, metering: Any) -> None:
        self.metering.append(metering.to_api())


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_report_writes_the_checkpoint_on_transitions_only() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=1, ready_replicas=1))
    start, stop = _ago(60), _ago(18)
    cluster.pod_list = [_pod("p1", True, start)]
    the_agent = agent(cluster)
    raw = body()
    status = run(the_agent.apply_placement, raw)
    assert status["metering"]["pods"] == [{"uid": "p1", "readySince": start, "readySeconds": 0}]
    raw["status"] = status
    assert run(the_agent.report_placement, raw) == {}  # no transition, not due yet
    cluster.pod_list = [_pod("p1", False, stop)]
    changed = run(the_agent.report_placement, raw)
    assert changed["metering"]["readySeconds"] == 42
    assert changed["metering"]["pods"][0]["intervals"] == [{"start": start, "end": stop}]


def test_removal_writes_a_final_checkpoint_first() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=1, ready_replicas=1))
    cluster.pod_list = [_pod("p1", True, "2026-01-01T00:00:00Z")]
    hub = MeteringHub()
    the_agent = agent(cluster, hub)
    raw = body()
    raw["status"] = run(the_agent.apply_placement, raw)
    the_agent.remove_placement(kopf.Body(raw))
    (final,) = hub.metering
    assert not any(p.get("readySince") for p in final["pods"])
    assert final["readySeconds"] > 0
    assert cluster.removed


STORAGE_CONFIG = AgentConfig.model_validate(
    {
        **CONFIG.to_api(),
        "storage": {"fast": {"storageClassName": "local-nvme", "capacity": "100Gi"}},
    }
)


def storage_body(tier: str) -> dict[str, Any]:
    raw = body()
    raw["spec"]["storage"] = [{"name": "data", "size": "5Gi", "tier": tier, "mountPath": "/data"}]
    return raw


def test_a_placement_with_storage_runs_as_a_stateful_set_on_the_tier_class() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    status = run(agent(cluster, config=STORAGE_CONFIG).apply_placement, storage_body("fast"))
    assert cluster.applied == [
        ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "StatefulSet"]
    ]
    claims = cluster.manifests[-1]["spec"]["volumeClaimTemplates"]
    assert [c["spec"]["storageClassName"] for c in claims] == ["local-nvme"]
    assert cluster.observed == [(False, True)]
    assert status["phase"] == "Running"
    assert cluster.deleted_claims == []


def test_claims_of_replicas_scaled_away_are_deleted_unless_suspended() -> None:
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    cluster.claim_names = ["data-workload-0", "data-workload-1", "data-workload-2", "other"]
    suspended = storage_body("fast")
    suspended["spec"]["suspend"] = True
    run(agent(cluster, config=STORAGE_CONFIG).apply_placement, suspended)
    assert cluster.deleted_claims == []  # suspend keeps every claim (the data)
    run(agent(cluster, config=STORAGE_CONFIG).apply_placement, storage_body("fast"))
    assert cluster.deleted_claims == ["data-workload-2"]  # 2 replicas: 0 and 1 stay


def test_a_placement_asking_an_unmapped_tier_is_refused_naming_it() -> None:
    cluster = FakeCluster(WorkloadView(exists=True))
    status = run(agent(cluster, config=STORAGE_CONFIG).apply_placement, storage_body("slow"))
    assert cluster.applied == []
    assert ready(status)["reason"] == "InvalidPlacement"
    assert "tier slow is not offered" in ready(status)["message"]
    assert "has: fast" in ready(status)["message"]


def test_config_copies_are_waited_for_then_applied_before_the_workload() -> None:
    from kommons.config_copies import hub_copy

    raw = body()
    raw["spec"]["configRevisions"] = {"Secret/app-env": "7"}
    source = {
        "kind": "Secret",
        "metadata": {"name": "app-env", "namespace": "team-a", "resourceVersion": "7"},
        "data": {"K": "dg=="},
    }
    cluster = FakeCluster(WorkloadView(exists=True, replicas=2, ready_replicas=2))
    hub = FakeHub()
    with pytest.raises(kopf.TemporaryError, match="Secret/app-env: the hub's copy is not there"):
        run(agent(cluster, hub).apply_placement, raw)
    assert cluster.applied == []
    name = raw["metadata"]["name"]
    hub.copies["Secret/app-env"] = hub_copy(
        source, kind="Secret", placement=name, namespace="n", owner_uid="u"
    )
    the_agent = agent(cluster, hub)
    run(the_agent.apply_placement, raw)
    assert cluster.applied == [
        ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Secret", "Deployment"]
    ]
    assert cluster.kept == [["Secret/app-env"]]
    # the lease no longer takes it along: applied without it, and pruned
    del raw["spec"]["configRevisions"]
    run(the_agent.apply_placement, raw)
    assert cluster.applied[-1] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Deployment",
    ]
    assert cluster.kept[-1] == []
    # a placement that never took config along costs no prune request
    run(agent(cluster, hub).apply_placement, raw)
    assert len(cluster.kept) == 2
