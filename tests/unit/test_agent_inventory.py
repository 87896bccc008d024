"""Unit tests of the agent's inventory (``kommons.agent.inventory``).

Behaviour matrix:

- ``Amount.plus``: adds cpu, memory, pods and GPUs per model (models of either side kept).
- ``Amount.minus``: subtracts per dimension and per model, clamped at zero.
- ``Amount.capped``: the smaller per dimension; GPUs capped by the ceiling's total count,
  handed out to models in sorted order; pods are never capped (an offer has no pods).
- ``Amount.to_status``: ``"<n>m"`` cpu, bytes as a string, GPUs sorted by model, pods as an
  int; ``to_summary`` is the same as the ``ResourceSummary`` model.
- ``compute_inventory``:
  - only schedulable, Ready nodes count (unschedulable, NotReady, no Ready condition skipped);
  - GPUs are keyed by ``nvidia.com/gpu.product`` (``unknown`` without the label);
  - pods on skipped or unknown nodes, Succeeded/Failed pods and Kommons' own pods are not
    requested; a pod requests max(sum of containers, largest init container);
  - available = allocatable - requested - reserved, capped by offer - reserved;
    no offer means everything free is available.
  - pods: allocatable pods of Ready schedulable nodes; each counted pod requests one slot;
    reserved pods (replicas of materialised placements, running or not) are subtracted;
    the offer never caps pods; available pods never go below zero.
  - ``inventory_status``: the inventory fields of ``ProviderStatus`` (pods included);
    ``inventory_needs_write``: the first report, any change but ``inventoryTime`` (e.g. one
    more accounted lease or one pod slot less) and a refresh after INVENTORY_REFRESH are
    written; an unchanged report within the refresh period is not.
  - Property: available never exceeds allocatable, free, or offer - reserved (cpu, memory
    and total GPUs), and is never negative.
  - storage: capacity and allocatable per tier are what the agent config offers, available
    is that minus the reserved claims per tier (clamped at zero, not capped by the offer's
    cpu/memory), absent from the summary when no tier is offered.
  - ``ProviderCluster.reserved`` reads the claims back from the placements' quotas, per class
    of the configured tiers (a class no tier maps is not counted), whatever the suspension.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.agent.inventory import (
    INVENTORY_REFRESH,
    UNKNOWN_GPU_MODEL,
    Amount,
    StorageOffer,
    compute_inventory,
    inventory_needs_write,
    inventory_status,
)
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.workload import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    PlacementWork,
    StorageVolume,
    resource_quota,
)
from kommons.api.provider import ProviderStatus, ResourceSummary
from kommons.api_names import LABEL_MANAGED_BY, MANAGER
from kommons.kube import Kube

GIB = 1024**3


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    gpus: int = 0,
    model: str | None = None,
    ready: str | None = "True",
    unschedulable: bool = False,
    pods: int | None = None,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if pods is not None:
        resources["pods"] = str(pods)
    if gpus:
        resources[GPU_RESOURCE] = str(gpus)
    labels = {GPU_PRODUCT_LABEL: model} if model else {}
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": conditions,
        },
    }


def pod(
    node_name: str | None,
    *containers: dict[str, Any],
    init: tuple[dict[str, Any], ...] = (),
    phase: str = "Running",
    kommons: bool = False,
) -> dict[str, Any]:
    labels = {LABEL_MANAGED_BY: MANAGER} if kommons else {}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"requests": c}} for c in containers],
            "initContainers": [{"resources": {"requests": c}} for c in init],
        },
        "status": {"phase": phase},
    }


# --- Amount -------------------------------------------------------------------------


def test_plus_adds_every_dimension_and_model() -> None:
    a = Amount(1000, 10, {"A100": 1}, pods=2)
    b = Amount(500, 5, {"A100": 2, "T4": 1}, pods=3)
    assert a.plus(b) == Amount(1500, 15, {"A100": 3, "T4": 1}, pods=5)


def test_minus_clamps_at_zero() -> None:
    a = Amount(1000, 10, {"A100": 1, "T4": 3}, pods=1)
    b = Amount(1500, 4, {"A100": 2, "T4": 1}, pods=4)
    assert a.minus(b) == Amount(0, 6, {"A100": 0, "T4": 2}, pods=0)


def test_capped_takes_the_smaller_and_caps_total_gpus() -> None:
    a = Amount(4000, 8 * GIB, {"A100": 3, "T4": 2}, pods=7)
    ceiling = Amount(2000, 16 * GIB, {"*": 4})
    assert a.capped(ceiling) == Amount(2000, 8 * GIB, {"A100": 3, "T4": 1}, pods=7)


def test_to_status_is_the_api_form() -> None:
    amount = Amount(1500, GIB, {"T4": 1, "A100": 2}, pods=12)
    status = amount.to_status()
    assert status == {
        "cpu": "1500m",
        "memory": str(GIB),
        "gpus": {"A100": 2, "T4": 1},
        "pods": 12,
    }
    assert list(status["gpus"]) == ["A100", "T4"]
    assert ResourceSummary.model_validate(status) == amount.to_summary()


# --- compute_inventory: examples --------------------------------------------------------


def test_only_schedulable_ready_nodes_count() -> None:
    nodes = [
        node("ok", cpu="4", memory="8Gi"),
        node("cordoned", unschedulable=True),
        node("sick", ready="False"),
        node("unknown", ready=None),
    ]
    inv = compute_inventory(nodes, [], reserved=Amount(), offer=None)
    assert inv.capacity == Amount(4000, 8 * GIB, {})
    assert inv.allocatable == Amount(4000, 8 * GIB, {})
    assert inv.available == Amount(4000, 8 * GIB, {})
    assert inv.ready_nodes == 2  # "ok" and "cordoned": Ready, even if not schedulable


def test_gpus_are_keyed_by_product_label() -> None:
    nodes = [
        node("a", gpus=2, model="NVIDIA-A100"),
        node("b", gpus=1, model="NVIDIA-A100"),
        node("c", gpus=4),
    ]
    inv = compute_inventory(nodes, [], reserved=Amount(), offer=None)
    assert inv.allocatable.gpus == {"NVIDIA-A100": 3, UNKNOWN_GPU_MODEL: 4}


def test_pods_request_what_they_ask_except_done_foreign_and_kommons_pods() -> None:
    nodes = [node("n1", cpu="4", memory="8Gi"), node("sick", ready="False")]
    pods = [
        pod("n1", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "250m"}),
        pod("n1", {"cpu": "1"}, phase="Succeeded"),
        pod("n1", {"cpu": "1"}, phase="Failed"),
        pod("n1", {"cpu": "1"}, kommons=True),
        pod("sick", {"cpu": "1"}),
        pod(None, {"cpu": "1"}),
        pod("elsewhere", {"cpu": "1"}),
    ]
    inv = compute_inventory(nodes, pods, reserved=Amount(), offer=None)
    assert inv.requested == Amount(750, GIB, {}, pods=1)
    assert inv.available == Amount(3250, 7 * GIB, {})


def test_init_containers_count_as_their_maximum_not_their_sum() -> None:
    pods = [
        pod(
            "n1",
            {"cpu": "100m", "memory": "1Gi"},
            {"cpu": "100m"},
            init=({"cpu": "1", "memory": "100Mi"}, {"cpu": "300m", "memory": "2Gi"}),
        )
    ]
    inv = compute_inventory([node("n1")], pods, reserved=Amount(), offer=None)
    assert inv.requested == Amount(1000, 2 * GIB, {}, pods=1)


def test_pod_gpus_take_the_model_of_their_node() -> None:
    nodes = [node("g", gpus=4, model="T4")]
    pods = [pod("g", {GPU_RESOURCE: "1"})]
    inv = compute_inventory(nodes, pods, reserved=Amount(), offer=None)
    assert inv.requested.gpus == {"T4": 1}
    assert inv.available.gpus == {"T4": 3}


def test_reserved_is_subtracted_from_free() -> None:
    reserved = Amount(1000, 2 * GIB, {"T4": 1})
    inv = compute_inventory([node("g", gpus=4, model="T4")], [], reserved=reserved, offer=None)
    assert inv.available == Amount(3000, 6 * GIB, {"T4": 3})
    assert inv.reserved == reserved


def test_offer_caps_what_is_left_of_it_after_reservations() -> None:
    offer = Amount(2000, 4 * GIB, {"*": 2})
    reserved = Amount(500, GIB, {})
    inv = compute_inventory([node("g", gpus=4, model="T4")], [], reserved=reserved, offer=offer)
    assert inv.available == Amount(1500, 3 * GIB, {"T4": 2})


def test_reserved_gpus_use_up_the_offer_whatever_their_model() -> None:
    """The agent's offer counts GPUs in total (``{"*": n}``), reservations by model."""
    offer = Amount(1 << 62, 1 << 62, {"*": 4})
    reserved = Amount(0, 0, {"A100": 4})
    inv = compute_inventory([node("g", gpus=8, model="A100")], [], reserved=reserved, offer=offer)
    assert sum(inv.available.gpus.values()) == 0


