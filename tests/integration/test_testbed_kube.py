"""Evidence that the bed's clusters are real Kubernetes control planes.

Behaviour matrix (each test can fail):

- kube-scheduler + kwok: on each provider a 3-replica Deployment becomes 3 Ready pods on kwok
  nodes; a pod asking for more ``nvidia.com/gpu`` than any node has stays Pending,
  Unschedulable;
- kube-controller-manager: deleting a namespace removes it and its objects; the garbage
  collector removes what a deleted Deployment owned; a Job runs to completion;
- admission: ResourceQuota refuses an over-quota pod (403), Pod Security ``restricted``
  refuses a privileged pod;
- RBAC + service-account tokens (TokenRequest API): 403 outside the account's namespace,
  200 inside;
- the bed's kwok fault stages: a pod made not Ready stays not Ready, comes back, can fail;
- the bed's tooling: admin kubeconfig works with kubectl, `up` on a running bed is a clear
  refusal, `status` is healthy, Prometheus started on demand scrapes the bed and is stopped;
- fault helpers: an apiserver stopped and started again keeps its objects and port; a killed
  kwok restarted keeps nodes Ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kommons_testbed import tools
from kommons_testbed.bed import Testbed
from kommons_testbed.config import load_hardware, provider_specs
from kommons_testbed.kube import api_client, create_namespace, delete_namespace
from kommons_testbed.launch import http_ok
from kommons_testbed.pods import fail_pod, pod_ready, set_pod_ready
from kommons_testbed.processes import is_alive, wait_for
from kommons_testbed.prometheus import query_values

pytestmark = pytest.mark.bed

PROVIDERS = [s.name for s in provider_specs(load_hardware(), 3)]
CLI = str(Path(sys.executable).parent / "kommons-testbed")
IMAGE = "registry.invalid/kommons/pause:3.10"  # kwok never pulls images

NamespaceFactory = Callable[..., str]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(testbed: Testbed) -> Iterator[NamespaceFactory]:
    """``namespace(cluster, labels=...)`` creates a fresh namespace, deleted after the test."""
    made: list[tuple[str, str]] = []

    def make(cluster: str, *, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        api = testbed.api_client(cluster)
        try:
            create_namespace(api, name, labels=labels)
        finally:
            api.close()  # type: ignore[no-untyped-call]
        made.append((cluster, name))
        return name

    yield make
    for cluster, name in made:
        api = testbed.api_client(cluster)
        try:
            delete_namespace(api, name)
        finally:
            api.close()  # type: ignore[no-untyped-call]


def container(
    name: str = "app", *, requests: dict[str, str] | None = None, **kwargs: object
) -> client.V1Container:
    req = requests or {"cpu": "100m", "memory": "64Mi"}
    return client.V1Container(
        name=name,
        image=IMAGE,
        resources=client.V1ResourceRequirements(requests=req, limits=req),
        **kwargs,
    )


def pod(name: str, *, containers: list[client.V1Container] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(containers=containers or [container()]),
    )


def wait_pod_ready(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod:
    holder: list[client.V1Pod] = []

    def ready() -> bool:
        holder[:] = [core.read_namespaced_pod(name, ns)]
        return pod_ready(holder[0])

    wait_for(ready, timeout=30, what=f"pod {ns}/{name} Ready")
    return holder[0]


# --------------------------------------------------------------------------- scheduler + kwok


@pytest.mark.parametrize("provider", PROVIDERS)
def test_deployment_becomes_three_ready_pods_on_kwok_nodes(
    testbed: Testbed, namespace: NamespaceFactory, provider: str
) -> None:
    ns = namespace(provider, prefix="deploy")
    api = testbed.api_client(provider)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container()]),
                ),
            ),
        ),
    )

    def three_ready() -> bool:
        status = apps.read_namespaced_deployment_status("web", ns).status
        return status is not None and status.ready_replicas == 3

    wait_for(three_ready, timeout=60, what=f"{provider}: deployment web 3/3 ready")
    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 3
    assert all(pod_ready(p) and p.status.phase == "Running" for p in pods)
    kwok_nodes = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items}
    assert kwok_nodes
    assert {p.spec.node_name for p in pods} <= kwok_nodes
    api.close()  # type: ignore[no-untyped-call]


def test_gpu_pod_beyond_any_node_stays_pending(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = "prov-b"
    ns = namespace(provider, prefix="gpu")
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    most = max(int((n.status.allocatable or {}).get("nvidia.com/gpu", "0"))
               for n in core.list_node().items)  # fmt: skip
    assert most > 0, "prov-b should have GPU nodes"
    fits = {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(most)}
    too_many = {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(most + 1)}
    core.create_namespaced_pod(ns, pod("fits", containers=[container(requests=fits)]))
    core.create_namespaced_pod(ns, pod("greedy", containers=[container(requests=too_many)]))

    def unschedulable() -> bool:
        status = core.read_namespaced_pod("greedy", ns).status
        conds = {c.type: c for c in (status.conditions or [])} if status else {}
        scheduled = conds.get("PodScheduled")
        return scheduled is not None and scheduled.reason == "Unschedulable"

    wait_for(unschedulable, timeout=30, what="pod greedy to be Unschedulable")
    wait_pod_ready(core, ns, "fits")  # the same scheduler places a pod that fits
    time.sleep(3)
    greedy = core.read_namespaced_pod("greedy", ns)
    assert greedy.status.phase == "Pending"
    assert not greedy.spec.node_name
    (cond,) = [c for c in greedy.status.conditions if c.type == "PodScheduled"]
    assert cond.status == "False"
    assert "nvidia.com/gpu" in cond.message
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=greedy").items
    assert any(e.reason == "FailedScheduling" for e in events)
    api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- controller-manager


@pytest.mark.parametrize("cluster", ["hub", PROVIDERS[0]])
def test_namespace_deletion_removes_its_objects(testbed: Testbed, cluster: str) -> None:
    api = testbed.api_client(cluster)
    core = client.CoreV1Api(api)
    ns = unique("doomed")
    create_namespace(api, ns)
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "v"})
    )
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="sec"), string_data={"k": "v"})
    )
    core.delete_namespace(ns)
    delete_namespace(api, ns, wait=60)  # returns once the namespace is gone (404)
    for read in (core.read_namespaced_config_map, core.read_namespaced_secret):
        with pytest.raises(client.ApiException) as info:
            read("cfg" if read == core.read_namespaced_config_map else "sec", ns)
        assert info.value.status == 404
    all_cms = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}")
    assert all_cms.items == []
    api.close()  # type: ignore[no-untyped-call]


def test_garbage_collector_removes_owned_objects(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[1]
    ns = namespace(provider, prefix="gc")
    api = testbed.api_client(provider)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "owned"}
    apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="owned"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container()]),
                ),
            ),
        ),
    )
    wait_for(lambda: len(core.list_namespaced_pod(ns).items) == 2, timeout=30, what="2 owned pods")
    apps.delete_namespaced_deployment("owned", ns, propagation_policy="Background")

    def all_gone() -> bool:
        return not apps.list_namespaced_replica_set(ns).items and not (
            core.list_namespaced_pod(ns).items
        )

    wait_for(all_gone, timeout=60, what="the garbage collector to delete the ReplicaSet and pods")
    api.close()  # type: ignore[no-untyped-call]


def test_job_runs_to_completion(testbed: Testbed, namespace: NamespaceFactory) -> None:
    provider = PROVIDERS[2]
    ns = namespace(provider, prefix="job")
    api = testbed.api_client(provider)
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        ns,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="once"),
            spec=client.V1JobSpec(
                completions=2,
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(restart_policy="Never", containers=[container()])
                ),
            ),
        ),
    )

    def succeeded() -> bool:
        status = batch.read_namespaced_job_status("once", ns).status
        return status is not None and status.succeeded == 2

    wait_for(succeeded, timeout=60, what="job once to succeed twice")
    conditions = batch.read_namespaced_job_status("once", ns).status.conditions or []
    assert any(c.type == "Complete" and c.status == "True" for c in conditions)
    api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- admission


def test_resource_quota_refuses_an_over_quota_pod(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[0]
    ns = namespace(provider, prefix="quota")
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        ns,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="small"),
            spec=client.V1ResourceQuotaSpec(hard={"requests.cpu": "1", "limits.cpu": "1"}),
        ),
    )

    def quota_tracked() -> bool:
        status = core.read_namespaced_resource_quota("small", ns).status
        return status is not None and bool(status.hard)

    wait_for(quota_tracked, timeout=30, what="the quota controller to fill in status.hard")
    core.create_namespaced_pod(ns, pod("within", containers=[container(requests={"cpu": "500m"})]))
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_pod(ns, pod("over", containers=[container(requests={"cpu": "2"})]))
    assert info.value.status == 403
    assert "exceeded quota: small" in str(info.value.body)
    api.close()  # type: ignore[no-untyped-call]


def test_pod_security_restricted_refuses_a_privileged_pod(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[1]
    ns = namespace(
        provider, prefix="psa", labels={"pod-security.kubernetes.io/enforce": "restricted"}
    )
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    privileged = container(security_context=client.V1SecurityContext(privileged=True))
    with pytest.raises(client.ApiException) as info:
        core.create_namespaced_pod(ns, pod("priv", containers=[privileged]))
    assert info.value.status == 403
    message = json.loads(info.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "privileged" in message
    compliant = container(
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            run_as_user=1000,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        )
    )
    core.create_namespaced_pod(ns, pod("ok", containers=[compliant]))
    wait_pod_ready(core, ns, "ok")
    api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- RBAC


def test_rbac_limited_service_account(testbed: Testbed, namespace: NamespaceFactory) -> None:
    own, other = namespace("hub", prefix="own"), namespace("hub", prefix="other")
    api = testbed.api_client("hub")
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        own, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="limited"))
    )
    rbac.create_namespaced_role(
        own,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-config"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        own,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="limited-reads"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-config"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="limited", namespace=own)],
        ),
    )
    token_request = core.create_namespaced_service_account_token(
        "limited",
        own,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    token = token_request.status.token
    assert token
    hub = testbed.hub
    limited_api = api_client(hub.server, ca_file=hub.ca_file, token=token)
    limited = client.CoreV1Api(limited_api)
    assert isinstance(limited.list_namespaced_config_map(own), client.V1ConfigMapList)
    for forbidden in (
        lambda: limited.list_namespaced_config_map(other),
        lambda: limited.list_namespaced_secret(own),
        lambda: limited.list_node(),
    ):
        with pytest.raises(client.ApiException) as info:
            forbidden()
        assert info.value.status == 403
        assert f"system:serviceaccount:{own}:limited" in str(info.value.body)
    # a token of one cluster means nothing to another (own signing keys, own issuer)
    prov = testbed.providers[PROVIDERS[0]]
    foreign = client.CoreV1Api(api_client(prov.server, ca_file=prov.ca_file, token=token))
    with pytest.raises(client.ApiException) as info:
        foreign.list_namespaced_config_map(own)
    assert info.value.status == 401
    limited_api.close()  # type: ignore[no-untyped-call]
    api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- kwok fault stages


def test_pod_made_not_ready_stays_not_ready_and_recovers(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[0]
    ns = namespace(provider, prefix="ready")
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, pod("flaky"))
    wait_pod_ready(core, ns, "flaky")

    unready = set_pod_ready(core, ns, "flaky", False)
    assert not pod_ready(unready)
    assert unready.status.phase == "Running"
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # kwok must not flip it back on its own
        assert not pod_ready(core.read_namespaced_pod("flaky", ns))
        time.sleep(0.5)
    (cond,) = [c for c in unready.status.conditions if c.type == "Ready"]
    assert cond.reason == "TestbedNotReady"

    assert pod_ready(set_pod_ready(core, ns, "flaky", True))
    api.close()  # type: ignore[no-untyped-call]


def test_pod_can_be_failed_and_its_replicaset_replaces_it(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[2]
    ns = namespace(provider, prefix="fail")
    api = testbed.api_client(provider)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "one"}
    apps.create_namespaced_replica_set(
        ns,
        client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(name="one"),
            spec=client.V1ReplicaSetSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container()]),
                ),
            ),
        ),
    )

    def ready_pods() -> list[client.V1Pod]:
        return [p for p in core.list_namespaced_pod(ns).items if pod_ready(p)]

    wait_for(lambda: len(ready_pods()) == 1, timeout=30, what="one ready pod")
    (first,) = ready_pods()
    failed = fail_pod(core, ns, first.metadata.name)
    assert failed.status.phase == "Failed"
    assert failed.status.container_statuses[0].state.terminated.exit_code == 1

    def replaced() -> bool:
        return [p.metadata.name for p in ready_pods()] not in ([], [first.metadata.name])

    wait_for(replaced, timeout=30, what="the ReplicaSet to replace the failed pod")
    api.close()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- tooling


def test_admin_kubeconfig_works_with_kubectl(testbed: Testbed) -> None:
    for handle in testbed.clusters.values():
        out = subprocess.run(
            [str(tools.binary("kubectl")), "--kubeconfig", str(handle.kubeconfig), "get", "ns",
             "-o", "name"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert "namespace/default" in out.split()
    merged = subprocess.run(
        [str(tools.binary("kubectl")), "--kubeconfig", str(testbed.merged_kubeconfig),
         "config", "get-contexts", "-o", "name"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert set(merged.split()) == set(testbed.clusters)


def test_up_on_a_running_bed_is_a_clear_refusal(testbed: Testbed) -> None:
    result = subprocess.run(
        [CLI, "--dir", str(testbed.dir), "up", "--providers", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "already running" in result.stderr
    assert "make testbed-down" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert testbed.healthy()


def test_status_reports_healthy(testbed: Testbed) -> None:
    result = subprocess.run(
        [CLI, "--dir", str(testbed.dir), "status"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout
    for name in testbed.clusters:
        assert name in result.stdout


def test_prometheus_on_demand_scrapes_the_bed(testbed: Testbed) -> None:
    etcd_target = testbed.state.etcd_url.removeprefix("http://")
    handle = testbed.start_prometheus([etcd_target])
    try:
        assert Testbed.load(testbed.dir).prometheus == handle
        wait_for(
            lambda: query_values(handle, "etcd_server_has_leader") == [1.0],
            timeout=30,
            what="Prometheus to scrape etcd",
        )
    finally:
        testbed.stop_prometheus()
    assert "prometheus" not in Testbed.load(testbed.dir).state.processes
    assert testbed.healthy()


# --------------------------------------------------------------------------- fault helpers


def test_apiserver_stop_and_start_keeps_objects_and_port(testbed: Testbed) -> None:
    provider = PROVIDERS[-1]
    handle = testbed.providers[provider]
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    name = unique("survivor")
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "v"})
    )
    old_pid = testbed.process(f"{provider}/kube-apiserver").pid

    testbed.stop_apiserver(provider)
    assert not is_alive(old_pid)
    assert not http_ok(f"{handle.server}/readyz", token=handle.admin_token, ca_file=handle.ca_file)

    testbed.start_apiserver(provider)
    assert testbed.providers[provider].server == handle.server
    assert testbed.process(f"{provider}/kube-apiserver").pid != old_pid
    assert core.read_namespaced_config_map(name, "default").data == {"k": "v"}
    reattached = Testbed.load(testbed.dir)  # the new pid is in the state file
    assert (
        reattached.process(f"{provider}/kube-apiserver").pid
        == testbed.process(f"{provider}/kube-apiserver").pid
    )
    core.delete_namespaced_config_map(name, "default")
    api.close()  # type: ignore[no-untyped-call]
    wait_for(testbed.healthy, timeout=30, what="the bed to be healthy again")


def test_killed_kwok_restarts_and_nodes_stay_ready(
    testbed: Testbed, namespace: NamespaceFactory
) -> None:
    provider = PROVIDERS[0]
    component = f"{provider}/kwok"
    old = testbed.process(component)
    testbed.kill(component)
    assert not is_alive(old.pid)
    assert f"{component} (pid {old.pid}) is not running" in testbed.problems()
    testbed.restart(component)
    assert is_alive(testbed.process(component).pid)
    ns = namespace(provider, prefix="after-kwok")
    api = testbed.api_client(provider)
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, pod("after"))
    wait_pod_ready(core, ns, "after")
    api.close()  # type: ignore[no-untyped-call]
    assert testbed.healthy()
