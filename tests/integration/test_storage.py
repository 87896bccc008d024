"""Persistent storage (``ComputeLease.spec.storage``) on the real bed.

The bed has no volume provisioner: the test makes prov-a's StorageClass ``kommons-fast``
(``kubernetes.io/no-provisioner``, ``volumeBindingMode: Immediate``) and PersistentVolumes of
it, so the real PV controller binds the claims and kube-scheduler places the kwok pods. prov-a's
agent config (examples/providers/prov-a.yaml) offers the tier ``fast`` (20Gi) at
``storageGiBHour.fast``; prov-b and prov-c offer no storage.

Behaviour matrix (case -> expected):

- a lease of 2 replicas with one 1Gi ``fast`` volume -> placed on prov-a (the others are
  rejected for the tier), Running; on prov-a a StatefulSet whose two claims are Bound, of class
  kommons-fast and 1Gi each, mounted at the mountPath; the placement's quota allows exactly 2
  claims and 2Gi (in total and for the class); prov-a's reported free ``fast`` storage is 2Gi
  less; the locked price is cpu + memory + 1 GiB x storageGiBHour.fast (exact, rounded up once);
  scaled down to 1 replica, the claim of the replica scaled away is deleted and prov-a reports
  that GiB free again.
- a lease asking more ``fast`` storage than prov-a has free -> Pending, the decision counts
  InsufficientStorage for prov-a and StorageTier for the others, with the reasons.
- suspend and resume of a storage lease -> the claim stays (same uid, the quota keeps allowing
  it, no pod) while Suspended, and the lease resumes on prov-a with that same claim; deleting
  the lease removes the placement's namespace, claim included.
- admission: reclaimPolicy Retain (planned), storage on a Job lease, a mountPath used by a
  container, and a change of spec.storage are refused naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kommons.kube import Invalid, Kube
from kommons.kube import resources as r
from kommons.money import format_units, parse_units
from kommons.quantity import to_bytes, to_millicores
from kommons.scheduler import replica_price
from kommons_testbed.processes import wait_for
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed

PROVIDER = "prov-a"
CLASS = "kommons-fast"
GIB = 1 << 30
OFFERED = 20 * GIB
VOLUMES = 4


@pytest.fixture(scope="module")
def fast_class(provider_kube: Callable[[str], Kube]) -> Iterator[Kube]:
    """prov-a's StorageClass ``kommons-fast`` and 1Gi PersistentVolumes of it."""
    kube = provider_kube(PROVIDER)
    kube.apply(
        r.STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain",
        },
    )
    names = [f"it-fast-{i}" for i in range(VOLUMES)]
    for name in names:
        kube.apply(
            r.PERSISTENT_VOLUMES,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": CLASS,
                    "hostPath": {"path": f"/tmp/{name}"},
                },
            },
        )
    yield kube
    for name in names:
        kube.delete(r.PERSISTENT_VOLUMES, name)
    kube.delete(r.STORAGE_CLASSES, CLASS)


def storage_lease(name: str, namespace: str, *, size: str, replicas: int = 2) -> dict[str, Any]:
    body = lease_body(name, namespace, replicas=replicas)
    body["spec"]["storage"] = [{"name": "data", "size": size, "tier": "fast", "mountPath": "/data"}]
    return body


def free_fast(hub: Kube) -> int:
    storage = ((hub.get(r.PROVIDERS, PROVIDER).get("status") or {}).get("available") or {}).get(
        "storage"
    ) or {}
    return to_bytes(storage.get("fast", "0"))


def test_a_storage_lease_gets_its_claims_its_quota_and_its_price(
    hub: Kube, tenant: str, fast_class: Kube
) -> None:
    wait_for(lambda: free_fast(hub) == OFFERED, timeout=60, what="prov-a offering 20Gi fast")
    hub.create(r.COMPUTE_LEASES, storage_lease("db", tenant, size="1Gi"), tenant)
    lease = wait_lease(
        hub,
        tenant,
        "db",
        lambda x: (x.get("status") or {}).get("phase") == "Running",
        what="the storage lease Running",
        timeout=120,
    )
    decision = lease["status"]["decision"]
    assert [c["provider"] for c in decision["chosen"]] == [PROVIDER]
    assert decision["rejectedCounts"].get("StorageTier") == 2, decision
    assert "no storage tier fast" in decision["rejected"]["prov-b"]

    (placement,) = hub.list(
        r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-namespace={tenant}"
    )
    namespace = placement["status"]["namespace"]
    statefulset = fast_class.get(r.STATEFUL_SETS, "workload", namespace)
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts
    claims = fast_class.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-workload-0", "data-workload-1"]
    for claim in claims:
        assert claim["spec"]["storageClassName"] == CLASS
        assert to_bytes(claim["spec"]["resources"]["requests"]["storage"]) == GIB
        assert claim["status"]["phase"] == "Bound"

    hard = fast_class.get(r.RESOURCE_QUOTAS, "kommons-lease", namespace)["spec"]["hard"]
    assert int(hard["persistentvolumeclaims"]) == 2
    assert to_bytes(hard["requests.storage"]) == 2 * GIB
    assert int(hard[f"{CLASS}.storageclass.storage.k8s.io/persistentvolumeclaims"]) == 2
    assert to_bytes(hard[f"{CLASS}.storageclass.storage.k8s.io/requests.storage"]) == 2 * GIB

    wait_for(
        lambda: free_fast(hub) == OFFERED - 2 * GIB,
        timeout=60,
        what="prov-a reporting 2Gi less free fast storage",
    )

    pricing = hub.get(r.PROVIDERS, PROVIDER)["spec"]["pricing"]
    units = {k: parse_units(v, rounding="up") for k, v in pricing.items() if isinstance(v, str)}
    storage_price = parse_units(pricing["storageGiBHour"]["fast"], rounding="up")
    compute = {
        "cpu_milli": to_millicores("500m"),
        "memory_bytes": to_bytes("256Mi"),
        "gpu_count": 0,
        "cpu_core_hour": units["cpuCoreHour"],
        "memory_gib_hour": units["memoryGiBHour"],
        "gpu_hour": 0,
    }
    with_storage = replica_price(**compute, storage=[(GIB, storage_price)])
    assert with_storage == replica_price(**compute) + storage_price  # 1 GiB: exact, no rounding
    assert placement["spec"]["pricePerHour"] == format_units(with_storage)

    hub.patch(r.COMPUTE_LEASES, "db", {"spec": {"replicas": 1}}, tenant)
    wait_for(
        lambda: (
            [c["metadata"]["name"] for c in fast_class.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)]
            == ["data-workload-0"]
        ),
        timeout=90,
        what="the claim of the replica scaled away deleted",
    )
    wait_for(
        lambda: free_fast(hub) == OFFERED - GIB,
        timeout=60,
        what="prov-a reporting 1Gi back after the scale-down",
    )


