"""Fixtures for the Kommons stack on the bed: the hub operator and one agent per provider.

``stack`` starts (once per session) CRDs, onboarding, ``kommons hub`` and ``kommons agent``
processes against the real bed, plus a pool and a billing account shared by the tests;
``tenant`` gives each test its own billed tenant namespace on the hub.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.manifests import lease_manifest
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack, start_stack

TENANT_LABEL = "kommons.io/tenant"
BILLING_LABEL = "kommons.io/billing"
POOL = "it-pool"
ACCOUNT = "it-account"


@pytest.fixture(scope="session")
def stack(testbed: Testbed) -> Iterator[Stack]:
    """The hub and agents, running for the whole session; stopped at its end."""
    existing = Stack.load(testbed.dir, testbed)
    if existing is not None:
        existing.down()
    # The shared hub reads escrow balances but runs no settlement loop: a deleted lease goes at
    # once instead of waiting for its epochs to settle. Settlement tests start a settling one.
    running = start_stack(testbed, settle=False)
    hub = running.hub_kube()
    hub.apply(
        r.PROVIDER_POOLS,
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "ProviderPool",
            "metadata": {"name": POOL},
            "spec": {
                "strategy": "LowestPrice",
                "tenantNamespaceSelector": {
                    "matchExpressions": [{"key": TENANT_LABEL, "operator": "Exists"}]
                },
            },
        },
    )
    hub.apply(
        r.BILLING_ACCOUNTS,
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "BillingAccount",
            "metadata": {"name": ACCOUNT},
            "spec": {
                "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "namespaceSelector": {"matchLabels": {BILLING_LABEL: "yes"}},
            },
        },
    )
    try:
        yield running
    finally:
        running.down()


@pytest.fixture(scope="session")
def hub(stack: Stack) -> Kube:
    """Admin client of the hub."""
    return stack.hub_kube()


@pytest.fixture(scope="session")
def provider_kube(testbed: Testbed) -> Callable[[str], Kube]:
    """``provider_kube("prov-a")``: admin client of a provider cluster."""
    clients: dict[str, Kube] = {}

    def get(name: str) -> Kube:
        if name not in clients:
            clients[name] = connect(testbed.providers[name].kubeconfig, field_manager="tests")
        return clients[name]

    return get


def make_namespace(hub: Kube, *, billed: bool = True) -> str:
    """A fresh tenant namespace on the hub (billed to the shared account unless told)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    labels = {TENANT_LABEL: name}
    if billed:
        labels[BILLING_LABEL] = "yes"
    hub.create(
        r.NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
    )
    return name


def delete_namespace(hub: Kube, name: str, *, wait: float = 0.0) -> None:
    """Delete a namespace (and so its leases); with ``wait`` > 0, until it is gone.

    A namespace goes once the hub has finished every lease in it, i.e. once their placements
    are gone from the providers: waiting leaves a quiet market to the next test.
    """
    if hub.get_or_none(r.NAMESPACES, name) is not None:
        hub.delete(r.NAMESPACES, name)
    if wait > 0:
        wait_for(
            lambda: hub.get_or_none(r.NAMESPACES, name) is None,
            timeout=wait,
            what=f"namespace {name} and its leases gone",
            every=2.0,
        )


@pytest.fixture
def tenant(hub: Kube) -> Iterator[str]:
    """A billed tenant namespace for one test, deleted with its leases after it.

    Leases left running would keep their placements on the providers and their agents writing
    metering checkpoints for the rest of the session: the load grows with every test.
    """
    name = make_namespace(hub)
    yield name
    delete_namespace(hub, name)


def lease_body(
    name: str,
    namespace: str,
    *,
    replicas: int = 2,
    cpu: str = "500m",
    memory: str = "256Mi",
    gpu: dict[str, Any] | None = None,
    max_price: str = "5.00",
    pool: str = POOL,
) -> dict[str, Any]:
    """A restricted-compliant ComputeLease (pods labelled ``app: <name>``)."""
    return lease_manifest(
        name,
        namespace,
        pool=pool,
        replicas=replicas,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        max_price=max_price,
        labels={"app": name},
    )


def wait_lease(
    hub: Kube,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll a lease until ``check`` holds; return it."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.clear()
        seen.update(hub.get(r.COMPUTE_LEASES, name, namespace))
        return check(seen)

    try:
        wait_for(done, timeout=timeout, what=what, every=0.3)
    except Exception as exc:
        raise AssertionError(f"{exc}; last status: {seen.get('status')}") from exc
    return dict(seen)


def kommons(*args: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``kommons`` command (this interpreter's) with ``--kubeconfig``; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "kommons.cli", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def tenant_kubeconfig(hub: Kube, stack: Stack, namespace: str, name: str) -> Path:
    """Credentials of a tenant: ServiceAccount ``name`` of ``namespace``, bound as its tenant.

    ``kommons-tenant`` in the namespace and ``kommons-market-viewer`` cluster-wide
    (:func:`~kommons.trust.policies.tenant_bindings`); a TokenRequest token, valid an hour.
    """
    from kommons.hub.onboarding import service_account_token, token_kubeconfig
    from kommons.trust.policies import tenant_bindings

    hub.create(
        r.SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        namespace,
    )
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    kinds = {"RoleBinding": r.ROLE_BINDINGS, "ClusterRoleBinding": r.CLUSTER_ROLE_BINDINGS}
    for body in tenant_bindings(namespace, subject):
        hub.apply(kinds[body["kind"]], body)
    token = service_account_token(hub, namespace, name, seconds=3600)
    path = stack.dir / f"tenant-{namespace}-{name}.kubeconfig"
    path.write_text(token_kubeconfig(hub, name, token, namespace))
    path.chmod(0o600)
    return path
