"""The agent's executor on its provider cluster: apply, observe and remove placements.

It knows nothing of the market: :mod:`kommons.agent.plan` decides what to apply and what the
status says; this module turns that into API calls (server-side apply as the field manager
``kommons-agent``, so re-applying after a restart is harmless) and reads back what the plan
needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kommons.agent.endpoints import OBJECTS
from kommons.agent.inventory import Amount, Inventory, StorageOffer, compute_inventory
from kommons.agent.plan import (
    ANNOTATION_GPU_MODEL,
    ANNOTATION_LEASE,
    WorkloadView,
    observe_job,
    observe_workload,
)
from kommons.agent.workload import (
    GPU_RESOURCE,
    WORKLOAD_NAME,
    storage_class_key,
    target_namespace,
)
from kommons.api_names import LABEL_MANAGED_BY, LABEL_PLACEMENT, MANAGER
from kommons.config_copies import LABEL_COPY
from kommons.kube import Kube, KubeError, NotFound
from kommons.kube import resources as r
from kommons.lease_logs import MAX_BYTES_PER_CONTAINER, MAX_PODS
from kommons.quantity import to_bytes as memory_bytes
from kommons.quantity import to_count as count
from kommons.quantity import to_millicores as cpu_milli

JSON = dict[str, Any]
_BY_KIND = {
    "Namespace": r.NAMESPACES,
    "ResourceQuota": r.RESOURCE_QUOTAS,
    "LimitRange": r.LIMIT_RANGES,
    "NetworkPolicy": r.NETWORK_POLICIES,
    "Deployment": r.DEPLOYMENTS,
    "Job": r.JOBS,
    "StatefulSet": r.STATEFUL_SETS,
    "Service": r.SERVICES,
    "Ingress": r.INGRESSES,
    "Secret": r.SECRETS,
    "ConfigMap": r.CONFIGMAPS,
}


class ProviderCluster:
    """The agent's view of, and hands on, its own cluster."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def apply(self, manifests: Sequence[JSON]) -> None:
        """Server-side apply every object, in order (idempotent)."""
        for manifest in manifests:
            self.kube.apply(_BY_KIND[manifest["kind"]], manifest)

    def remove_endpoint_objects(self, placement_name: str, keys: Sequence[tuple[str, str]]) -> None:
        """Delete a placement's endpoint objects by (kind, name); gone already is fine."""
        namespace = target_namespace(placement_name)
        for kind, name in keys:
            self.kube.delete(_BY_KIND[kind], name, namespace)

    def prune_config(self, placement_name: str, keep: Sequence[JSON]) -> list[str]:
        """Delete the lease's ConfigMaps and Secrets the placement no longer takes along.

        One delete-collection per kind in the placement's namespace, selecting the objects the
        agent made from hub copies (label ``kommons.io/config-copy``) except those in ``keep``:
        the agent never needs to read or list Secrets on its cluster. Returns ``Kind/name`` of
        those deleted.
        """
        namespace = target_namespace(placement_name)
        gone: list[str] = []
        for kind, resource in (("Secret", r.SECRETS), ("ConfigMap", r.CONFIGMAPS)):
            names = sorted(m["metadata"]["name"] for m in keep if m["kind"] == kind)
            query = {"labelSelector": f"{LABEL_COPY}=true"}
            if names:
                query["fieldSelector"] = ",".join(f"metadata.name!={n}" for n in names)
            deleted = self.kube.request("DELETE", resource.path(namespace), query=query)
            for item in deleted.get("items") or []:
                gone.append(f"{kind}/{(item.get('metadata') or {}).get('name')}")
        return gone

    def endpoint_objects(self, placement_name: str) -> dict[tuple[str, str], JSON]:
        """The placement's endpoint objects that exist (Services, Ingress), by (kind, name).

        One GET per object :mod:`kommons.agent.endpoints` may create.
        """
        namespace = target_namespace(placement_name)
        found: dict[tuple[str, str], JSON] = {}
        for kind, name in OBJECTS:
            obj = self.kube.get_or_none(_BY_KIND[kind], name, namespace)
            if obj is not None:
                found[(kind, name)] = obj
        return found

    def observe(
        self, placement_name: str, *, wanted: int, job: bool = False, stateful: bool = False
    ) -> WorkloadView:
        """A placement's workload, and its pods when not all wanted are ready.

        The workload is a Deployment, a Job (``job``) or a StatefulSet (``stateful``: a
        placement with storage). One GET of the workload per call; one LIST of the
        placement's pods (by label, in its namespace) only when there is something to explain.
        """
        namespace = target_namespace(placement_name)
        if job:
            found = self.kube.get_or_none(r.JOBS, WORKLOAD_NAME, namespace)
            seen = observe_job(found)
            explained = seen.complete or (seen.ready_replicas >= wanted and not seen.failure)
            if found is None or explained:
                return seen
            pods = self.kube.list(
                r.PODS, namespace, label_selector=f"{LABEL_PLACEMENT}={placement_name}"
            )
            return observe_job(found, pods)
        kind = r.STATEFUL_SETS if stateful else r.DEPLOYMENTS
        deployment = self.kube.get_or_none(kind, WORKLOAD_NAME, namespace)
        if deployment is None:
            return observe_workload(None)
        seen = observe_workload(deployment)
        if seen.ready_replicas >= wanted and not seen.replica_failure:
            return seen
        pods = self.kube.list(
            r.PODS, namespace, label_selector=f"{LABEL_PLACEMENT}={placement_name}"
        )
        return observe_workload(deployment, pods)

    def claims(self, placement_name: str) -> list[str]:
        """Names of the PersistentVolumeClaims in a placement's namespace."""
        namespace = target_namespace(placement_name)
        return sorted(
            str(c["metadata"]["name"])
            for c in self.kube.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)
        )

    def delete_claims(self, placement_name: str, names: Sequence[str]) -> None:
        """Delete claims of a placement's namespace (gone already is fine)."""
        namespace = target_namespace(placement_name)
        for name in names:
            self.kube.delete(r.PERSISTENT_VOLUME_CLAIMS, name, namespace)

    def pods(self, placement_name: str) -> list[JSON]:
        """Every pod of a placement's workload (one LIST by label, in its namespace)."""
        namespace = target_namespace(placement_name)
        return self.kube.list(
            r.PODS, namespace, label_selector=f"{LABEL_PLACEMENT}={placement_name}"
        )

    def logs(self, placement_name: str, *, tail_lines: int) -> dict[str, str]:
        """The tail of each container's log of a placement's pods: ``pod.container`` → text.

        At most :data:`~kommons.lease_logs.MAX_PODS` pods (by name; the others are named under
        ``skipped``), each container's read bounded in lines and bytes; a container whose log
        cannot be read says why instead.
        """
        namespace = target_namespace(placement_name)
        pods = sorted(self.pods(placement_name), key=lambda pod: str(pod["metadata"]["name"]))
        out: dict[str, str] = {}
        for pod in pods[:MAX_PODS]:
            name = str(pod["metadata"]["name"])
            for container in (pod.get("spec") or {}).get("containers") or []:
                query = {
                    "container": str(container["name"]),
                    "tailLines": str(tail_lines),
                    "limitBytes": str(MAX_BYTES_PER_CONTAINER),
                }
                try:
                    text = self.kube.request_text(
                        f"/api/v1/namespaces/{namespace}/pods/{name}/log", query=query
                    )
                except KubeError as exc:
                    text = f"[no log: {exc.message}]\n"
                out[f"{name}.{container['name']}"] = text
        if len(pods) > MAX_PODS:
            skipped = ", ".join(str(p["metadata"]["name"]) for p in pods[MAX_PODS:])
            out["skipped"] = f"[{len(pods) - MAX_PODS} more pods not read: {skipped}]\n"
        return out

    def remove(self, placement_name: str) -> bool:
        """Delete a placement's namespace; ``True`` once it is completely gone."""
        name = target_namespace(placement_name)
        self.kube.delete(r.NAMESPACES, name)
        try:
            self.kube.get(r.NAMESPACES, name)
        except NotFound:
            return True
        return False

    def workload_namespaces(self) -> list[JSON]:
        """Every namespace on the cluster that materialises a Kommons placement."""
        return self.kube.list(
            r.NAMESPACES, label_selector=f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_PLACEMENT}"
        )

    def remove_namespace(self, name: str) -> None:
        """Delete one workload namespace (and so everything in it); gone already is fine."""
        self.kube.delete(r.NAMESPACES, name)

    def reserved(
        self, storage_classes: Mapping[str, str] | None = None
    ) -> tuple[Amount, list[str]]:
        """What materialised placements hold, read from their quotas, and their lease keys.

        A quota's ``pods`` is the placement's replicas: each holds a pod slot whether its pod
        runs or is pending. A suspended placement's quota is zero, so it holds nothing but its
        claims. Storage is read per class (``storage_classes``: tier → class) and counted by
        tier.
        """
        tiers = {cls: tier for tier, cls in (storage_classes or {}).items()}
        total = Amount()
        leases: list[str] = []
        for quota in self.kube.list(
            r.RESOURCE_QUOTAS, label_selector=f"{LABEL_MANAGED_BY}={MANAGER}"
        ):
            meta = quota.get("metadata") or {}
            hard = (quota.get("spec") or {}).get("hard") or {}
            annotations = meta.get("annotations") or {}
            gpus = count(hard.get(f"requests.{GPU_RESOURCE}", "0"))
            storage = {
                tier: memory_bytes(hard.get(storage_class_key(cls, "requests.storage"), "0"))
                for cls, tier in tiers.items()
            }
            model = annotations.get(ANNOTATION_GPU_MODEL) or "unknown"
            total = total.plus(
                Amount(
                    cpu_milli(hard.get("requests.cpu", "0")),
                    memory_bytes(hard.get("requests.memory", "0")),
                    {model: gpus} if gpus else {},
                    pods=count(hard.get("pods", "0")),
                    storage={t: n for t, n in storage.items() if n},
                )
            )
            if ANNOTATION_LEASE in annotations:
                # "ns/name=replicas": the hub holds capacity for replicas beyond this count
                leases.append(f"{annotations[ANNOTATION_LEASE]}={count(hard.get('pods', '0'))}")
        return total, sorted(leases)

    def inventory(
        self, offer: Amount | None, *, storage: Mapping[str, StorageOffer] | None = None
    ) -> tuple[Inventory, list[str]]:
        """Inventory of the cluster and the leases it accounts for."""
        nodes = self.kube.list(r.NODES)
        pods = self.kube.list(r.PODS, field_selector="status.phase!=Succeeded,status.phase!=Failed")
        classes = {tier: t.storage_class for tier, t in (storage or {}).items()}
        reserved, leases = self.reserved(classes)
        inventory = compute_inventory(nodes, pods, reserved=reserved, offer=offer, storage=storage)
        return inventory, leases

    def version(self) -> str:
        """The cluster's Kubernetes version (``v1.36.3``)."""
        return str(self.kube.request("GET", "/version").get("gitVersion", "unknown"))
