"""Build the objects that isolate and run one placement on a provider cluster (pure).

Per placement the agent creates a dedicated namespace (Pod Security ``restricted``), a
``ResourceQuota`` and a ``LimitRange`` equal to what was leased, a default-deny
``NetworkPolicy`` whose egress excludes private, link-local and metadata ranges (its ingress
admits the lease's exposed ports only), the Services and Ingress of ``expose``
(:mod:`kommons.agent.endpoints`), the lease's ConfigMaps and Secrets under their own names
(from the hub's copies), and the workload as a ``Deployment`` (a ``batch/v1`` ``Job`` for a
run-to-completion placement, a ``StatefulSet`` with one claim per replica and
``spec.storage`` entry for a placement with storage). A suspended placement's quota is zero
but for its claims (kept with their data): what it reserved is the market's again until it
resumes.
The template is sanitised again here: the agent never trusts the hub blindly, and whatever
the hub sent, nothing privileged reaches the provider.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from kommons.agent import endpoints
from kommons.agent.config import ExposeConfig
from kommons.agent.fencing import LABEL_FENCING_TOKEN
from kommons.api.lease import ExposedPort
from kommons.api.template import (
    EPHEMERAL_STORAGE_PER_REPLICA,
    KOMMONS_LABEL_PREFIX,
    sanitise_template,
)
from kommons.api_names import (
    LABEL_LEASE_NAME,
    LABEL_LEASE_NAMESPACE,
    LABEL_LEASE_UID,
    LABEL_MANAGED_BY,
    LABEL_PLACEMENT,
    MANAGER,
)
from kommons.config_copies import provider_object
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

EPHEMERAL_STORAGE = "ephemeral-storage"

_CONTAINER_KINDS = ("initContainers", "containers")
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "runAsNonRoot": True,
}

AGENT_ADDITIONS: frozenset[str] = frozenset(
    {
        "metadata",
        "metadata.labels",
        "spec",
        "spec.automountServiceAccountToken",
        "spec.enableServiceLinks",
        "spec.securityContext",
        "spec.securityContext.runAsNonRoot",
        "spec.securityContext.seccompProfile",
        "spec.securityContext.seccompProfile.type",
        "spec.nodeSelector",
        f"spec.nodeSelector.{GPU_PRODUCT_LABEL}",
        "spec.runtimeClassName",
        "spec.restartPolicy",  # Never, for a Job's pods (a Job lease may not set it)
        "spec.imagePullSecrets",  # the lease's spec.imagePullSecrets (the template may not)
    }
    | {
        f"spec.{kind}[].{field}"
        for kind in _CONTAINER_KINDS
        for field in (
            "resources",
            "securityContext",
            *(f"securityContext.{k}" for k in _CONTAINER_DEFAULTS),
            "securityContext.capabilities",
            "securityContext.capabilities.drop",
            "securityContext.seccompProfile",
            "securityContext.seccompProfile.type",
        )
    }
)
"""Where the agent adds to a tenant's template (``[]``: any index); it changes nothing else.

Plus the ``kommons.io/`` pod labels, and ``ALL`` appended to a container's
``capabilities.drop``. Every field the agent would otherwise drop or change is refused at
admission (:data:`kommons.api.template.TEMPLATE_RULES`)."""
AGENT_ADDED_LABELS = (
    "metadata.labels." + KOMMONS_LABEL_PREFIX,
    f"metadata.labels.{LABEL_MANAGED_BY}",
)
AGENT_APPENDED: dict[str, str] = {
    f"spec.{kind}[].securityContext.capabilities.drop": "ALL" for kind in _CONTAINER_KINDS
}


@dataclass(frozen=True, kw_only=True)
class StorageVolume:
    """One persistent volume every replica gets (a ``spec.storage`` entry, its class resolved)."""

    name: str
    """Claim template and volume name."""
    size: str
    """Per-replica size, a quantity."""
    storage_class: str
    """The provider's StorageClass of the entry's tier."""
    mount_path: str
    """Where every container mounts it."""


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
    completions: int | None = None
    """Run to completion: successful pods the Job needs (``None``: a Deployment)."""
    backoff_limit: int = 6
    """A Job's failed pods retried before it fails."""
    fencing_token: int | None = None
    """The hub's fencing token of the placement (labels the namespace; see agent.fencing)."""
    storage: tuple[StorageVolume, ...] = ()
    """Persistent volumes per replica: the workload is then a StatefulSet."""
    expose: tuple[ExposedPort, ...] = ()
    """The lease's exposed ports (:mod:`kommons.agent.endpoints`)."""
    publish: ExposeConfig | None = None
    """How the provider publishes public ports (its agent config's ``expose``)."""

    image_pull_secrets: tuple[str, ...] = ()
    """The lease's image pull Secrets (copied with ``config``), set on the pods."""
    config: tuple[JSON, ...] = ()
    """The hub's copies of the lease's ConfigMaps and Secrets (:mod:`kommons.config_copies`),
    applied under their original names before the workload."""


