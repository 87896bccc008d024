"""Build the objects that isolate and run one placement on a provider cluster (pure).

Per placement the agent creates a dedicated namespace (Pod Security ``restricted``), a
``ResourceQuota`` and a ``LimitRange`` equal to what was leased, a default-deny
``NetworkPolicy`` whose egress excludes private, link-local and metadata ranges, and the
workload as a ``Deployment``. The template is sanitised again here: the agent never trusts
the hub blindly, and whatever the hub sent, nothing privileged reaches the provider.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from kommons.api_names import (
    LABEL_LEASE_NAME,
    LABEL_LEASE_NAMESPACE,
    LABEL_LEASE_UID,
    LABEL_MANAGED_BY,
    LABEL_PLACEMENT,
    MANAGER,
)
from kommons.quantity import parse_quantity

JSON = dict[str, Any]

WORKLOAD_NAME = "workload"
QUOTA_NAME = "kommons-lease"
LIMIT_RANGE_NAME = "kommons-lease"
NETWORK_POLICY_NAME = "kommons-default-deny"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"

EGRESS_DENIED_CIDRS = (
    "10.0.0.0/8",  # private (RFC 1918)
    "172.16.0.0/12",  # private (RFC 1918)
    "192.168.0.0/16",  # private (RFC 1918)
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, includes the 169.254.169.254 metadata service
    "0.0.0.0/8",  # "this network"
)
"""IPv4 ranges a tenant workload may never reach: the provider's own network and metadata."""

_POD_FIELDS_REMOVED = (
    "nodeName",
    "nodeSelector",
    "affinity",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "serviceAccountName",
    "serviceAccount",
    "priorityClassName",
    "priority",
    "schedulerName",
    "runtimeClassName",
    "tolerations",
    "preemptionPolicy",
    "overhead",
    "resourceClaims",
    "securityContext",
)
"""Pod fields that would escape placement or isolation; the agent sets its own where needed."""


@dataclass(frozen=True, kw_only=True)
class PlacementWork:
    """What the agent needs from a ``LeasePlacement`` to materialise it."""

    name: str
    """The placement's name on the hub."""
    lease_namespace: str
    lease_name: str
    lease_uid: str
    replicas: int
    cpu: str
    """Per-replica cpu quantity."""
    memory: str
    """Per-replica memory quantity."""
    gpu_count: int
    gpu_model: str | None
    template: JSON
    """The lease's pod template (sanitised by the hub, sanitised again here)."""
    suspend: bool = False
    runtime_class: str | None = None
    """Sandbox runtime class the provider configured (e.g. ``gvisor``), if any."""


def target_namespace(placement_name: str) -> str:
    """The provider-cluster namespace of a placement: a DNS label of at most 63 characters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", placement_name.lower()).strip("-")
    digest = hashlib.sha256(placement_name.encode()).hexdigest()[:8]
    if not slug:  # nothing usable in the name: "kommons-" alone is not a DNS label
        return f"kommons-{digest}"
    name = f"kommons-{slug}"
    if len(name) <= 63:
        return name
    return f"{name[:54].rstrip('-')}-{digest}"


def _labels(work: PlacementWork) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_PLACEMENT: work.name,
        LABEL_LEASE_UID: work.lease_uid,
        LABEL_LEASE_NAME: work.lease_name[:63].rstrip("-."),  # a label value ends alphanumeric
        LABEL_LEASE_NAMESPACE: work.lease_namespace,
    }


def _replica_resources(work: PlacementWork) -> dict[str, str]:
    resources = {"cpu": work.cpu, "memory": work.memory}
    if work.gpu_count:
        resources[GPU_RESOURCE] = str(work.gpu_count)
    return resources


def namespace(work: PlacementWork) -> JSON:
    """The placement's namespace, enforcing Pod Security ``restricted``."""
    labels = _labels(work) | {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": target_namespace(work.name), "labels": labels},
    }


def _times(quantity: str, replicas: int) -> str:
    """``replicas`` × a quantity, written so the API server parses it exactly."""
    total = parse_quantity(quantity) * replicas
    return format(total.normalize(), "f")


def resource_quota(work: PlacementWork) -> JSON:
    """A quota equal to what was leased: replicas × per-replica resources, and no more pods."""
    hard: dict[str, str] = {
        "pods": str(work.replicas),
        "requests.cpu": _times(work.cpu, work.replicas),
        "limits.cpu": _times(work.cpu, work.replicas),
        "requests.memory": _times(work.memory, work.replicas),
        "limits.memory": _times(work.memory, work.replicas),
        f"requests.{GPU_RESOURCE}": str(work.gpu_count * work.replicas),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
        "persistentvolumeclaims": "0",
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": QUOTA_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {"hard": hard},
    }


