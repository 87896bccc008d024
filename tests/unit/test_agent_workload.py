"""Unit tests of the per-placement manifests the agent applies (``kommons.agent.workload``).

Behaviour matrix:

- ``target_namespace``: short names keep a readable ``kommons-<slug>``; any name (long, upper
  case, dots, unicode, empty, only punctuation) gives a DNS label of at most 63 characters;
  long names stay distinct through a digest; the same name always gives the same namespace.
- namespace: Pod Security ``restricted`` enforced and warned; Kommons labels are valid label
  values even for long lease names.
- ResourceQuota: pods = replicas; requests and limits of cpu/memory = replicas × per-replica,
  exactly (checked by parsing); GPUs = replicas × count; ephemeral-storage limits = replicas ×
  EPHEMERAL_STORAGE_PER_REPLICA; no load balancers, node ports, PVCs.
- LimitRange: default and max per container equal one replica (ephemeral storage included),
  defaultRequest the same except ephemeral storage 0 (bounded, not reserved).
- NetworkPolicy: selects every pod, denies all ingress, egress only to the IPv4 internet minus
  private, CGNAT, loopback, link-local (metadata 169.254.169.254) and 0/8, plus DNS to
  kube-dns.
- Deployment: replicas (0 while suspended), Recreate, selector matched by the pod labels,
  sanitised template.
- ``sanitised_pod_template``: removes every field ``TEMPLATE_RULES`` refuses (placement- and
  isolation-escaping pod fields, host ports, ephemeral containers, other volume sources,
  projected service-account tokens, container resources ...) and adds only the restricted
  defaults: security contexts, one replica's resources on every container (ephemeral storage
  limited), no service-account token, no service links, GPU node selector only for a GPU lease
  with a model, sandbox runtime class when configured, the Kommons labels. Keeps what is safe
  as written: pod-level non-root runAsUser/runAsGroup/fsGroup/supplementalGroups, the
  container's runAsUser/runAsGroup/readOnlyRootFilesystem, NET_BIND_SERVICE, dropped
  capabilities, pod anti-affinity, allowed volumes and emptyDir size limits; never mutates its
  input. Property: whatever junk the input template holds, the result passes
  ``template_violations`` (but for the agent's own GPU selector and runtime class).
- a storage lease that exposes ports: a StatefulSet, both Services, a quota with its claims and
  NodePorts, and Services whose selectors match the StatefulSet's pods.
- ``manifests``: apply order namespace, quota, limit range, network policy, deployment, all in
  the placement's namespace.
- storage (a placement with ``spec.storage``): the workload is a StatefulSet (Parallel, claims
  deleted with it and kept when scaled down) with one ReadWriteOnce claim template per entry on
  the tier's class and size, each mounted at its mountPath in every container (init ones too);
  the quota allows exactly replicas x entries claims and replicas x sizes of storage, in total
  and per class, and keeps them while suspended (the claims keep the data); without storage
  the quota allows no claim and no storage, and nothing is mounted; a Job stays a Job.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.agent.config import ExposeConfig
from kommons.agent.workload import (
    EGRESS_DENIED_CIDRS,
    EPHEMERAL_STORAGE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    PlacementWork,
    StorageVolume,
    changed_by_agent,
    deployment,
    limit_range,
    manifests,
    namespace,
    network_policy,
    resource_quota,
    sanitised_pod_template,
    services,
    stateful_set,
    storage_class_key,
    target_namespace,
    workload,
)
from kommons.api.lease import ExposedPort
from kommons.api.template import (
    ALLOWED_VOLUME_SOURCES,
    EPHEMERAL_STORAGE_PER_REPLICA,
    sanitise_template,
    template_violations,
)
from kommons.api_names import LABEL_LEASE_NAME, LABEL_PLACEMENT
from kommons.quantity import parse_quantity

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

FORBIDDEN_POD_FIELDS = (
    "hostUsers",
    "serviceAccountName",
    "serviceAccount",
    "priorityClassName",
    "priority",
    "schedulerName",
    "tolerations",
    "preemptionPolicy",
    "overhead",
    "resourceClaims",
)
"""Pod fields refused whatever their value (never in a sanitised template)."""
UNSAFE_WHEN_SET = ("nodeName", "hostNetwork", "hostPID", "hostIPC", "ephemeralContainers")
"""Pod fields refused unless empty or false (HOSTILE_TEMPLATE sets them)."""


def work(**overrides: Any) -> PlacementWork:
    values: dict[str, Any] = {
        "name": "web-1a2b3c4d",
        "lease_namespace": "team-a",
        "lease_name": "web",
        "lease_uid": "0b6f3c4e-1111-2222-3333-444455556666",
        "replicas": 3,
        "cpu": "500m",
        "memory": "1Gi",
        "gpu_count": 0,
        "gpu_model": None,
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
    }
    values.update(overrides)
    return PlacementWork(**values)


# --- target_namespace -------------------------------------------------------------------


def test_short_placement_name_gives_readable_namespace() -> None:
    assert target_namespace("web-1a2b3c4d") == "kommons-web-1a2b3c4d"


def test_placement_name_is_lowered_and_slugged() -> None:
    assert target_namespace("Web.App_x") == "kommons-web-app-x"


def test_long_placement_names_are_truncated_with_a_digest() -> None:
    a, b = "a" * 80 + "x", "a" * 80 + "y"
    assert len(target_namespace(a)) <= 63
    assert target_namespace(a) != target_namespace(b)
    assert target_namespace(a).startswith("kommons-aaaa")


@pytest.mark.parametrize("name", ["", "-", "...", "___", "éé", "-" * 70])
def test_names_without_any_usable_character_still_give_a_dns_label(name: str) -> None:
    ns = target_namespace(name)
    assert DNS_LABEL.match(ns), ns
    assert len(ns) <= 63


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_target_namespace_is_always_a_dns_label(name: str) -> None:
    ns = target_namespace(name)
    assert len(ns) <= 63
    assert DNS_LABEL.match(ns), ns
    assert ns.startswith("kommons-")
    assert target_namespace(name) == ns


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,250}[a-z0-9])?", fullmatch=True), st.integers(0, 9))
def test_distinct_long_names_with_the_same_prefix_stay_distinct(stem: str, tail: int) -> None:
    a = "x" * 60 + stem
    b = a + str(tail)
    assert target_namespace(a) != target_namespace(b)


# --- namespace --------------------------------------------------------------------------


def test_namespace_enforces_pod_security_restricted() -> None:
    ns = namespace(work())
    labels = ns["metadata"]["labels"]
    assert ns["kind"] == "Namespace"
    assert ns["metadata"]["name"] == "kommons-web-1a2b3c4d"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels[LABEL_PLACEMENT] == "web-1a2b3c4d"


@pytest.mark.parametrize(
    "lease_name",
    ["a" * 62 + ".b" + "c" * 10, "a" * 62 + "-b", "a" * 62 + "--" + "b" * 5, "a" * 253],
)
def test_long_lease_names_give_valid_label_values(lease_name: str) -> None:
    for obj in manifests(work(lease_name=lease_name)):
        value = obj["metadata"]["labels"][LABEL_LEASE_NAME]
        assert len(value) <= 63
        assert LABEL_VALUE.match(value), value
    pod_labels = deployment(work(lease_name=lease_name))["spec"]["template"]["metadata"]["labels"]
    assert LABEL_VALUE.match(pod_labels[LABEL_LEASE_NAME])


# --- ResourceQuota and LimitRange ------------------------------------------------------


def test_quota_is_replicas_times_one_replica() -> None:
    hard = resource_quota(work(replicas=3, cpu="500m", memory="1Gi"))["spec"]["hard"]
    assert hard["pods"] == "3"
    assert parse_quantity(hard["limits.ephemeral-storage"]) == 3 * parse_quantity(
        EPHEMERAL_STORAGE_PER_REPLICA
    )
    assert "requests.ephemeral-storage" not in hard
    assert parse_quantity(hard["requests.cpu"]) == Decimal("1.5")
    assert parse_quantity(hard["limits.cpu"]) == Decimal("1.5")
    assert parse_quantity(hard["requests.memory"]) == 3 * 1024**3
    assert parse_quantity(hard["limits.memory"]) == 3 * 1024**3
    assert hard[f"requests.{GPU_RESOURCE}"] == "0"
    assert hard["services.loadbalancers"] == "0"
    assert hard["services.nodeports"] == "0"
    assert hard["persistentvolumeclaims"] == "0"


def test_quota_counts_gpus_of_every_replica() -> None:
    hard = resource_quota(work(replicas=2, gpu_count=4, gpu_model="A100"))["spec"]["hard"]
    assert hard[f"requests.{GPU_RESOURCE}"] == "8"


QUANTITY_SUFFIXES = ["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"]


@st.composite
def quantities(draw: st.DrawFn) -> str:
    whole = draw(st.integers(min_value=0, max_value=10**6))
    frac = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,3}", fullmatch=True)))
    if whole == 0 and frac.strip(".0") == "":
        whole = 1
    return f"{whole}{frac}{draw(st.sampled_from(QUANTITY_SUFFIXES))}"


@settings(max_examples=150, deadline=None)
@given(quantities(), quantities(), st.integers(min_value=1, max_value=1000))
def test_quota_totals_equal_replicas_times_per_replica_exactly(
    cpu: str, memory: str, replicas: int
) -> None:
    hard = resource_quota(work(cpu=cpu, memory=memory, replicas=replicas))["spec"]["hard"]
    for kind, per_replica in (("cpu", cpu), ("memory", memory)):
        expected = parse_quantity(per_replica) * replicas
        assert parse_quantity(hard[f"requests.{kind}"]) == expected
        assert parse_quantity(hard[f"limits.{kind}"]) == expected
    assert hard["pods"] == str(replicas)


def test_limit_range_is_one_replica_per_container() -> None:
    (limit,) = limit_range(work(cpu="250m", memory="512Mi"))["spec"]["limits"]
    one = {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": EPHEMERAL_STORAGE_PER_REPLICA}
    assert limit["type"] == "Container"
    assert limit["default"] == limit["max"] == one
    assert limit["defaultRequest"] == one | {"ephemeral-storage": "0"}


# --- NetworkPolicy ----------------------------------------------------------------------


def _egress_allows(policy: dict[str, Any], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if not block or ip not in ipaddress.ip_network(block["cidr"]):
                continue
            if not any(ip in ipaddress.ip_network(c) for c in block.get("except", [])):
                return True
    return False


def test_network_policy_denies_ingress_and_selects_every_pod() -> None:
    spec = network_policy(work())["spec"]
    assert spec["podSelector"] == {}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert spec["ingress"] == []


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.1",
    ],
)
def test_network_policy_refuses_private_link_local_and_metadata(address: str) -> None:
    assert not _egress_allows(network_policy(work()), address)


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "172.32.0.1", "192.169.0.1"])
def test_network_policy_allows_the_public_internet(address: str) -> None:
    assert _egress_allows(network_policy(work()), address)


def test_denied_cidrs_are_valid_and_inside_the_allowed_block() -> None:
    everything = ipaddress.ip_network("0.0.0.0/0")
    for cidr in EGRESS_DENIED_CIDRS:
        assert ipaddress.ip_network(cidr).subnet_of(everything)


def test_network_policy_allows_dns_only_to_kube_dns() -> None:
    dns_rule = network_policy(work())["spec"]["egress"][1]
    assert {(p["protocol"], p["port"]) for p in dns_rule["ports"]} == {("UDP", 53), ("TCP", 53)}
    (peer,) = dns_rule["to"]
    assert "ipBlock" not in peer
    assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


# --- Deployment -------------------------------------------------------------------------


def test_deployment_runs_the_replicas_with_recreate() -> None:
    spec = deployment(work(replicas=4))["spec"]
    assert spec["replicas"] == 4
    assert spec["strategy"] == {"type": "Recreate"}
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items())


def test_suspended_deployment_has_no_replicas() -> None:
    assert deployment(work(replicas=4, suspend=True))["spec"]["replicas"] == 0


def test_manifests_are_in_apply_order_in_the_placement_namespace() -> None:
    objs = manifests(work())
    assert [o["kind"] for o in objs] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Deployment",
    ]
    ns = objs[0]["metadata"]["name"]
    assert all(o["metadata"]["namespace"] == ns for o in objs[1:])


# --- sanitised_pod_template: examples ----------------------------------------------------


HOSTILE_TEMPLATE: dict[str, Any] = {
    "metadata": {
        "labels": {"app": "web", "kommons.io/placement": "someone-else"},
        "annotations": {"note": "x"},
    },
    "spec": {
        "nodeName": "node-1",
        "nodeSelector": {"kubernetes.io/hostname": "node-1"},
        "affinity": {"nodeAffinity": {}},
        "hostNetwork": True,
        "hostPID": True,
        "hostIPC": True,
        "serviceAccountName": "admin",
        "tolerations": [{"operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "runtimeClassName": "runc",
        "securityContext": {"runAsUser": 0, "sysctls": [{"name": "x", "value": "1"}]},
        "automountServiceAccountToken": True,
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
        "containers": [
            {
                "name": "app",
                "image": "nginx",
                "ports": [{"containerPort": 80, "hostPort": 80, "hostIP": "0.0.0.0"}],
                "securityContext": {
                    "privileged": True,
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                    "runAsUser": 0,
                    "readOnlyRootFilesystem": True,
                },
                "resources": {"requests": {"cpu": "64"}, "limits": {"cpu": "64"}},
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            }
        ],
        "initContainers": [{"name": "init", "image": "busybox", "securityContext": {}}],
        "volumes": [
            {"name": "root", "hostPath": {"path": "/"}},
            {"name": "sneaky", "emptyDir": {}, "hostPath": {"path": "/"}},
            {"name": "cache", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "x"}},
        ],
    },
}


def one_replica(**extra: str) -> dict[str, Any]:
    """The resources every container gets for ``work()``'s lease."""
    one = {"cpu": "500m", "memory": "1Gi", **extra}
    return {
        "requests": one | {EPHEMERAL_STORAGE: "0"},
        "limits": one | {EPHEMERAL_STORAGE: EPHEMERAL_STORAGE_PER_REPLICA},
    }


