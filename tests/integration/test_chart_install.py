"""The Helm chart installed for real on the bed, and its RBAC proven sufficient and minimal.

One test, in order (each step needs the one before):

1. ``helm install`` of role hub into the hub cluster (``--take-ownership``: the shared stack
   installed the CRDs and the trust boundary already, as ``kommons install-policies`` does) and
   of role provider into provider ``prov-a``'s cluster, with a Secret holding the hub
   kubeconfig onboarding wrote -> both releases ``deployed``; the CRDs carry the keep policy;
   the lease roles are aggregated into the standard ``edit`` role (a tenant bound to ``edit``
   may create ComputeLeases, not LeasePlacements, not a lease's status).
2. The hub runs with the args of the chart's Deployment and the token of the chart's hub
   ServiceAccount (``kubectl create token``); ``prov-a``'s agent with the config the chart
   rendered and the token of the chart's agent ServiceAccount -> a lease pinned to ``prov-a``
   reaches Running, ``kommons logs`` shows both replicas' logs, and the lease's deletion
   removes its namespace from ``prov-a``.
3. The same tokens are refused outside their scope: the hub's on changing or deleting Secrets,
   pods, RBAC, CRDs and tenants' lease specs; the agent's on reading Secrets, RBAC, pods' exec
   and nodes' writes.
4. ``helm uninstall`` of both: the CRDs (and so every lease) stay; the stack's trust boundary
   is re-applied for the tests after this one.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kommons.agent.workload import target_namespace
from kommons.hub.onboarding import install_policies
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed import tools
from kommons_testbed.bed import Testbed
from kommons_testbed.kwok import POD_LOG
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import kommons, lease_body, wait_lease

pytestmark = pytest.mark.bed

CHART = Path(__file__).resolve().parents[2] / "helm" / "kommons"
RELEASE = "kommons"
NAMESPACE = "kommons-chart"
PROVIDER = "prov-a"


def _run(binary: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(tools.binary(binary)), *args], capture_output=True, text=True, check=False, timeout=300
    )
    if ok:
        assert done.returncode == 0, f"{binary} {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


def _kubectl(kubeconfig: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("kubectl", "--kubeconfig", str(kubeconfig), *args, ok=ok)


def _helm(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("helm", "--kubeconfig", str(kubeconfig), "-n", NAMESPACE, *args)


def _token_kubeconfig(admin: Path, service_account: str, out: Path) -> Path:
    """A kubeconfig of the same cluster whose user is ``service_account``'s token."""
    token = _kubectl(
        admin, "-n", NAMESPACE, "create", "token", service_account, "--duration", "2h"
    ).stdout.strip()
    config = yaml.safe_load(admin.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def _can(kubeconfig: Path, verb: str, what: str, *where: str) -> bool:
    """``kubectl auth can-i``: the API server's own authorizer answers."""
    answer = _kubectl(kubeconfig, "auth", "can-i", verb, what, *where, ok=False)
    return answer.stdout.strip() == "yes"


def _deployment_args(kubeconfig: Path, name: str) -> list[str]:
    deployment = json.loads(
        _kubectl(kubeconfig, "-n", NAMESPACE, "get", "deployment", name, "-o", "json").stdout
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def _wait_edit_aggregates_leases(admin: Path, tenant: str) -> None:
    """The controller manager aggregates the lease roles into ``edit`` (a few seconds)."""
    as_dev = f"--as=system:serviceaccount:{tenant}:dev"
    for _ in range(60):
        if _can(admin, "create", "computeleases.kommons.io", "-n", tenant, as_dev):
            return
        time.sleep(1)
    raise AssertionError("the edit role never aggregated kommons-lease-edit")


@pytest.fixture
def chart_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def clean_up(stack: Stack, testbed: Testbed, hub: Kube) -> Iterator[None]:
    """Whatever the test left: releases, namespaces, the stack's own agent and policies."""
    yield
    started = datetime.now(UTC)
    agent = f"agent-{PROVIDER}"  # back on the stack's own credentials, before they go
    if stack.alive(agent):
        stack.stop(agent)
    stack.start_agent(PROVIDER)
    hub_admin = stack.hub_kubeconfig
    provider_admin = testbed.providers[PROVIDER].kubeconfig
    for kubeconfig in (hub_admin, provider_admin):
        _run(
            "helm",
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            NAMESPACE,
            "uninstall",
            RELEASE,
            "--ignore-not-found",
            ok=False,
        )
        _kubectl(
            kubeconfig,
            "delete",
            "namespace",
            NAMESPACE,
            "--ignore-not-found",
            "--wait=false",
            ok=False,
        )
    install_policies(hub)  # uninstalling the hub role removed the stack's trust boundary
    stack.wait_providers_ready(timeout=120, since=started)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("clean_up")
def test_the_chart_installs_both_roles_and_its_rbac_runs_the_market(
    stack: Stack,
    testbed: Testbed,
    hub: Kube,
    tenant: str,
    provider_kube: Callable[[str], Kube],
    chart_dir: Path,
) -> None:
    hub_admin = stack.hub_kubeconfig
    provider_admin = testbed.providers[PROVIDER].kubeconfig

    # 1. install both roles
    _helm(
        hub_admin,
        "install",
        RELEASE,
        str(CHART),
        "--create-namespace",
        "--take-ownership",
        "--set",
        "hub.replicas=1",
        "--set",
        "monitoring.dashboard.enabled=true",
    )
    status = json.loads(_helm(hub_admin, "status", RELEASE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    crd = hub.get(r.CRDS, "computeleases.kommons.io")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    _kubectl(provider_admin, "create", "namespace", NAMESPACE)
    _kubectl(
        provider_admin,
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "hub-kubeconfig",
        f"--from-file=kubeconfig={stack.agent_kubeconfig(PROVIDER)}",
    )
    declared = yaml.safe_load(stack.agent_config(PROVIDER).read_text())
    values = chart_dir / "provider-values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "role": "provider",
                "provider": {
                    "name": PROVIDER,
                    "hubKubeconfigSecret": {"name": "hub-kubeconfig"},
                    **declared,
                },
            }
        )
    )
    _helm(provider_admin, "install", RELEASE, str(CHART), "-f", str(values))
    status = json.loads(_helm(provider_admin, "status", RELEASE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"

    _kubectl(
        hub_admin,
        "-n",
        tenant,
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        f"--serviceaccount={tenant}:dev",
    )
    _wait_edit_aggregates_leases(hub_admin, tenant)
    as_dev = f"--as=system:serviceaccount:{tenant}:dev"
    assert not _can(hub_admin, "create", "leaseplacements.kommons.io", "-n", tenant, as_dev)
    assert not _can(
        hub_admin, "patch", "computeleases.kommons.io", "--subresource=status", "-n", tenant, as_dev
    )
    assert not _can(hub_admin, "create", "billingaccounts.kommons.io", as_dev)

    # 2. run the market with the chart's ServiceAccounts
    hub_token = _token_kubeconfig(hub_admin, "kommons-hub", chart_dir / "hub-sa.kubeconfig")
    agent_token = _token_kubeconfig(
        provider_admin, "kommons-provider", chart_dir / "agent-sa.kubeconfig"
    )
    rendered = json.loads(
        _kubectl(
            provider_admin, "-n", NAMESPACE, "get", "configmap", "kommons-provider", "-o", "json"
        ).stdout
    )
    agent_config = chart_dir / "agent.yaml"
    agent_config.write_text(rendered["data"]["agent.yaml"])
    hub_args = [
        a
        for a in _deployment_args(hub_admin, "kommons-hub")[1:]
        if not a.startswith("--metrics-port")
    ]

    stack.stop(f"agent-{PROVIDER}")
    stack.start_agent(PROVIDER, kubeconfig=agent_token, config=agent_config)
    with stack.hub_with(*hub_args, "--kubeconfig", str(hub_token), "--leader-namespace", NAMESPACE):
        body = lease_body("charted", tenant, replicas=2)
        body["spec"]["placement"] = {"providers": [PROVIDER]}
        hub.create(r.COMPUTE_LEASES, body, tenant)
        running = wait_lease(
            hub,
            tenant,
            "charted",
            lambda lease: (lease.get("status") or {}).get("phase") == "Running",
            what="lease charted Running",
            timeout=180,
        )
        assert [p["provider"] for p in running["status"]["placements"]] == [PROVIDER]
        election = hub.get(r.LEASES, "kommons-hub", NAMESPACE)
        assert election["spec"]["holderIdentity"] == "hub"
        # `kommons logs`: the chart's hub relays, the chart's agent reads pods/log
        shown = kommons("logs", "charted", "-n", tenant, "--tail", "1", kubeconfig=hub_admin)
        assert shown.returncode == 0, shown.stderr
        assert shown.stderr == ""
        assert shown.stdout.count(POD_LOG.read_text().splitlines()[-1].split(" ", 3)[3]) == 2

        placements = hub.list(
            r.LEASE_PLACEMENTS, label_selector="kommons.io/lease-namespace=" + tenant
        )
        assert placements, "the running lease has its placement"
        hub.delete(r.COMPUTE_LEASES, "charted", tenant)
        provider = provider_kube(PROVIDER)
        wait_for(
            lambda: hub.get_or_none(r.COMPUTE_LEASES, "charted", tenant) is None,
            timeout=120,
            what="lease charted gone",
        )
        for placement in placements:
            workload = target_namespace(placement["metadata"]["name"])
            wait_for(
                lambda: provider.get_or_none(r.NAMESPACES, workload) is None,  # noqa: B023
                timeout=120,
                what=f"namespace {workload} gone from {PROVIDER}",
            )

    # 3. the chart's tokens, outside their scope
    for verb, what, *where in [
        # configFrom: the hub reads tenants' Secrets and writes copies, never changes or
        # deletes a Secret
        ("update", "secrets", "-n", "kube-system"),
        ("delete", "secrets", "-n", "kube-system"),
        ("create", "pods", "-n", tenant),
        ("create", "clusterrolebindings"),
        ("delete", "customresourcedefinitions"),
        ("create", "computeleases.kommons.io", "-n", tenant),
        ("update", "computeleases.kommons.io", "-n", tenant),
        ("update", "leases.coordination.k8s.io", "-n", "kube-system"),
        ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
    ]:
        assert not _can(hub_token, verb, what, *where), f"hub token may {verb} {what} {where}"
    assert _can(hub_token, "patch", "computeleases.kommons.io", "--subresource=status", "-A")
    refused = _kubectl(hub_token, "-n", "kube-system", "get", "pods", ok=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr

    for verb, what, *where in [
        ("get", "secrets", "-n", NAMESPACE),
        ("list", "secrets", "-A"),
        ("create", "clusterroles"),
        ("create", "rolebindings", "-n", "default"),
        ("create", "pods/exec", "-n", "default"),
        ("create", "pods", "-n", "default"),
        ("delete", "nodes"),
        ("create", "serviceaccounts/token", "-n", NAMESPACE),
    ]:
        assert not _can(agent_token, verb, what, *where), f"agent token may {verb} {what} {where}"
    assert _can(agent_token, "create", "deployments.apps", "-n", "default")
    refused = _kubectl(agent_token, "get", "secrets", "-A", ok=False)
    assert "forbidden" in refused.stderr

    # 4. uninstall: the CRDs, and so the market's objects, stay
    _helm(provider_admin, "uninstall", RELEASE)
    _helm(hub_admin, "uninstall", RELEASE)
    assert hub.get_or_none(r.CRDS, "computeleases.kommons.io") is not None
    assert hub.get_or_none(r.PROVIDERS, PROVIDER) is not None
