"""What the agent does on its provider cluster: materialise, observe and remove placements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kommons.agent.inventory import Amount, Inventory, compute_inventory
from kommons.agent.workload import (
    GPU_RESOURCE,
    WORKLOAD_NAME,
    PlacementWork,
    manifests,
    target_namespace,
)
from kommons.api_names import LABEL_MANAGED_BY, MANAGER, PREFIX
from kommons.kube import Kube, NotFound
from kommons.kube import resources as r
from kommons.quantity import to_bytes as memory_bytes
from kommons.quantity import to_millicores as cpu_milli

JSON = dict[str, Any]
ANNOTATION_LEASE = f"{PREFIX}/lease"
ANNOTATION_GPU_MODEL = f"{PREFIX}/gpu-model"
_BY_KIND = {
    "Namespace": r.NAMESPACES,
    "ResourceQuota": r.RESOURCE_QUOTAS,
    "LimitRange": r.LIMIT_RANGES,
    "NetworkPolicy": r.NETWORK_POLICIES,
    "Deployment": r.DEPLOYMENTS,
}


@dataclass(frozen=True)
class WorkloadState:
    """What the provider cluster shows of one placement's workload."""

    exists: bool
    replicas: int
    ready_replicas: int
    message: str


class ProviderCluster:
    """The agent's view of, and hands on, its own cluster."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def materialise(self, work: PlacementWork) -> str:
        """Apply every object of a placement (idempotent); return the namespace used."""
        for manifest in manifests(work):
            if manifest["kind"] == "ResourceQuota":
                manifest["metadata"]["annotations"] = {
                    ANNOTATION_LEASE: f"{work.lease_namespace}/{work.lease_name}",
                    ANNOTATION_GPU_MODEL: work.gpu_model or "",
                }
            self.kube.apply(_BY_KIND[manifest["kind"]], manifest)
        return target_namespace(work.name)

    def workload_state(self, placement_name: str) -> WorkloadState:
        """Replicas and ready replicas of a placement's Deployment."""
        deployment = self.kube.get_or_none(
            r.DEPLOYMENTS, WORKLOAD_NAME, target_namespace(placement_name)
        )
        if deployment is None:
            return WorkloadState(False, 0, 0, "workload not found")
        status = deployment.get("status") or {}
        message = ""
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("message"):
                message = str(condition["message"])
        return WorkloadState(
            True, int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0), message
        )

    def remove(self, placement_name: str) -> bool:
        """Delete a placement's namespace; ``True`` once it is completely gone."""
        name = target_namespace(placement_name)
        self.kube.delete(r.NAMESPACES, name)
        try:
            self.kube.get(r.NAMESPACES, name)
        except NotFound:
            return True
        return False

    def reserved(self) -> tuple[Amount, list[str]]:
        """What materialised placements hold, read from their quotas, and their lease keys."""
        total = Amount()
        leases: list[str] = []
        for quota in self.kube.list(
            r.RESOURCE_QUOTAS, label_selector=f"{LABEL_MANAGED_BY}={MANAGER}"
        ):
            meta = quota.get("metadata") or {}
            hard = (quota.get("spec") or {}).get("hard") or {}
            annotations = meta.get("annotations") or {}
            gpus = int(hard.get(f"requests.{GPU_RESOURCE}", "0"))
            model = annotations.get(ANNOTATION_GPU_MODEL) or "unknown"
            total = total.plus(
                Amount(
                    cpu_milli(hard.get("requests.cpu", "0")),
                    memory_bytes(hard.get("requests.memory", "0")),
                    {model: gpus} if gpus else {},
                )
            )
            if ANNOTATION_LEASE in annotations:
                leases.append(str(annotations[ANNOTATION_LEASE]))
        return total, sorted(leases)

    def inventory(self, offer: Amount | None) -> tuple[Inventory, list[str]]:
        """Inventory of the cluster and the leases it accounts for."""
        nodes = self.kube.list(r.NODES)
        pods = self.kube.list(r.PODS)
        reserved, leases = self.reserved()
        return compute_inventory(nodes, pods, reserved=reserved, offer=offer), leases

    def version(self) -> str:
        """The cluster's Kubernetes version (``v1.36.3``)."""
        return str(self.kube.request("GET", "/version").get("gitVersion", "unknown"))