def test_hostile_template_is_sanitised() -> None:
    template = sanitised_pod_template(work(template=copy.deepcopy(HOSTILE_TEMPLATE)))
    spec = template["spec"]
    for field in FORBIDDEN_POD_FIELDS + UNSAFE_WHEN_SET:
        assert field not in spec, field
    assert spec["affinity"] == {}
    assert "nodeSelector" not in spec
    assert "runtimeClassName" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert [v["name"] for v in spec["volumes"]] == ["root", "sneaky", "cache", "cfg", "data"]
    assert [set(v) for v in spec["volumes"]] == [
        {"name"},  # no source left: the provider refuses the Deployment (fails closed)
        {"name", "emptyDir"},
        {"name", "emptyDir"},
        {"name", "configMap"},
        {"name"},
    ]
    (app,) = spec["containers"]
    assert app["ports"] == [{"containerPort": 80}]
    assert app["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    sc = app["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert "runAsUser" not in sc
    assert app["resources"] == one_replica()
    (init,) = spec["initContainers"]
    assert init["resources"] == one_replica()
    assert "readOnlyRootFilesystem" not in init["securityContext"]


def test_sanitising_never_mutates_the_input() -> None:
    original = copy.deepcopy(HOSTILE_TEMPLATE)
    w = work(template=original)
    sanitised_pod_template(w)
    assert original == HOSTILE_TEMPLATE


def test_non_root_user_is_kept() -> None:
    template = {"spec": {"containers": [{"name": "a", "securityContext": {"runAsUser": 1000}}]}}
    sc = sanitised_pod_template(work(template=template))["spec"]["containers"][0]["securityContext"]
    assert sc["runAsUser"] == 1000


def test_pod_level_non_root_ids_survive() -> None:
    pod_sc = {
        "runAsUser": 1000,
        "runAsGroup": 3000,
        "fsGroup": 2000,
        "supplementalGroups": [4000, 5000],
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    template = {"spec": {"securityContext": dict(pod_sc), "containers": [{"name": "a"}]}}
    out = sanitised_pod_template(work(template=template))["spec"]["securityContext"]
    assert out == pod_sc | {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.mark.parametrize(
    ("field", "value"),
    [("runAsUser", 0), ("runAsGroup", 0), ("fsGroup", 0), ("supplementalGroups", [1, 0])],
)
def test_pod_level_root_ids_are_removed(field: str, value: Any) -> None:
    template = {"spec": {"securityContext": {field: value}, "containers": [{"name": "a"}]}}
    out = sanitised_pod_template(work(template=template))["spec"]["securityContext"]
    assert field not in out


def test_safe_container_settings_are_kept_as_written() -> None:
    sc = {
        "runAsUser": 101,
        "runAsGroup": 101,
        "readOnlyRootFilesystem": True,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["NET_RAW"]},
        "procMount": "Default",
    }
    template = {"spec": {"containers": [{"name": "a", "securityContext": copy.deepcopy(sc)}]}}
    out = sanitised_pod_template(work(template=template))["spec"]["containers"][0]
    assert out["securityContext"]["capabilities"] == {
        "add": ["NET_BIND_SERVICE"],
        "drop": ["NET_RAW", "ALL"],
    }
    for key in ("runAsUser", "runAsGroup", "readOnlyRootFilesystem", "procMount"):
        assert out["securityContext"][key] == sc[key]


def test_pod_anti_affinity_volumes_and_grace_period_are_kept() -> None:
    anti = {"preferredDuringSchedulingIgnoredDuringExecution": []}
    volumes = [{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    template = {
        "spec": {
            "containers": [{"name": "a"}],
            "affinity": {"podAntiAffinity": anti},
            "volumes": copy.deepcopy(volumes),
            "terminationGracePeriodSeconds": 45,
        }
    }
    spec = sanitised_pod_template(work(template=template))["spec"]
    assert spec["affinity"] == {"podAntiAffinity": anti}
    assert spec["volumes"] == volumes
    assert spec["terminationGracePeriodSeconds"] == 45


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("terminationGracePeriodSeconds", 3600),
        ("activeDeadlineSeconds", 60),
        ("restartPolicy", "Never"),
        ("schedulingGates", [{"name": "x"}]),
    ],
)
def test_fields_a_deployment_cannot_honour_are_removed(field: str, value: Any) -> None:
    template = {"spec": {"containers": [{"name": "a"}], field: value}}
    assert field not in sanitised_pod_template(work(template=template))["spec"]


def test_oversized_or_hugepage_empty_dirs_lose_the_setting() -> None:
    template = {
        "spec": {
            "containers": [{"name": "a"}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Ti", "medium": "HugePages"}}],
        }
    }
    (volume,) = sanitised_pod_template(work(template=template))["spec"]["volumes"]
    assert volume == {"name": "v", "emptyDir": {}}


def test_pod_labels_keep_user_labels_but_not_kommons_ones() -> None:
    labels = sanitised_pod_template(work(template=copy.deepcopy(HOSTILE_TEMPLATE)))["metadata"][
        "labels"
    ]
    assert "app" not in labels  # a kommons.io/ label refuses the whole map at admission
    assert labels["kommons.io/placement"] == "web-1a2b3c4d"
    clean = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    labels = sanitised_pod_template(work(template=clean))["metadata"]["labels"]
    assert labels["app"] == "web"
    assert labels["kommons.io/placement"] == "web-1a2b3c4d"


def test_gpu_lease_gets_gpus_and_a_node_selector_for_its_model() -> None:
    spec = sanitised_pod_template(work(gpu_count=2, gpu_model="NVIDIA-A100"))["spec"]
    assert spec["nodeSelector"] == {GPU_PRODUCT_LABEL: "NVIDIA-A100"}
    resources = spec["containers"][0]["resources"]
    assert resources["requests"][GPU_RESOURCE] == "2"
    assert resources["limits"][GPU_RESOURCE] == "2"


def test_cpu_lease_gets_no_gpus_and_no_node_selector() -> None:
    spec = sanitised_pod_template(work(gpu_count=0, gpu_model="NVIDIA-A100"))["spec"]
    assert "nodeSelector" not in spec
    assert GPU_RESOURCE not in spec["containers"][0]["resources"]["limits"]


def test_sandbox_runtime_class_is_set_when_configured() -> None:
    tpl = {"spec": {"runtimeClassName": "runc", "containers": [{"name": "a"}]}}
    assert sanitised_pod_template(work(runtime_class="gvisor"))["spec"]["runtimeClassName"] == (
        "gvisor"
    )
    assert "runtimeClassName" not in sanitised_pod_template(work(template=tpl))["spec"]


def test_projected_service_account_tokens_are_not_mounted() -> None:
    template = {
        "spec": {
            "containers": [{"name": "a"}],
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "audience": "api"}},
                            {"configMap": {"name": "cfg"}},
                        ]
                    },
                }
            ],
        }
    }
    spec = sanitised_pod_template(work(template=template))["spec"]
    for volume in spec.get("volumes", []):
        for source in (volume.get("projected") or {}).get("sources", []):
            assert "serviceAccountToken" not in source