# --- compute_inventory: pod slots ---------------------------------------------------------


def test_allocatable_pods_count_only_ready_schedulable_nodes() -> None:
    nodes = [
        node("a", pods=110),
        node("b", pods=110),
        node("cordoned", pods=110, unschedulable=True),
        node("sick", pods=110, ready="False"),
    ]
    inv = compute_inventory(nodes, [], reserved=Amount(), offer=None)
    assert inv.capacity.pods == 220
    assert inv.allocatable.pods == 220
    assert inv.available.pods == 220


def test_available_pods_subtract_other_pods_and_every_reserved_replica() -> None:
    nodes = [node("a", pods=110), node("b", pods=110), node("sick", pods=110, ready="False")]
    pods = [
        pod("a", {"cpu": "100m"}),  # another workload: one slot
        pod("b", {}),  # requests nothing but still takes a slot
        pod("a", {"cpu": "1"}, phase="Succeeded"),  # done: no slot
        pod("sick", {}),  # on a node that does not count
        pod(None, {}),  # not scheduled: no node's slot
        pod("a", {"cpu": "100m"}, kommons=True),  # counted by the reservation instead
    ]
    reserved = Amount(0, 0, {}, pods=5)  # e.g. 3 + 2 replicas, running or pending
    inv = compute_inventory(nodes, pods, reserved=reserved, offer=None)
    assert inv.requested.pods == 2
    assert inv.available.pods == 220 - 2 - 5