def test_more_storage_than_any_provider_has_stays_pending_with_the_reason(
    hub: Kube, tenant: str, fast_class: Kube
) -> None:
    hub.create(r.COMPUTE_LEASES, storage_lease("big", tenant, size="50Gi", replicas=1), tenant)
    lease = wait_lease(
        hub,
        tenant,
        "big",
        lambda x: bool(((x.get("status") or {}).get("decision") or {}).get("rejectedCounts")),
        what="a decision for the big storage lease",
    )
    status = lease["status"]
    assert status["phase"] == "Pending"
    counts = status["decision"]["rejectedCounts"]
    assert counts == {"InsufficientStorage": 1, "StorageTier": 2}, counts
    assert status["decision"]["rejected"][PROVIDER].startswith("insufficient storage fast (")
    assert "< 50Gi)" in status["decision"]["rejected"][PROVIDER]
    assert not hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-namespace={tenant}")


def test_suspend_keeps_the_claims_and_resume_finds_them(
    hub: Kube, tenant: str, fast_class: Kube
) -> None:
    hub.create(r.COMPUTE_LEASES, storage_lease("kept", tenant, size="1Gi", replicas=1), tenant)

    def phase(wanted: str) -> Callable[[dict[str, Any]], bool]:
        return lambda x: (x.get("status") or {}).get("phase") == wanted

    wait_lease(hub, tenant, "kept", phase("Running"), what="Running", timeout=120)
    (placement,) = hub.list(
        r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-namespace={tenant}"
    )
    namespace = placement["status"]["namespace"]
    (claim,) = fast_class.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)
    uid = claim["metadata"]["uid"]

    hub.patch(r.COMPUTE_LEASES, "kept", {"spec": {"suspend": True}}, tenant)
    wait_lease(hub, tenant, "kept", phase("Suspended"), what="Suspended")
    wait_for(
        lambda: not fast_class.list(r.PODS, namespace),
        timeout=60,
        what="the suspended lease's pod gone",
    )
    (kept,) = fast_class.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)
    assert kept["metadata"]["uid"] == uid
    hard = fast_class.get(r.RESOURCE_QUOTAS, "kommons-lease", namespace)["spec"]["hard"]
    assert (hard["pods"], hard["persistentvolumeclaims"]) == ("0", "1")

    hub.patch(r.COMPUTE_LEASES, "kept", {"spec": {"suspend": False}}, tenant)
    lease = wait_lease(hub, tenant, "kept", phase("Running"), what="Running again", timeout=120)
    assert [p["provider"] for p in lease["status"]["placements"]] == [PROVIDER]
    (again,) = fast_class.list(r.PERSISTENT_VOLUME_CLAIMS, namespace)
    assert again["metadata"]["uid"] == uid

    hub.delete(r.COMPUTE_LEASES, "kept", tenant)
    wait_for(
        lambda: fast_class.get_or_none(r.NAMESPACES, namespace) is None,
        timeout=120,
        what="the placement's namespace (and its claim) gone",
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda s: s["storage"][0].update(reclaimPolicy="Retain"),
            "reclaimPolicy Retain is planned",
        ),
        (lambda s: s.update(job={"completions": 2}), "spec.storage is not supported for a Job"),
        (
            lambda s: s["template"]["spec"]["containers"][0].update(
                volumeMounts=[{"name": "scratch", "mountPath": "/data"}]
            ),
            "spec.storage[].mountPath must differ",
        ),
    ],
    ids=["retain", "job", "mount-path"],
)
def test_admission_refuses_what_storage_cannot_do(
    hub: Kube, tenant: str, change: Callable[[dict[str, Any]], None], named: str
) -> None:
    body = storage_lease("refused", tenant, size="1Gi")
    change(body["spec"])
    with pytest.raises(Invalid) as refused:
        hub.create(r.COMPUTE_LEASES, body, tenant)
    assert named in str(refused.value)


def test_storage_is_immutable(hub: Kube, tenant: str) -> None:
    body = storage_lease("fixed", tenant, size="1Gi", replicas=0)
    hub.create(r.COMPUTE_LEASES, body, tenant)
    with pytest.raises(Invalid) as refused:
        hub.patch(
            r.COMPUTE_LEASES,
            "fixed",
            {
                "spec": {
                    "storage": [
                        {"name": "data", "size": "2Gi", "tier": "fast", "mountPath": "/data"}
                    ]
                }
            },
            tenant,
        )
    assert "spec.storage is immutable" in str(refused.value)