def publication(work: PlacementWork) -> endpoints.Publication:
    """How the provider publishes the placement's exposed ports."""
    return endpoints.publication(work.expose, work.publish)


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
    if work.fencing_token is not None:
        labels[LABEL_FENCING_TOKEN] = str(work.fencing_token)
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
    """A quota equal to what was leased: replicas × per-replica resources, and no more pods.

    Zero while suspended: the inventory reads reservations from the quotas, so a suspended
    placement's capacity goes back to the market.
    """
    replicas = 0 if work.suspend else work.replicas
    hard: dict[str, str] = {
        "pods": str(replicas),
        "requests.cpu": _times(work.cpu, replicas),
        "limits.cpu": _times(work.cpu, replicas),
        "requests.memory": _times(work.memory, replicas),
        "limits.memory": _times(work.memory, replicas),
        f"limits.{EPHEMERAL_STORAGE}": _times(EPHEMERAL_STORAGE_PER_REPLICA, replicas),
        f"requests.{GPU_RESOURCE}": str(work.gpu_count * replicas),
        **endpoints.quota(publication(work)),  # exactly what the public Service needs
        "persistentvolumeclaims": "0",
        "requests.storage": "0",
    } | storage_quota(work)
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


def storage_class_key(storage_class: str, what: str) -> str:
    """A quota key of one storage class: ``<class>.storageclass.storage.k8s.io/<what>``."""
    return f"{storage_class}.storageclass.storage.k8s.io/{what}"


def storage_quota(work: PlacementWork) -> dict[str, str]:
    """The quota's claim entries: exactly the claims of every replica, in total and per class.

    Kept while suspended: the StatefulSet scaled to zero keeps its claims (the data), so they
    still hold the provider's storage.
    """
    if not work.storage:
        return {}
    replicas = work.replicas
    out = {
        "persistentvolumeclaims": str(replicas * len(work.storage)),
        "requests.storage": _sum_times([v.size for v in work.storage], replicas),
    }
    for storage_class in sorted({v.storage_class for v in work.storage}):
        mine = [v.size for v in work.storage if v.storage_class == storage_class]
        out[storage_class_key(storage_class, "persistentvolumeclaims")] = str(replicas * len(mine))
        out[storage_class_key(storage_class, "requests.storage")] = _sum_times(mine, replicas)
    return out


def _sum_times(quantities: list[str], replicas: int) -> str:
    total = sum((parse_quantity(q) for q in quantities), start=parse_quantity("0")) * replicas
    return format(total.normalize(), "f")


def limit_range(work: PlacementWork) -> JSON:
    """Per-container defaults and ceiling equal to one replica's resources.

    Ephemeral storage is bounded (limit), not reserved (request 0): the market does not sell it.
    """
    per_replica = {
        "cpu": work.cpu,
        "memory": work.memory,
        EPHEMERAL_STORAGE: EPHEMERAL_STORAGE_PER_REPLICA,
    }
    per_replica_request = {"cpu": work.cpu, "memory": work.memory, EPHEMERAL_STORAGE: "0"}
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
                    "defaultRequest": per_replica_request,
                    "max": per_replica,
                }
            ]
        },
    }