def test_offer_never_caps_pods_and_available_pods_stay_non_negative() -> None:
    offer = Amount(1000, GIB, {"*": 0})  # declares cpu, memory, GPUs; no pods
    inv = compute_inventory([node("a", pods=10)], [], reserved=Amount(pods=3), offer=offer)
    assert inv.available.pods == 7
    full = compute_inventory([node("a", pods=10)], [], reserved=Amount(pods=12), offer=None)
    assert full.available.pods == 0


def test_the_measured_overload_leaves_no_pod_slot() -> None:
    """The measured burst: 291 one-replica placements on 3 nodes x 110 pods.

    The report says 39 slots remain, and after 330 placements none, so no 331st fits.
    """
    nodes = [node(f"n{i}", cpu="32", memory="128Gi", pods=110) for i in range(3)]
    inv = compute_inventory(nodes, [], reserved=Amount(29100, 0, {}, pods=291), offer=None)
    assert inv.available.pods == 39
    inv = compute_inventory(nodes, [], reserved=Amount(33000, 0, {}, pods=330), offer=None)
    assert inv.available.pods == 0


# --- what is written to the hub ------------------------------------------------------------

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def report(inv: Any, leases: list[str], now: datetime) -> ProviderStatus:
    return inventory_status(
        inv,
        leases,
        namespace="kommons-provider-a",
        agent_version="1",
        kubernetes_version="v1",
        now=now,
    )


def test_inventory_status_is_the_providers_inventory_fields() -> None:
    inv = compute_inventory([node("a", pods=110)], [], reserved=Amount(pods=3), offer=None)
    wire = report(inv, ["t/b", "t/a"], NOW).to_api()
    assert wire["available"]["pods"] == 107
    assert wire["allocatable"]["pods"] == 110
    assert wire["accountedLeases"] == ["t/a", "t/b"]
    assert wire["inventoryTime"] == "2026-12-01T05:00:00Z"
    assert set(wire) == {
        "capacity",
        "allocatable",
        "available",
        "accountedLeases",
        "inventoryTime",
        "namespace",
        "nodes",
        "agentVersion",
        "kubernetesVersion",
    }


def test_inventory_is_written_on_change_or_refresh_only() -> None:
    nodes = [node("a", pods=110)]
    inv = compute_inventory(nodes, [], reserved=Amount(pods=3), offer=None)
    first = report(inv, ["t/a"], NOW)
    assert inventory_needs_write(None, first, now=NOW)
    soon = NOW + timedelta(seconds=5)
    assert not inventory_needs_write(first, report(inv, ["t/a"], soon), now=soon)
    assert inventory_needs_write(first, report(inv, ["t/a", "t/b"], soon), now=soon)
    fuller = compute_inventory(nodes, [], reserved=Amount(pods=4), offer=None)
    assert inventory_needs_write(first, report(fuller, ["t/a"], soon), now=soon)
    late = NOW + INVENTORY_REFRESH
    assert inventory_needs_write(first, report(inv, ["t/a"], late), now=late)


# --- compute_inventory: property ------------------------------------------------------

MODELS = ["A100", "T4", "H100"]