def limit_range(work: PlacementWork) -> JSON:
    """Per-container defaults and ceiling equal to one replica's resources."""
    per_replica = {"cpu": work.cpu, "memory": work.memory}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {
            "name": LIMIT_RANGE_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": per_replica,
                    "defaultRequest": per_replica,
                    "max": per_replica,
                }
            ]
        },
    }


def network_policy(work: PlacementWork) -> JSON:
    """Deny all ingress; allow egress to the internet and DNS only, never private ranges."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NETWORK_POLICY_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(EGRESS_DENIED_CIDRS)}}]},
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
            ],
        },
    }


def _restricted_container(container: JSON, resources: dict[str, str]) -> JSON:
    """A container with the restricted security context and the leased resources."""
    safe = {
        key: value
        for key, value in container.items()
        if key not in ("securityContext", "resources", "resizePolicy")
    }
    for port in safe.get("ports", []) or []:
        if isinstance(port, dict):
            port.pop("hostPort", None)
            port.pop("hostIP", None)
    safe["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": bool(
            (container.get("securityContext") or {}).get("readOnlyRootFilesystem", False)
        ),
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    run_as_user = (container.get("securityContext") or {}).get("runAsUser")
    if isinstance(run_as_user, int) and run_as_user > 0:
        safe["securityContext"]["runAsUser"] = run_as_user
    safe["resources"] = {"requests": dict(resources), "limits": dict(resources)}
    return safe


def sanitised_pod_template(work: PlacementWork) -> JSON:
    """The lease's pod template made safe for a community cluster.

    Every container gets the restricted security context and exactly one replica's
    resources as requests and limits (a replica is one container, plus init containers that
    run before it); fields that would escape placement or isolation are dropped, volumes other
    than ``emptyDir``, ``configMap``, ``secret``, ``projected`` and ``downwardAPI`` are dropped,
    and the service-account token is not mounted.
    """
    template = copy.deepcopy(work.template) if work.template else {}
    spec: JSON = dict(template.get("spec") or {})
    for field in _POD_FIELDS_REMOVED:
        spec.pop(field, None)
    resources = _replica_resources(work)
    spec["containers"] = [
        _restricted_container(c, resources)
        for c in spec.get("containers", [])
        if isinstance(c, dict)
    ]
    spec["initContainers"] = [
        _restricted_container(c, resources)
        for c in spec.get("initContainers", [])
        if isinstance(c, dict)
    ]
    if not spec["initContainers"]:
        del spec["initContainers"]
    spec.pop("ephemeralContainers", None)
    allowed_volumes = {"emptyDir", "configMap", "secret", "projected", "downwardAPI"}
    spec["volumes"] = [
        v
        for v in spec.get("volumes", []) or []
        if isinstance(v, dict) and set(v) - {"name"} <= allowed_volumes
    ]
    for volume in spec["volumes"]:  # a projected token would undo automountServiceAccountToken
        projected = volume.get("projected")
        if isinstance(projected, dict) and isinstance(projected.get("sources"), list):
            projected["sources"] = [
                s
                for s in projected["sources"]
                if not (isinstance(s, dict) and "serviceAccountToken" in s)
            ]
    if not spec["volumes"]:
        del spec["volumes"]
    spec["automountServiceAccountToken"] = False
    spec["enableServiceLinks"] = False
    spec["securityContext"] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if work.gpu_count and work.gpu_model:
        spec["nodeSelector"] = {GPU_PRODUCT_LABEL: work.gpu_model}
    if work.runtime_class:
        spec["runtimeClassName"] = work.runtime_class
    metadata = dict(template.get("metadata") or {})
    labels = {
        k: v for k, v in (metadata.get("labels") or {}).items() if not k.startswith("kommons.io/")
    }
    metadata = {
        "labels": labels | _labels(work),
        "annotations": dict(metadata.get("annotations") or {}),
    }
    return {"metadata": metadata, "spec": spec}


def deployment(work: PlacementWork) -> JSON:
    """The workload: a Deployment of the placement's replicas (0 while suspended).

    ``Recreate`` so an update never runs more pods than the quota allows.
    """
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": WORKLOAD_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {
            "replicas": 0 if work.suspend else work.replicas,
            "selector": {"matchLabels": {LABEL_PLACEMENT: work.name}},
            "strategy": {"type": "Recreate"},
            "template": sanitised_pod_template(work),
        },
    }


def manifests(work: PlacementWork) -> list[JSON]:
    """Every object of a placement, in the order they must be applied."""
    return [
        namespace(work),
        resource_quota(work),
        limit_range(work),
        network_policy(work),
        deployment(work),
    ]
