"""Compute a provider's capacity, allocatable and free resources from its nodes and pods (pure).

Capacity and allocatable are summed over schedulable, Ready nodes; GPUs are counted by the
node label ``nvidia.com/gpu.product`` (count from ``nvidia.com/gpu``), pod slots from the
nodes' ``pods`` allowance. Free is allocatable minus what non-terminated pods request (each
pod takes one pod slot), then capped by the provider's offer: the provider never sells more
than it offered, counting what Kommons placements already use. The offer has no pods
ceiling: pod slots are capped by the nodes alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from kommons.agent.workload import GPU_PRODUCT_LABEL, GPU_RESOURCE
from kommons.api.provider import ProviderStatus, ResourceSummary
from kommons.api_names import LABEL_MANAGED_BY, MANAGER
from kommons.quantity import to_bytes as memory_bytes
from kommons.quantity import to_count as _count
from kommons.quantity import to_millicores as cpu_milli

JSON = dict[str, Any]
UNKNOWN_GPU_MODEL = "unknown"
INVENTORY_REFRESH = timedelta(seconds=30)
"""An unchanged inventory is written again (``inventoryTime``) at most this often."""


@dataclass(frozen=True)
class Amount:
    """Cpu (millicores), memory (bytes), GPUs by model and pod slots."""

    cpu_milli: int = 0
    memory_bytes: int = 0
    gpus: Mapping[str, int] = field(default_factory=dict)
    pods: int = 0
    """Pod slots (a node's ``pods`` allowance; one per pod or replica)."""
    storage: Mapping[str, int] = field(default_factory=dict)
    """Persistent storage in bytes by tier (offered in the agent config, held by claims)."""

    def plus(self, other: Amount) -> Amount:
        """The sum of two amounts."""
        gpus = dict(self.gpus)
        for model, count in other.gpus.items():
            gpus[model] = gpus.get(model, 0) + count
        storage = dict(self.storage)
        for tier, size in other.storage.items():
            storage[tier] = storage.get(tier, 0) + size
        return Amount(
            self.cpu_milli + other.cpu_milli,
            self.memory_bytes + other.memory_bytes,
            gpus,
            self.pods + other.pods,
            storage,
        )

    def minus(self, other: Amount) -> Amount:
        """``self - other``, clamped at zero in every dimension."""
        gpus = {m: max(0, n - other.gpus.get(m, 0)) for m, n in self.gpus.items()}
        storage = {t: max(0, n - other.storage.get(t, 0)) for t, n in self.storage.items()}
        return Amount(
            max(0, self.cpu_milli - other.cpu_milli),
            max(0, self.memory_bytes - other.memory_bytes),
            gpus,
            max(0, self.pods - other.pods),
            storage,
        )

    def capped(self, ceiling: Amount) -> Amount:
        """The smaller of ``self`` and ``ceiling`` (GPUs: total count); pods are not capped.

        An offer declares no pod slots, so ``self.pods`` is kept as it is.
        """
        gpus = dict(self.gpus)
        budget = sum(ceiling.gpus.values())
        for model in sorted(gpus):
            take = min(gpus[model], budget)
            gpus[model] = take
            budget -= take
        return Amount(
            min(self.cpu_milli, ceiling.cpu_milli),
            min(self.memory_bytes, ceiling.memory_bytes),
            gpus,
            self.pods,
            self.storage,
        )

    def to_summary(self) -> ResourceSummary:
        """The API model: cpu (millicores), memory (bytes), GPUs, pods, storage (bytes by tier).

        Storage is absent when no tier is offered.
        """
        return ResourceSummary(
            cpu=f"{self.cpu_milli}m",
            memory=str(self.memory_bytes),
            gpus=dict(sorted(self.gpus.items())),
            pods=self.pods,
            storage={t: str(n) for t, n in sorted(self.storage.items())} or None,
        )

    def to_status(self) -> JSON:
        """The wire form: ``{cpu: "1500m", memory: "1073741824", gpus: {model: n}, pods: n}``."""
        return self.to_summary().to_api()


def _has_ready_condition(node: JSON) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _node_ready(node: JSON) -> bool:
    """Ready and schedulable: the node's resources count in the inventory."""
    return not (node.get("spec") or {}).get("unschedulable") and _has_ready_condition(node)


def _node_amount(node: JSON, key: str) -> Amount:
    values = (node.get("status") or {}).get(key) or {}
    model = ((node.get("metadata") or {}).get("labels") or {}).get(GPU_PRODUCT_LABEL)
    gpus = _count(values.get(GPU_RESOURCE, 0))
    return Amount(
        cpu_milli=cpu_milli(values.get("cpu", 0)),
        memory_bytes=memory_bytes(values.get("memory", 0)),
        gpus={model or UNKNOWN_GPU_MODEL: gpus} if gpus else {},
        pods=_count(values.get("pods", 0)),
    )


def _pod_request(pod: JSON, gpu_model: str | None) -> Amount:
    """What a pod requests: max(sum of containers, largest init container), and one pod slot."""
    spec = pod.get("spec") or {}

    def requests(container: JSON) -> Amount:
        res = (container.get("resources") or {}).get("requests") or {}
        gpus = _count(res.get(GPU_RESOURCE, 0))
        return Amount(
            cpu_milli(res.get("cpu", 0)),
            memory_bytes(res.get("memory", 0)),
            {gpu_model or UNKNOWN_GPU_MODEL: gpus} if gpus else {},
        )

    total = Amount()
    for container in spec.get("containers") or []:
        total = total.plus(requests(container))
    for init in spec.get("initContainers") or []:
        one = requests(init)
        total = Amount(
            max(total.cpu_milli, one.cpu_milli),
            max(total.memory_bytes, one.memory_bytes),
            {m: max(total.gpus.get(m, 0), one.gpus.get(m, 0)) for m in {*total.gpus, *one.gpus}},
        )
    return Amount(total.cpu_milli, total.memory_bytes, total.gpus, pods=1)


@dataclass(frozen=True)
class StorageOffer:
    """One storage tier of the agent config: its class and the bytes offered."""

    storage_class: str
    capacity: int


@dataclass(frozen=True)
class Inventory:
    """One inventory report of a provider cluster."""

    capacity: Amount
    allocatable: Amount
    requested: Amount
    """What the provider's own (non-Kommons) pods on Ready nodes request (one pod slot each)."""
    reserved: Amount
    """What Kommons placements hold: replicas × leased resources and one pod slot per
    replica, running or not."""
    available: Amount
    """What the market may still be sold: allocatable minus both of the above, capped by
    what is left of the offer."""
    ready_nodes: int = 0
    """Nodes whose Ready condition is True (cordoned ones included)."""


def compute_inventory(
    nodes: Iterable[JSON],
    pods: Iterable[JSON],
    *,
    reserved: Amount,
    offer: Amount | None,
    storage: Mapping[str, StorageOffer] | None = None,
) -> Inventory:
    """Sum nodes and pods into an :class:`Inventory`.

    Kommons' own pods are not counted from the pods: a placement holds its full reservation
    from the moment it is materialised (``reserved``), so a placement whose pods are still
    pending cannot be sold twice.

    Args:
        nodes: The cluster's Node objects.
        pods: The cluster's Pod objects (all namespaces).
        reserved: What the materialised placements hold (pods: their replicas).
        offer: The ceiling the provider offers to the market, or ``None`` for everything;
            it caps cpu, memory and GPUs, never pod slots.
        storage: The storage tiers offered (agent config): capacity and allocatable per
            tier are the offered bytes, available is that minus ``reserved.storage``.
    """
    capacity, allocatable = Amount(), Amount()
    models: dict[str, str] = {}
    ready_nodes = 0
    for node in nodes:
        ready_nodes += _has_ready_condition(node)
        if not _node_ready(node):
            continue
        name = str((node.get("metadata") or {}).get("name"))
        models[name] = ((node.get("metadata") or {}).get("labels") or {}).get(
            GPU_PRODUCT_LABEL, UNKNOWN_GPU_MODEL
        )
        capacity = capacity.plus(_node_amount(node, "capacity"))
        allocatable = allocatable.plus(_node_amount(node, "allocatable"))
    requested = Amount()
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        node_name = (pod.get("spec") or {}).get("nodeName")
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if phase in ("Succeeded", "Failed") or node_name not in models:
            continue
        if labels.get(LABEL_MANAGED_BY) == MANAGER:
            continue
        requested = requested.plus(_pod_request(pod, models[node_name]))
    free = allocatable.minus(requested).minus(reserved)
    if offer is None:
        available = free
    else:
        # The offer counts GPUs in total (``{"*": n}``), reservations by model: what is left
        # of the offer is its total minus every reserved GPU, whatever the model.
        left = offer.minus(reserved)
        gpus_left = max(0, sum(offer.gpus.values()) - sum(reserved.gpus.values()))
        available = free.capped(Amount(left.cpu_milli, left.memory_bytes, {"*": gpus_left}))
    if storage:
        offered = {tier: t.capacity for tier, t in storage.items()}
        capacity = replace(capacity, storage=offered)
        allocatable = replace(allocatable, storage=offered)
        unheld = {t: max(0, n - reserved.storage.get(t, 0)) for t, n in offered.items()}
        available = replace(available, storage=unheld)
    return Inventory(capacity, allocatable, requested, reserved, available, ready_nodes)


def inventory_status(
    inventory: Inventory,
    leases: list[str],
    *,
    namespace: str,
    agent_version: str,
    kubernetes_version: str,
    now: datetime,
) -> ProviderStatus:
    """The inventory fields of a Provider's status (what an agent may write there)."""
    return ProviderStatus(
        capacity=inventory.capacity.to_summary(),
        allocatable=inventory.allocatable.to_summary(),
        available=inventory.available.to_summary(),
        accounted_leases=sorted(leases),
        inventory_time=now.replace(microsecond=0),
        namespace=namespace,
        nodes=inventory.ready_nodes,
        agent_version=agent_version,
        kubernetes_version=kubernetes_version,
    )


def inventory_needs_write(
    previous: ProviderStatus | None,
    new: ProviderStatus,
    *,
    now: datetime,
    refresh: timedelta = INVENTORY_REFRESH,
) -> bool:
    """Whether an inventory report is worth a write to the hub.

    It is when anything but ``inventoryTime`` changed (capacity, availability, the accounted
    leases the hub waits for, versions), or the last written report is older than ``refresh``.
    """
    if previous is None or previous.inventory_time is None:
        return True
    if now - previous.inventory_time >= refresh:
        return True
    ignore = {"inventory_time"}
    return bool(previous.model_dump(exclude=ignore) != new.model_dump(exclude=ignore))