def test_empty_template_still_gives_a_restricted_spec() -> None:
    spec = sanitised_pod_template(work(template={}))["spec"]
    assert "containers" not in spec  # admission requires one: nothing to run, nothing to fix
    assert spec["automountServiceAccountToken"] is False
    assert "volumes" not in spec
    assert "initContainers" not in spec


# --- sanitised_pod_template: property --------------------------------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)

security_contexts = st.fixed_dictionaries(
    {},
    optional={
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "runAsUser": st.integers(-5, 70000),
        "runAsNonRoot": st.booleans(),
        "readOnlyRootFilesystem": st.booleans(),
        "capabilities": st.fixed_dictionaries(
            {"add": st.lists(st.sampled_from(["SYS_ADMIN", "NET_ADMIN", "NET_RAW"]))}
        ),
        "seccompProfile": st.just({"type": "Unconfined"}),
        "procMount": st.just("Unmasked"),
    },
)

ports = st.fixed_dictionaries(
    {"containerPort": st.integers(1, 65535)},
    optional={"hostPort": st.integers(0, 65535), "hostIP": st.just("0.0.0.0")},
)

containers = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=5)},
    optional={
        "image": st.text(max_size=5),
        "securityContext": security_contexts,
        "ports": st.lists(ports, max_size=3),
        "resources": st.just({"limits": {"cpu": "1000"}}),
        "resizePolicy": junk,
    },
)

