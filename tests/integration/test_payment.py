"""Billing accounts and the payment guard on the real bed: real tenants, real anvil escrow.

Behaviour matrix:

- a tenant (ServiceAccount bound to ``kommons-tenant``) creates a lease naming another account
  in ``spec.billingAccount`` -> the field is pruned by the API server (no such field), the lease and
  its placement are billed to the account selecting its namespace; relabelling its namespace
  and writing the other account -> 403.
- two accounts select one namespace -> the first by name pays, the lease's PaymentOK message
  names both; the second account's ``status.namespaces`` does not list it.
- escrow on anvil (a payer of the bed's Settlement contract), hub with a short grace: a lease
  runs while the escrow covers one replica for the horizon (PaymentOK=True, account Covered);
  scaled to 2 replicas the escrow no longer covers it -> PaymentOK=False InsufficientEscrow
  with balance, burn and horizon, still running; after the grace -> phase Suspended,
  Ready=False PaymentSuspended, spec.suspend untouched, no pod left on the provider; a
  deposit through the contract -> the lease resumes Running 2/2 and the account is Covered.

The NoBillingAccount refusal is ``test_walking_skeleton.py::test_lease_without_billing_account
_is_refused`` (PaymentOK=False NoBillingAccount, nothing placed).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kommons.hub.onboarding import service_account_token, token_kubeconfig
from kommons.kube import Forbidden, Kube, KubeError, connect
from kommons.kube import resources as r
from kommons.trust.policies import tenant_bindings
from kommons_testbed.stack import Stack
from tests.integration.conftest import ACCOUNT, lease_body, make_namespace, wait_lease

pytestmark = pytest.mark.bed
JSON = dict[str, Any]


def _condition(lease: JSON, type_: str) -> JSON:
    for condition in (lease.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return dict(condition)
    return {}


def _account(name: str, address: str, labels: dict[str, str]) -> JSON:
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "BillingAccount",
        "metadata": {"name": name},
        "spec": {"address": address, "namespaceSelector": {"matchLabels": labels}},
    }


def _namespace(hub: Kube, labels: dict[str, str]) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    labels = {"kommons.io/tenant": name, **labels}
    hub.create(
        r.NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
    )
    return name


def rbac_refused(write: Callable[[], object]) -> None:
    """Assert a write is refused by RBAC (403, the verb and resource named)."""
    with pytest.raises(Forbidden) as info:
        write()
    assert info.value.status == 403
    assert re.search(r"cannot \w+ resource", info.value.message), info.value.message


@pytest.fixture
def tenant_kube(hub: Kube, stack: Stack) -> tuple[Kube, str]:
    """A tenant: ServiceAccount ``bob`` bound to ``kommons-tenant`` in a billed namespace."""
    namespace = make_namespace(hub)
    hub.create(
        r.SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bob"}},
        namespace,
    )
    subject = {"kind": "ServiceAccount", "name": "bob", "namespace": namespace}
    kinds = {"RoleBinding": r.ROLE_BINDINGS, "ClusterRoleBinding": r.CLUSTER_ROLE_BINDINGS}
    for body in tenant_bindings(namespace, subject):
        hub.apply(kinds[body["kind"]], body)
    token = service_account_token(hub, namespace, "bob", seconds=3600)
    path = stack.dir / f"tenant-{namespace}.kubeconfig"
    path.write_text(token_kubeconfig(hub, "bob", token, namespace))
    path.chmod(0o600)
    return connect(path, field_manager="tenant"), namespace


@pytest.fixture
def victim(hub: Kube) -> Iterator[str]:
    """Somebody else's BillingAccount (selecting a namespace label the tenant has not)."""
    name = f"victim-{uuid.uuid4().hex[:6]}"
    hub.create(
        r.BILLING_ACCOUNTS,
        _account(name, "0x90F79bf6EB2c4f870365E785982E1f101E93b906", {"victim": name}),
    )
    yield name
    hub.delete(r.BILLING_ACCOUNTS, name)


def test_tenant_cannot_point_a_lease_at_another_account(
    tenant_kube: tuple[Kube, str], victim: str, hub: Kube
) -> None:
    tenant, namespace = tenant_kube
    body = lease_body("sneaky", namespace, replicas=1)
    body["spec"]["billingAccount"] = victim
    created = tenant.create(r.COMPUTE_LEASES, body, namespace)
    assert "billingAccount" not in created["spec"]  # no such field: pruned by the API server

    lease = wait_lease(
        hub,
        namespace,
        "sneaky",
        lambda lease: bool((lease.get("status") or {}).get("placements")),
        what="lease sneaky placed",
        timeout=90,
    )
    assert lease["status"]["billingAccount"] == ACCOUNT
    uid = lease["metadata"]["uid"]
    placements = hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}")
    assert [p["spec"]["billingAccount"] for p in placements] == [ACCOUNT]

    rbac_refused(
        lambda: tenant.patch(r.NAMESPACES, namespace, {"metadata": {"labels": {"victim": victim}}})
    )
    rbac_refused(
        lambda: tenant.patch(
            r.BILLING_ACCOUNTS,
            victim,
            {"spec": {"namespaceSelector": {"matchLabels": {"kommons.io/tenant": namespace}}}},
        )
    )
    rbac_refused(
        lambda: tenant.patch(
            r.COMPUTE_LEASES,
            "sneaky",
            {"status": {"billingAccount": victim}},
            namespace,
            subresource="status",
        )
    )
    assert hub.get(r.NAMESPACES, namespace)["metadata"]["labels"].get("victim") is None
    assert hub.get(r.COMPUTE_LEASES, "sneaky", namespace)["status"]["billingAccount"] == ACCOUNT
    tenant.delete(r.COMPUTE_LEASES, "sneaky", namespace)


def test_several_accounts_on_one_namespace_first_by_name_pays(hub: Kube) -> None:
    tag = uuid.uuid4().hex[:6]
    first, second = f"pay-a-{tag}", f"pay-b-{tag}"
    address = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
    for name in (second, first):
        hub.create(r.BILLING_ACCOUNTS, _account(name, address, {"shared": tag}))
    namespace = _namespace(hub, {"shared": tag})
    try:
        hub.create(r.COMPUTE_LEASES, lease_body("both", namespace, replicas=1), namespace)
        lease = wait_lease(
            hub,
            namespace,
            "both",
            lambda lease: (
                "all select namespace" in _condition(lease, "PaymentOK").get("message", "")
            ),
            what="PaymentOK naming both accounts",
            timeout=90,
        )
        message = _condition(lease, "PaymentOK")["message"]
        assert message.startswith(f"billed to BillingAccount {first}")
        assert f"BillingAccounts {first}, {second} all select namespace {namespace}" in message
        assert lease["status"]["billingAccount"] == first
        hub.delete(r.COMPUTE_LEASES, "both", namespace)
    finally:
        for name in (first, second):
            with contextlib.suppress(KubeError):
                hub.delete(r.BILLING_ACCOUNTS, name)