@st.composite
def nodes_and_pods(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = []
    for i in range(draw(st.integers(0, 4))):
        nodes.append(
            node(
                f"n{i}",
                cpu=f"{draw(st.integers(0, 64000))}m",
                memory=str(draw(st.integers(0, 64 * GIB))),
                gpus=draw(st.integers(0, 8)),
                model=draw(st.sampled_from([None, *MODELS])),
                ready=draw(st.sampled_from(["True", "True", "False", None])),
                unschedulable=draw(st.booleans()),
                pods=draw(st.integers(0, 110)),
            )
        )
    pods = []
    for _ in range(draw(st.integers(0, 8))):
        requests = {
            "cpu": f"{draw(st.integers(0, 8000))}m",
            "memory": str(draw(st.integers(0, 8 * GIB))),
            GPU_RESOURCE: str(draw(st.integers(0, 2))),
        }
        pods.append(
            pod(
                f"n{draw(st.integers(0, 5))}",
                requests,
                phase=draw(st.sampled_from(["Running", "Pending", "Succeeded"])),
                kommons=draw(st.booleans()),
            )
        )
    return nodes, pods


amounts = st.builds(
    Amount,
    st.integers(0, 100_000),
    st.integers(0, 100 * GIB),
    st.dictionaries(st.sampled_from(MODELS), st.integers(0, 16), max_size=3),
    st.integers(0, 500),
)
offers = st.one_of(
    st.none(),
    st.builds(
        Amount,
        st.integers(0, 100_000),
        st.integers(0, 100 * GIB),
        st.builds(lambda n: {"*": n}, st.integers(0, 32)),
    ),
)


@settings(max_examples=150, deadline=None)
@given(nodes_and_pods(), amounts, offers)
def test_available_never_exceeds_allocatable_free_or_the_offer(
    cluster: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    reserved: Amount,
    offer: Amount | None,
) -> None:
    nodes, pods = cluster
    inv = compute_inventory(nodes, pods, reserved=reserved, offer=offer)
    avail = inv.available
    assert 0 <= avail.cpu_milli <= inv.allocatable.cpu_milli
    assert 0 <= avail.memory_bytes <= inv.allocatable.memory_bytes
    free = inv.allocatable.minus(inv.requested).minus(reserved)
    assert avail.cpu_milli <= free.cpu_milli
    assert avail.memory_bytes <= free.memory_bytes
    for model, count in avail.gpus.items():
        assert 0 <= count <= inv.allocatable.gpus.get(model, 0)
    if offer is not None:
        assert avail.cpu_milli <= max(0, offer.cpu_milli - reserved.cpu_milli)
        assert avail.memory_bytes <= max(0, offer.memory_bytes - reserved.memory_bytes)
        assert sum(avail.gpus.values()) <= max(
            0, sum(offer.gpus.values()) - sum(reserved.gpus.values())
        )
    assert 0 <= avail.pods <= inv.allocatable.pods
    assert avail.pods == max(0, inv.allocatable.pods - inv.requested.pods - reserved.pods)
    assert inv.allocatable.cpu_milli <= inv.capacity.cpu_milli


def test_storage_available_is_the_offer_minus_the_claims_per_tier() -> None:
    storage = {
        "fast": StorageOffer(storage_class="nvme", capacity=100 * GIB),
        "slow": StorageOffer(storage_class="hdd", capacity=10 * GIB),
    }
    reserved = Amount(storage={"fast": 30 * GIB, "slow": 12 * GIB})
    offer = Amount(cpu_milli=1, memory_bytes=1)
    inv = compute_inventory([node("a")], [], reserved=reserved, offer=offer, storage=storage)
    assert inv.capacity.storage == {"fast": 100 * GIB, "slow": 10 * GIB}
    assert inv.allocatable.storage == {"fast": 100 * GIB, "slow": 10 * GIB}
    assert inv.available.storage == {"fast": 70 * GIB, "slow": 0}
    summary = inv.available.to_summary()
    assert summary.storage == {"fast": str(70 * GIB), "slow": "0"}
    plain = compute_inventory([node("a")], [], reserved=Amount(), offer=None)
    assert plain.available.storage == {}
    assert plain.available.to_summary().storage is None


class QuotaKube:
    """Lists the given quotas (what ``ProviderCluster.reserved`` reads)."""

    def __init__(self, quotas: list[dict[str, Any]]) -> None:
        self.quotas = quotas

    def list(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return self.quotas


def test_reserved_storage_is_read_from_the_quotas_per_tier_class() -> None:
    quota = resource_quota(
        PlacementWork(
            name="db-1",
            lease_namespace="t",
            lease_name="db",
            lease_uid="u",
            replicas=2,
            cpu="1",
            memory="1Gi",
            gpu_count=0,
            gpu_model=None,
            template={},
            suspend=True,
            storage=(
                StorageVolume(name="a", size="5Gi", storage_class="nvme", mount_path="/a"),
                StorageVolume(name="b", size="1Gi", storage_class="other", mount_path="/b"),
            ),
        )
    )
    cluster = ProviderCluster(cast(Kube, QuotaKube([quota])))
    reserved, _ = cluster.reserved({"fast": "nvme", "slow": "hdd"})
    assert reserved.storage == {"fast": 10 * GIB}
    assert reserved.pods == 0
    assert cluster.reserved()[0].storage == {}