def network_policy(work: PlacementWork) -> JSON:
    """Deny all ingress but the exposed ports; egress to the internet and DNS only.

    Published public ports are admitted from anywhere, other exposed ports from the
    placement's own pods only (:func:`kommons.agent.endpoints.ingress_rules`); egress never
    reaches private ranges.
    """
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
            "ingress": endpoints.ingress_rules(publication(work)),
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


def container_resources(work: PlacementWork) -> JSON:
    """What every container gets: one replica's resources as requests and limits.

    Ephemeral storage is limited to :data:`EPHEMERAL_STORAGE_PER_REPLICA` and requested as 0
    (bounded, not reserved: provider nodes need not report it).
    """
    resources = _replica_resources(work)
    return {
        "requests": resources | {EPHEMERAL_STORAGE: "0"},
        "limits": resources | {EPHEMERAL_STORAGE: EPHEMERAL_STORAGE_PER_REPLICA},
    }


def _restrict_container(container: JSON, resources: JSON) -> None:
    """Add the restricted security context defaults and the leased resources (in place)."""
    sc = container.setdefault("securityContext", {})
    for key, value in _CONTAINER_DEFAULTS.items():
        sc.setdefault(key, value)
    drop = sc.setdefault("capabilities", {}).setdefault("drop", [])
    if "ALL" not in drop:
        drop.append("ALL")
    sc.setdefault("seccompProfile", {}).setdefault("type", "RuntimeDefault")
    container["resources"] = copy.deepcopy(resources)


def sanitised_pod_template(work: PlacementWork) -> JSON:
    """The lease's pod template made safe for a community cluster.

    First every field :data:`kommons.api.template.TEMPLATE_RULES` refuses is removed
    (:func:`kommons.api.template.sanitise_template`): a template the hub admitted loses
    nothing. Then the agent only adds (:data:`AGENT_ADDITIONS`): the restricted security
    context defaults of every container and of the pod (the tenant's non-root IDs are
    kept), one replica's resources on every container, no service-account token, no service
    links, the GPU node selector for a GPU lease with a model, the sandbox runtime class when
    configured, the lease's image pull Secrets, the Kommons pod labels, and for a placement
    with storage one volume mount per ``spec.storage`` entry appended to every container's
    ``volumeMounts`` (admission refuses a template whose mounts or volumes would clash with
    them).
    """
    template = sanitise_template(work.template or {})
    spec: JSON = template.setdefault("spec", {})
    resources = container_resources(work)
    for kind in _CONTAINER_KINDS:
        for container in spec.get(kind) or []:
            _restrict_container(container, resources)
    spec.setdefault("automountServiceAccountToken", False)
    spec.setdefault("enableServiceLinks", False)
    pod_sc = spec.setdefault("securityContext", {})
    pod_sc.setdefault("runAsNonRoot", True)
    pod_sc.setdefault("seccompProfile", {}).setdefault("type", "RuntimeDefault")
    if work.gpu_count and work.gpu_model:
        spec["nodeSelector"] = {GPU_PRODUCT_LABEL: work.gpu_model}
    if work.runtime_class:
        spec["runtimeClassName"] = work.runtime_class
    if work.storage:
        mounts = [{"name": v.name, "mountPath": v.mount_path} for v in work.storage]
        for kind in _CONTAINER_KINDS:
            for container in spec.get(kind) or []:
                container.setdefault("volumeMounts", []).extend(dict(m) for m in mounts)
    if work.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in work.image_pull_secrets]
    metadata: JSON = template.setdefault("metadata", {})
    metadata["labels"] = dict(metadata.get("labels") or {}) | _labels(work)
    return template


