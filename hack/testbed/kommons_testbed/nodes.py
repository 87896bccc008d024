"""Create a provider's kwok nodes through the API and wait until they can take pods."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kommons_testbed.handles import NodeSpec, ProviderSpec
from kommons_testbed.kwok import MANAGED_ANNOTATION
from kommons_testbed.processes import wait_for

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
PROVIDER_LABEL = "testbed.kommons.io/provider"


def node_manifest(node: NodeSpec, *, provider: str, region: str) -> dict[str, object]:
    """Return the Node object of ``node`` (a plain dict, as the API takes it).

    Labels: ``type=kwok``, region/zone, ``nvidia.com/gpu.product`` for GPU nodes, the usual
    ``kubernetes.io/*`` ones, plus ``node.labels``. No taints, so pods need no tolerations.
    """
    resources: dict[str, str] = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/agent": "",
        REGION_LABEL: region,
        ZONE_LABEL: f"{region}-a",
        PROVIDER_LABEL: provider,
    }
    if node.gpus:
        resources[GPU_RESOURCE] = str(node.gpus)
        if node.gpu_product:
            labels[GPU_PRODUCT_LABEL] = node.gpu_product
            labels["nvidia.com/gpu.count"] = str(node.gpus)
    labels.update(node.labels)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {
                MANAGED_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "phase": "Pending",
        },
    }


def create_nodes(api: client.ApiClient, provider: ProviderSpec) -> None:
    """Create every node of ``provider`` (an existing node is left alone)."""
    core = client.CoreV1Api(api)
    for node in provider.nodes:
        manifest: Any = node_manifest(node, provider=provider.name, region=provider.region)
        try:
            core.create_node(manifest)
        except client.ApiException as exc:
            if exc.status != 409:
                raise


def schedulable(node: client.V1Node) -> bool:
    """Whether ``node`` is Ready, untainted and has its allocatable resources."""
    status, spec = node.status, node.spec
    if status is None or spec is None:
        return False
    conditions = {c.type: c.status for c in (status.conditions or [])}
    return (
        conditions.get("Ready") == "True"
        and not spec.taints
        and not spec.unschedulable
        and bool(status.allocatable)
    )


def wait_nodes_ready(api: client.ApiClient, provider: ProviderSpec, *, timeout: float) -> None:
    """Wait until every node of ``provider`` is :func:`schedulable`.

    kwok marks nodes Ready; the controller-manager then lifts the ``not-ready`` taint that
    admission put on the new nodes.
    """
    core = client.CoreV1Api(api)
    wanted = {n.name for n in provider.nodes}

    def all_ready() -> bool:
        nodes = core.list_node(label_selector=f"{PROVIDER_LABEL}={provider.name}")
        ok = {n.metadata.name for n in nodes.items if n.metadata and schedulable(n)}
        return wanted <= ok

    wait_for(all_ready, timeout=timeout, what=f"{provider.name}'s kwok nodes to be Ready")
