"""Billing accounts and the payment guard on the real bed: real tenants, real anvil escrow.

Behaviour matrix:

- a tenant (ServiceAccount bound to ``kommons-tenant``) creates a lease naming another account
  in ``spec.billingAccount`` -> the field is pruned by the API server (no such field), the lease and
  its placement are billed to the account selecting its namespace; relabelling its namespace
  and writing the other account -> 403.
- two accounts select one namespace -> the first by name pays, the lease's PaymentOK message
  names both; the first account's ``status.namespaces`` lists it, the second's does not.
- escrow on anvil (a payer of the bed's Settlement contract), hub with a short grace: a lease
  runs while the escrow covers one replica for the horizon (PaymentOK=True, account Covered);
  scaled to 2 replicas the escrow no longer covers it -> PaymentOK=False InsufficientEscrow
  with balance, burn and horizon, still running; after the grace -> phase Suspended,
  Ready=False PaymentSuspended, spec.suspend untouched, no pod left on the provider; a
  deposit through the contract -> the lease resumes Running 2/2 and the account is Covered.

- the chain unreachable (a cut TCP proxy between the hub and anvil) while an account is Low
  and its grace ends -> the account keeps its last known figures and standing, balanceStale,
  PaymentOK says stale, the lease is not suspended; the link back -> suspended.

The NoBillingAccount refusal is
``test_walking_skeleton.py::test_namespace_without_billing_account_is_refused``
(PaymentOK=False NoBillingAccount, nothing placed).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.hub.onboarding import service_account_token, token_kubeconfig
from kommons.kube import Forbidden, Kube, KubeError, connect
from kommons.kube import resources as r
from kommons.money import format_units, parse_units
from kommons.scheduler.money import replica_price
from kommons.trust.policies import tenant_bindings
from kommons_testbed.processes import wait_for
from kommons_testbed.proxy import TcpProxy
from kommons_testbed.settlement_bed import fresh_payer
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
        # the payment guard (the bed runs anvil) lists it under the account that pays only
        wait_for(
            lambda: namespace in (_standing(hub, first).get("namespaces") or ()),
            timeout=120,
            what=f"{first} to list {namespace}",
            every=0.5,
        )
        assert namespace not in (_standing(hub, second).get("namespaces") or ())
        hub.delete(r.COMPUTE_LEASES, "both", namespace)
    finally:
        for name in (first, second):
            with contextlib.suppress(KubeError):
                hub.delete(r.BILLING_ACCOUNTS, name)


# --- the guard on anvil -------------------------------------------------------------------

GRACE = "60"
"""The hub's grace in this module: long enough to see a lease run on with PaymentOK=False on
a loaded bed (the hub re-plans it as soon as its account turns Low), short for a test."""
HORIZON = 3600


PAYMENT_ARGS = ("--payment-grace-seconds", GRACE, "--balance-poll-seconds", "1")


@pytest.fixture(scope="module")
def payment_hub(stack: Stack) -> Iterator[Stack]:
    """The hub restarted with a short grace and poll; the bed's default hub again afterwards."""
    assert stack.settlement is not None, "the bed has no Settlement deployment (anvil)"
    with stack.hub_with(*PAYMENT_ARGS):  # after the bed's chain options: a later one wins
        yield stack


def _new_account(hub: Kube, payer: str) -> tuple[str, str]:
    """A BillingAccount for ``payer`` and a namespace it alone pays for: (account, namespace)."""
    tag = uuid.uuid4().hex[:6]
    account = f"pay-{tag}"
    hub.create(r.BILLING_ACCOUNTS, _account(account, payer, {"payment-test": tag}))
    return account, _namespace(hub, {"payment-test": tag})


def _standing(hub: Kube, account: str) -> JSON:
    return dict(hub.get(r.BILLING_ACCOUNTS, account).get("status") or {})


def _replica_price(hub: Kube, provider: str) -> int:
    """prov-a's price of one replica of 1 cpu and 1 GiB, in base units per hour."""
    pricing = hub.get(r.PROVIDERS, provider)["spec"]["pricing"]
    return replica_price(
        cpu_milli=1000,
        memory_bytes=2**30,
        gpu_count=0,
        cpu_core_hour=parse_units(pricing["cpuCoreHour"]),
        memory_gib_hour=parse_units(pricing["memoryGiBHour"]),
        gpu_hour=0,
    )


def _pods(provider: Kube, namespace: str) -> list[JSON]:
    return [
        p for p in provider.list(r.PODS, namespace) if not p["metadata"].get("deletionTimestamp")
    ]