volume_sources = st.sampled_from(
    [
        "hostPath",
        "emptyDir",
        "configMap",
        "secret",
        "projected",
        "downwardAPI",
        "persistentVolumeClaim",
        "nfs",
        "iscsi",
        "csi",
        "ephemeral",
    ]
)
volumes = st.builds(
    lambda name, sources: {"name": name} | {s: {} for s in sources},
    st.text(max_size=5),
    st.lists(volume_sources, min_size=1, max_size=3, unique=True),
)

pod_specs = st.fixed_dictionaries(
    {"containers": st.lists(containers, max_size=3)},
    optional={
        **{field: junk for field in FORBIDDEN_POD_FIELDS},
        "nodeSelector": junk,
        "runtimeClassName": st.text(max_size=5),
        "securityContext": security_contexts,
        "automountServiceAccountToken": st.booleans(),
        "enableServiceLinks": st.booleans(),
        "initContainers": st.lists(containers, max_size=2),
        "volumes": st.lists(volumes, max_size=4),
        "restartPolicy": st.just("Always"),
    },
)


@settings(max_examples=100, deadline=None)
@given(
    pod_specs,
    st.integers(0, 4),
    st.sampled_from([None, "NVIDIA-A100"]),
    st.sampled_from([None, "gvisor"]),
)
def test_sanitised_template_never_contains_a_forbidden_field(
    spec: dict[str, Any], gpu_count: int, gpu_model: str | None, runtime_class: str | None
) -> None:
    w = work(
        template={"spec": spec},
        gpu_count=gpu_count,
        gpu_model=gpu_model,
        runtime_class=runtime_class,
    )
    template = sanitised_pod_template(w)
    out = template["spec"]
    for field in FORBIDDEN_POD_FIELDS:
        assert field not in out, field
    # the first step leaves nothing the rules refuse; the agent then only adds its own fields
    assert template_violations(sanitise_template({"spec": spec})) == []
    assert changed_by_agent(sanitise_template({"spec": spec}), template) == []
    if gpu_count and gpu_model:
        assert out["nodeSelector"] == {GPU_PRODUCT_LABEL: gpu_model}
    else:
        assert not out.get("nodeSelector")
    assert out.get("runtimeClassName") == runtime_class
    assert out["automountServiceAccountToken"] is False
    assert out["enableServiceLinks"] is False
    assert out["securityContext"]["runAsNonRoot"] is True
    assert out["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert out["securityContext"].get("runAsUser", 1) > 0
    for volume in out.get("volumes", []):
        assert set(volume) - {"name"} <= set(ALLOWED_VOLUME_SOURCES)
    expected = {"cpu": w.cpu, "memory": w.memory}
    if gpu_count:
        expected[GPU_RESOURCE] = str(gpu_count)
    all_containers = out.get("containers", []) + out.get("initContainers", [])
    assert len(out.get("containers", [])) == len(spec["containers"])
    for container in all_containers:
        sc = container["securityContext"]
        assert sc["privileged"] is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["runAsNonRoot"] is True
        assert "ALL" in sc["capabilities"]["drop"]
        assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc.get("procMount", "Default") == "Default"
        assert sc.get("runAsUser", 1) > 0
        assert container["resources"] == {
            "requests": expected | {EPHEMERAL_STORAGE: "0"},
            "limits": expected | {EPHEMERAL_STORAGE: EPHEMERAL_STORAGE_PER_REPLICA},
        }
        assert "resizePolicy" not in container
        for port in container.get("ports", []):
            assert not port.get("hostPort")
            assert not port.get("hostIP")


# --- storage ------------------------------------------------------------------------------

VOLUMES = (
    StorageVolume(name="data", size="10Gi", storage_class="nvme", mount_path="/data"),
    StorageVolume(name="logs", size="512Mi", storage_class="hdd", mount_path="/logs"),
    StorageVolume(name="cache", size="1Gi", storage_class="nvme", mount_path="/cache"),
)
TEMPLATE_WITH_INIT = {
    "spec": {
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [
            {
                "name": "app",
                "image": "nginx",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
}


def test_a_placement_with_storage_runs_a_stateful_set_with_one_claim_per_entry() -> None:
    w = work(storage=VOLUMES, template=TEMPLATE_WITH_INIT)
    sts = workload(w)
    assert sts == stateful_set(w)
    assert sts["kind"] == "StatefulSet"
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    assert spec["selector"]["matchLabels"] == {LABEL_PLACEMENT: w.name}
    assert spec["template"]["metadata"]["labels"][LABEL_PLACEMENT] == w.name
    claims = {c["metadata"]["name"]: c["spec"] for c in spec["volumeClaimTemplates"]}
    assert claims == {
        v.name: {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": v.storage_class,
            "resources": {"requests": {"storage": v.size}},
        }
        for v in VOLUMES
    }
    pod = spec["template"]["spec"]
    wanted = [{"name": v.name, "mountPath": v.mount_path} for v in VOLUMES]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, *wanted]
    assert pod["initContainers"][0]["volumeMounts"] == wanted
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]  # claims add their own volumes
    assert TEMPLATE_WITH_INIT["spec"]["containers"][0]["volumeMounts"] == [  # type: ignore[index]
        {"name": "tmp", "mountPath": "/tmp"}
    ]
    assert workload(work(storage=VOLUMES, suspend=True))["spec"]["replicas"] == 0


def test_the_quota_allows_exactly_the_claims_in_total_and_per_class() -> None:
    hard = resource_quota(work(storage=VOLUMES))["spec"]["hard"]
    assert hard["persistentvolumeclaims"] == "9"
    assert parse_quantity(hard["requests.storage"]) == 3 * parse_quantity("11.5Gi")
    nvme, hdd = storage_class_key("nvme", ""), storage_class_key("hdd", "")
    assert hard[nvme + "persistentvolumeclaims"] == "6"
    assert parse_quantity(hard[nvme + "requests.storage"]) == 3 * parse_quantity("11Gi")
    assert hard[hdd + "persistentvolumeclaims"] == "3"
    assert parse_quantity(hard[hdd + "requests.storage"]) == 3 * parse_quantity("512Mi")
    assert {k for k in hard if "storageclass" in k} == {
        nvme + "persistentvolumeclaims",
        nvme + "requests.storage",
        hdd + "persistentvolumeclaims",
        hdd + "requests.storage",
    }


def test_a_suspended_placement_keeps_its_claims_in_the_quota() -> None:
    hard = resource_quota(work(storage=VOLUMES, suspend=True))["spec"]["hard"]
    assert hard["pods"] == "0"
    assert hard["persistentvolumeclaims"] == "9"
    assert parse_quantity(hard["requests.storage"]) == 3 * parse_quantity("11.5Gi")


def test_without_storage_no_claim_no_storage_and_no_mount() -> None:
    w = work()
    hard = resource_quota(w)["spec"]["hard"]
    assert hard["persistentvolumeclaims"] == "0"
    assert hard["requests.storage"] == "0"
    assert not [k for k in hard if "storageclass" in k]
    assert workload(w)["kind"] == "Deployment"
    assert "volumeMounts" not in workload(w)["spec"]["template"]["spec"]["containers"][0]
    assert workload(work(completions=4, storage=VOLUMES))["kind"] == "Job"


# --- storage and endpoints together -----------------------------------------------------


def test_a_storage_lease_that_exposes_ports_gets_both_and_the_service_selects_its_pods() -> None:
    both = work(
        storage=(StorageVolume(name="data", size="10Gi", storage_class="nvme", mount_path="/d"),),
        expose=(ExposedPort(name="http", port=8080, public=True),),
        publish=ExposeConfig(mode="NodePort", address="203.0.113.7"),
    )
    kinds = [m["kind"] for m in manifests(both)]
    assert kinds.count("StatefulSet") == 1
    assert "Deployment" not in kinds
    assert kinds.count("Service") == 2  # in-cluster and the public NodePort one
    hard = resource_quota(both)["spec"]["hard"]
    assert hard["persistentvolumeclaims"] == "3"
    assert parse_quantity(hard[storage_class_key("nvme", "requests.storage")]) == 30 * 2**30
    assert hard["services.nodeports"] == "1"
    pod_labels = stateful_set(both)["spec"]["template"]["metadata"]["labels"]
    for service in services(both):
        selector = service["spec"]["selector"]
        assert selector.items() <= pod_labels.items(), service["metadata"]["name"]
