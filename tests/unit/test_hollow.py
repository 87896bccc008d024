"""The hollow agents' simulated cluster: binding, pod allowance, inventory, placement status."""

from __future__ import annotations

from kommons_testbed.hollow import HollowCluster, HollowOptions, NodeShape

MI = 1 << 20


def _cluster(pods: int = 110) -> HollowCluster:
    return HollowCluster([NodeShape(cpu_milli=16_000, memory_bytes=64 << 30, pods=pods)] * 2)


def _add(cluster: HollowCluster, i: int, *, replicas: int = 1, cpu: int = 100) -> set[str]:
    return cluster.upsert(
        f"p{i}",
        lease_key=f"t/l{i}",
        replicas=replicas,
        cpu_milli=cpu,
        memory_bytes=64 * MI,
        generation=1,
        now=0.0,
    )


def test_replicas_beyond_the_pod_allowance_stay_pending_like_kube_scheduler() -> None:
    cluster = _cluster()
    for i in range(250):
        _add(cluster, i)
    assert sum(p.scheduled for p in cluster.placements.values()) == 220
    status = cluster.placement_status("p249", now=10.0, ready_delay=1.0)
    assert status is not None
    assert status["phase"] == "Pending"
    assert status["readyReplicas"] == 0
    assert status["conditions"][0]["reason"] == "PodsUnschedulable"
    assert status["message"] == "1 pod(s) Pending: 0/2 nodes are available: 2 Too many pods."
    inventory = cluster.inventory()
    assert inventory.allocatable.pods == 220
    assert inventory.available.pods == 0
    assert inventory.ready_nodes == 2
    assert len(cluster.accounted_leases()) == 250
    assert "t/l0=1" in cluster.accounted_leases()


def test_freed_capacity_binds_pending_replicas_and_reports_them() -> None:
    cluster = _cluster(pods=2)
    for i in range(5):
        _add(cluster, i)
    assert cluster.remove("p0") == {"p4"}
    assert cluster.placements["p4"].scheduled == 1
    assert cluster.remove("unknown") == set()


def test_status_is_running_only_after_the_ready_delay() -> None:
    cluster = _cluster()
    assert _add(cluster, 1, replicas=3) == {"p1"}
    early = cluster.placement_status("p1", now=0.5, ready_delay=1.0)
    late = cluster.placement_status("p1", now=1.0, ready_delay=1.0)
    assert early is not None
    assert late is not None
    assert (early["phase"], early["readyReplicas"]) == ("Pending", 0)
    assert (late["phase"], late["readyReplicas"], late["replicas"]) == ("Running", 3, 3)
    assert late["conditions"][0]["reason"] == "AllReplicasReady"


def test_cpu_shortage_is_named_and_available_never_negative() -> None:
    cluster = _cluster()
    _add(cluster, 1, replicas=3, cpu=12_000)
    status = cluster.placement_status("p1", now=5.0, ready_delay=1.0)
    assert status is not None
    assert status["phase"] == "Degraded"
    assert "2 Insufficient cpu" in status["message"]
    assert cluster.inventory().available.cpu_milli == 0
    assert cluster.inventory().available.pods == 217


def test_unchanged_spec_needs_no_new_status_once_written() -> None:
    cluster = _cluster()
    _add(cluster, 1)
    cluster.placements["p1"].written = ("Running", 1, 1, None)
    assert _add(cluster, 1) == set()
    assert _add(cluster, 1, replicas=2) == {"p1"}


def test_names_are_zero_padded_and_ordered() -> None:
    names = HollowOptions(providers=1000).names()
    assert names[0] == "hollow-0000"
    assert names[-1] == "hollow-0999"
    assert names == sorted(names)