def test_low_escrow_suspends_after_the_grace_and_a_top_up_resumes(
    payment_hub: Stack, hub: Kube, provider_kube: Callable[[str], Kube]
) -> None:
    deployment = payment_hub.settlement
    assert deployment is not None
    funder = deployment.chain(deployment.payers[-1])  # deposits for the account below
    payer = "0x" + secrets.token_hex(20)  # a fresh escrow account: 0 on chain
    account, namespace = _new_account(hub, payer)
    price = _replica_price(hub, "prov-a")
    # 1.5 replica-hours: covers one replica for the horizon, not two
    funder.deposit(price * 3 // 2, payer=payer)
    assert funder.escrow_of(payer) == price * 3 // 2

    body = lease_body("web", namespace, replicas=1, cpu="1", memory="1Gi")
    body["spec"]["placement"] = {"providers": ["prov-a"]}
    hub.create(r.COMPUTE_LEASES, body, namespace)
    running = wait_lease(
        hub,
        namespace,
        "web",
        lambda lease: (
            (lease.get("status") or {}).get("phase") == "Running"
            and _condition(lease, "PaymentOK").get("reason") == "EscrowCovers"
        ),
        what="web Running with PaymentOK=True EscrowCovers",
        timeout=120,
    )
    assert _condition(running, "PaymentOK")["status"] == "True"
    assert running["status"]["placements"][0]["pricePerHour"] == format_units(price)
    status = hub.get(r.BILLING_ACCOUNTS, account)["status"]
    assert status["standing"] == "Covered"
    assert status["escrowBalance"] == format_units(price * 3 // 2)
    assert status["namespaces"] == [namespace]

    # two replicas burn 2 replica-hours per horizon: short -> PaymentOK=False, still running
    hub.patch(r.COMPUTE_LEASES, "web", {"spec": {"replicas": 2}}, namespace)
    low = wait_lease(
        hub,
        namespace,
        "web",
        lambda lease: _condition(lease, "PaymentOK").get("reason") == "InsufficientEscrow",
        what="web PaymentOK=False InsufficientEscrow",
        timeout=float(GRACE),
    )
    message = _condition(low, "PaymentOK")["message"]
    assert _condition(low, "PaymentOK")["status"] == "False"
    assert f"escrow {format_units(price * 3 // 2)}" in message
    assert f"{HORIZON}s of the projected burn of {format_units(2 * price)}/h" in message
    assert "unless at least" in message
    assert "paymentSuspendedAt" not in low["status"]
    assert low["status"]["phase"] != "Suspended"

    # the grace ends: suspended by the hub, the tenant's spec untouched, no pod left
    suspended = wait_lease(
        hub,
        namespace,
        "web",
        lambda lease: (lease.get("status") or {}).get("phase") == "Suspended",
        what="web Suspended for payment",
        timeout=float(GRACE) + 120,
    )
    assert suspended["spec"].get("suspend", False) is False
    assert suspended["status"]["paymentSuspendedAt"]
    assert _condition(suspended, "Ready")["reason"] == "PaymentSuspended"
    assert _condition(suspended, "PaymentOK")["reason"] == "PaymentSuspended"
    assert hub.get(r.BILLING_ACCOUNTS, account)["status"]["standing"] == "Suspended"
    provider_ns = running["status"]["placements"][0]["namespace"]
    prov_a = provider_kube("prov-a")
    wait_for(
        lambda: _pods(prov_a, provider_ns) == [],
        timeout=120,
        what="web's pods gone from prov-a",
        every=0.5,
    )

    # a top-up through the contract covers two replicas again: resumed, Running 2/2
    funder.deposit(price * 3 // 2, payer=payer)
    resumed = wait_lease(
        hub,
        namespace,
        "web",
        lambda lease: (
            (lease.get("status") or {}).get("phase") == "Running"
            and lease["status"].get("ready") == "2/2"
        ),
        what="web resumed Running 2/2",
        timeout=180,
    )
    assert "paymentSuspendedAt" not in resumed["status"]
    assert _condition(resumed, "PaymentOK")["reason"] == "EscrowCovers"
    assert hub.get(r.BILLING_ACCOUNTS, account)["status"]["standing"] == "Covered"
    # a resume may re-place the replicas (new placements, new namespaces): count them all
    resumed_namespaces = {p["namespace"] for p in resumed["status"]["placements"]}
    assert {p["provider"] for p in resumed["status"]["placements"]} == {"prov-a"}
    wait_for(
        lambda: sum(len(_pods(prov_a, ns)) for ns in resumed_namespaces) == 2,
        timeout=60,
        what="web's 2 pods on prov-a",
        every=0.5,
    )
    reasons = [e["reason"] for e in hub.list(r.EVENTS, namespace)]
    assert {"InsufficientEscrow", "PaymentSuspended", "PaymentResumed"} <= set(reasons), reasons

    hub.delete(r.COMPUTE_LEASES, "web", namespace)
    hub.delete(r.BILLING_ACCOUNTS, account)


def test_a_pending_withdrawal_is_owed_by_the_escrow(payment_hub: Stack, hub: Kube) -> None:
    deployment = payment_hub.settlement
    assert deployment is not None
    price = _replica_price(hub, "prov-a")
    payer = fresh_payer(deployment, deposit=price * 3)  # 3 replica-hours: covers 1 replica
    account, namespace = _new_account(hub, payer.address)
    body = lease_body("web", namespace, replicas=1, cpu="1", memory="1Gi")
    body["spec"]["placement"] = {"providers": ["prov-a"]}
    hub.create(r.COMPUTE_LEASES, body, namespace)
    wait_for(
        lambda: (
            _standing(hub, account).get("standing") == "Covered"
            and _standing(hub, account).get("burnPerHour") == format_units(price)
        ),
        timeout=120,
        what=f"{account} Covered, burning one replica",
        every=0.5,
    )

    # the payer asks for 2.5 replica-hours back: what is left no longer covers the horizon
    chain = deployment.chain(payer)
    chain.request_withdrawal(price * 5 // 2)
    wait_for(
        lambda: _standing(hub, account).get("standing") == "Low",
        timeout=60,
        what=f"{account} Low once the withdrawal is pending",
        every=0.5,
    )
    status = _standing(hub, account)
    assert status["escrowBalance"] == format_units(price * 3)  # still in escrow on chain
    assert status["pendingWithdrawal"] == format_units(price * 5 // 2)
    ok = next(c for c in status["conditions"] if c["type"] == "PaymentOK")
    assert f"pending withdrawal {format_units(price * 5 // 2)}" in ok["message"]
    lease = wait_lease(
        hub,
        namespace,
        "web",
        lambda lease: _condition(lease, "PaymentOK").get("reason") == "InsufficientEscrow",
        what="web PaymentOK=False InsufficientEscrow",
        timeout=60,
    )
    assert "paymentSuspendedAt" not in lease["status"]
    hub.delete(r.COMPUTE_LEASES, "web", namespace)
    hub.delete(r.BILLING_ACCOUNTS, account)


def test_a_stale_balance_never_suspends(
    payment_hub: Stack, hub: Kube, provider_kube: Callable[[str], Kube]
) -> None:
    deployment = payment_hub.settlement
    assert deployment is not None
    host, port = deployment.rpc_url.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    try:
        payment_hub.restart_hub(*PAYMENT_ARGS, "--chain-rpc", f"http://{host}:{proxy.port}")
        payer = "0x" + secrets.token_hex(20)  # nothing in escrow: short as soon as it burns
        account, namespace = _new_account(hub, payer)
        hub.create(r.COMPUTE_LEASES, lease_body("web", namespace, replicas=1), namespace)
        wait_for(
            lambda: _standing(hub, account).get("standing") == "Low",
            timeout=120,
            what=f"{account} Low",
            every=0.3,
        )
        proxy.cut()  # the chain is unreachable from the hub from now on
        low = _standing(hub, account)
        grace_end = datetime.fromisoformat(low["graceEndsAt"])
        wait_for(
            lambda: bool(_standing(hub, account).get("balanceStale")),
            timeout=60,
            what=f"{account}'s balance stale",
            every=0.3,
        )
        # past the grace (and a few polls), still Low: no suspension on a stale read
        wait_for(
            lambda: datetime.now(UTC) > grace_end + timedelta(seconds=5),
            timeout=float(GRACE) + 30,
            what="the grace to end",
            every=0.5,
        )
        stale = _standing(hub, account)
        assert stale["standing"] == "Low"
        assert stale["balanceStale"] is True
        assert stale["balanceCheckedAt"] == low["balanceCheckedAt"]
        ok = next(c for c in stale["conditions"] if c["type"] == "PaymentOK")
        assert ok["status"] == "False"
        assert "balance stale" in ok["message"]
        assert "no lease is suspended on a stale read" in ok["message"]
        lease = hub.get(r.COMPUTE_LEASES, "web", namespace)
        assert "paymentSuspendedAt" not in lease["status"]
        assert lease["status"]["phase"] != "Suspended"
        assert "balance stale" in _condition(lease, "PaymentOK")["message"]

        proxy.restore()  # a fresh read, still short and past the grace: suspended
        wait_lease(
            hub,
            namespace,
            "web",
            lambda lease: (lease.get("status") or {}).get("phase") == "Suspended",
            what="web Suspended once the balance is read again",
            timeout=120,
        )
        assert _standing(hub, account)["standing"] == "Suspended"
        hub.delete(r.COMPUTE_LEASES, "web", namespace)
        hub.delete(r.BILLING_ACCOUNTS, account)
    finally:
        proxy.close()
        payment_hub.restart_hub(*PAYMENT_ARGS)