def changed_by_agent(template: Any, sanitised: Any, path: str = "") -> list[str]:
    """What the agent dropped or changed of what the tenant wrote: ``["path: how", ...]``.

    Precisely: every value of ``template`` (nulls aside) must be in ``sanitised`` at the same
    path, equal; lists keep their length and order (the agent may only append ``ALL`` to a
    ``capabilities.drop``, :data:`AGENT_APPENDED`); a field ``sanitised`` has and
    ``template`` has not must be an :data:`AGENT_ADDITIONS` path or a ``kommons.io/`` label.
    Empty means the tenant's template survives as written, plus the documented additions.
    """
    out: list[str] = []
    if isinstance(template, dict) and isinstance(sanitised, dict):
        for key, value in template.items():
            sub = f"{path}.{key}" if path else str(key)
            if value is None:
                continue
            if key not in sanitised:
                out.append(f"{sub}: dropped")
            else:
                out.extend(changed_by_agent(value, sanitised[key], sub))
        for key in sanitised:
            sub = f"{path}.{key}" if path else str(key)
            if template.get(key) is None and not _agent_added(sub):
                out.append(f"{sub}: added")
        return out
    if isinstance(template, list) and isinstance(sanitised, list):
        appended = AGENT_APPENDED.get(_pattern(path))
        if appended is not None and appended not in template and sanitised == [*template, appended]:
            return out
        if len(template) != len(sanitised):
            out.append(f"{path}: list changed from {template!r} to {sanitised!r}")
            return out
        for i, (a, b) in enumerate(zip(template, sanitised, strict=True)):
            out.extend(changed_by_agent(a, b, f"{path}[{i}]"))
        return out
    if type(template) is not type(sanitised) or template != sanitised:
        out.append(f"{path}: changed from {template!r} to {sanitised!r}")
    return out


def _pattern(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def _agent_added(path: str) -> bool:
    return _pattern(path) in AGENT_ADDITIONS or path.startswith(AGENT_ADDED_LABELS)


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


def job(work: PlacementWork) -> JSON:
    """The run-to-completion workload: a Job of ``completions`` pods, ``replicas`` at a time.

    Its pods run with ``restartPolicy: Never`` (a failed pod counts against ``backoffLimit``);
    ``suspend`` is the Job's own (its running pods are removed, and it resumes later).
    """
    template = sanitised_pod_template(work)
    template["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": WORKLOAD_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {
            "parallelism": work.replicas,
            "completions": work.completions,
            "backoffLimit": work.backoff_limit,
            "suspend": work.suspend,
            "template": template,
        },
    }


def stateful_set(work: PlacementWork) -> JSON:
    """The workload of a placement with storage: a StatefulSet, one claim per replica and entry.

    Each ``spec.storage`` entry is a claim template (ReadWriteOnce, the tier's class, the
    entry's size), mounted in every container. Pods start in parallel; claims are deleted with
    the StatefulSet (reclaimPolicy Delete) and kept when it is scaled down (suspend keeps the
    data). ``serviceName`` names no Service: the pods need no stable DNS names.
    """
    claims = [
        {
            "metadata": {"name": v.name, "labels": _labels(work)},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": v.storage_class,
                "resources": {"requests": {"storage": v.size}},
            },
        }
        for v in work.storage
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": WORKLOAD_NAME,
            "namespace": target_namespace(work.name),
            "labels": _labels(work),
        },
        "spec": {
            "replicas": 0 if work.suspend else work.replicas,
            "serviceName": WORKLOAD_NAME,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {LABEL_PLACEMENT: work.name}},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete",
                "whenScaled": "Retain",
            },
            "template": sanitised_pod_template(work),
            "volumeClaimTemplates": claims,
        },
    }


def workload(work: PlacementWork) -> JSON:
    """The placement's workload: a Job, a StatefulSet (with storage) or a Deployment."""
    if work.completions is not None:
        return job(work)
    return stateful_set(work) if work.storage else deployment(work)


def services(work: PlacementWork) -> list[JSON]:
    """The Services (and Ingress) of the placement's exposed ports (none without ``expose``)."""
    return endpoints.manifests(
        publication(work),
        placement=work.name,
        namespace=target_namespace(work.name),
        labels=_labels(work),
        config=work.publish,
    )


def config_objects(work: PlacementWork) -> list[JSON]:
    """The lease's ConfigMaps and Secrets, under their own names in the placement's namespace."""
    where = target_namespace(work.name)
    return [provider_object(copy, namespace=where, labels=_labels(work)) for copy in work.config]


def manifests(work: PlacementWork) -> list[JSON]:
    """Every object of a placement, in the order they must be applied."""
    return [
        namespace(work),
        resource_quota(work),
        limit_range(work),
        network_policy(work),
        *config_objects(work),
        *services(work),
        workload(work),
    ]
