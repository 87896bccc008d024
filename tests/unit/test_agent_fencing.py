"""Unit tests of the agent's fencing: the orphan sweep and the heartbeat gate.

Behaviour matrix:

- namespace whose placement the hub still has -> kept; whose placement is gone -> removed;
  already terminating or unlabelled -> ignored.
- ``Agent.sweep_once`` removes exactly the orphans, through the cluster executor.
- the workload namespace carries the placement's fencing token as a label.
- heartbeat: renewed while the provider cluster answers; withheld while it does not.
"""

from __future__ import annotations

from typing import Any, cast

from kommons.agent.fencing import LABEL_FENCING_TOKEN, orphaned
from kommons.agent.hub_link import HubLink
from kommons.agent.plan import desired_manifests, parse_placement
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.runner import Agent, AgentOptions
from kommons.api_names import LABEL_PLACEMENT
from tests.unit.test_agent_plan import body
from tests.unit.test_agent_runner import CONFIG


def ns(name: str, placement: str | None, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {}}
    if placement:
        meta["labels"][LABEL_PLACEMENT] = placement
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    return {"metadata": meta}


def test_orphans_are_namespaces_whose_placement_is_gone() -> None:
    namespaces = [
        ns("kommons-a", "a"),
        ns("kommons-b", "b"),
        ns("kommons-c", "c", deleting=True),
        ns("other", None),
    ]
    assert orphaned(namespaces, {"a": 3}) == ["kommons-b"]
    assert orphaned(namespaces, {"a": 3, "b": None}) == []


class SweepCluster:
    def __init__(self, namespaces: list[dict[str, Any]], *, up: bool = True) -> None:
        self.namespaces = namespaces
        self.removed: list[str] = []
        self.up = up

    def workload_namespaces(self) -> list[dict[str, Any]]:
        return self.namespaces

    def remove_namespace(self, name: str) -> None:
        self.removed.append(name)

    def version(self) -> str:
        if not self.up:
            raise ConnectionError("connection refused")
        return "v1.36.0"


class Hub:
    def __init__(self, placements: dict[str, int | None]) -> None:
        self.known = placements
        self.beats = 0

    def placements(self) -> dict[str, int | None]:
        return self.known

    def heartbeat(self, duration_seconds: int) -> None:
        self.beats += 1


def agent(cluster: SweepCluster, hub: Hub) -> Agent:
    options = AgentOptions(provider="prov-a", hub_kubeconfig=None, kubeconfig=None, config=CONFIG)
    return Agent(options, hub=cast(HubLink, hub), cluster=cast(ProviderCluster, cluster))


def test_sweep_removes_workloads_of_placements_gone_from_the_hub() -> None:
    cluster = SweepCluster([ns("kommons-a", "a"), ns("kommons-b", "b")])
    removed = agent(cluster, Hub({"a": 1})).sweep_once()
    assert removed == ["kommons-b"]
    assert cluster.removed == ["kommons-b"]


def test_workload_namespace_is_labelled_with_the_fencing_token() -> None:
    raw = body()
    raw["spec"]["fencingToken"] = 7
    manifests = desired_manifests(parse_placement(raw), runtime_class=None)
    namespace = next(m for m in manifests if m["kind"] == "Namespace")
    assert namespace["metadata"]["labels"][LABEL_FENCING_TOKEN] == "7"


def test_heartbeat_is_withheld_while_the_provider_cluster_is_down() -> None:
    hub = Hub({})
    cluster = SweepCluster([])
    the_agent = agent(cluster, hub)
    the_agent.heartbeat_once()
    assert hub.beats == 1
    cluster.up = False
    the_agent.heartbeat_once()
    assert hub.beats == 1
