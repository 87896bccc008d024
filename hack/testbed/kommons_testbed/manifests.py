"""Manifests the tests, benches and chaos runs apply to the hub: leases, pools, billing accounts.

One place builds them, so a change to what admission asks of a lease (Pod Security
``restricted``, the fields Kommons refuses) is made once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kommons.kube import Kube
from kommons.kube import resources as r

JSON = dict[str, Any]

API_VERSION = "kommons.io/v1alpha1"
NGINX = "nginxinc/nginx-unprivileged:1.27-alpine"
"""The image of the tests' leases (kwok never pulls it)."""
DEFAULT_PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
"""Anvil's account 1: the escrow address of the billing accounts the bed's tests share."""


def restricted_container(name: str = "app", image: str = NGINX) -> JSON:
    """A container Pod Security ``restricted`` admits (non-root, no capabilities, seccomp)."""
    return {
        "name": name,
        "image": image,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def lease_manifest(
    name: str,
    namespace: str,
    *,
    pool: str,
    replicas: int = 1,
    cpu: str = "100m",
    memory: str = "64Mi",
    gpu: Mapping[str, Any] | None = None,
    max_price: str = "5.00",
    image: str = NGINX,
    labels: Mapping[str, str] | None = None,
) -> JSON:
    """A restricted-compliant ``ComputeLease`` of ``pool``.

    Args:
        name: Lease name.
        namespace: Tenant namespace on the hub.
        pool: The ``ProviderPool`` it leases from.
        replicas: ``spec.replicas``.
        cpu: Per-replica cpu request.
        memory: Per-replica memory request.
        gpu: Per-replica GPU request (``{"count": 1, "model": ...}``), if any.
        max_price: ``spec.maxPricePerHour``.
        image: The container's image.
        labels: Pod template labels (none by default).
    """
    resources: JSON = {"cpu": cpu, "memory": memory}
    if gpu:
        resources["gpu"] = dict(gpu)
    template: JSON = {"spec": {"containers": [restricted_container(image=image)]}}
    if labels:
        template["metadata"] = {"labels": dict(labels)}
    return {
        "apiVersion": API_VERSION,
        "kind": "ComputeLease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "poolRef": {"name": pool},
            "replicas": replicas,
            "resources": resources,
            "maxPricePerHour": max_price,
            "template": template,
        },
    }


def exists(label: str) -> JSON:
    """A label selector matching every object that has ``label``."""
    return {"matchExpressions": [{"key": label, "operator": "Exists"}]}


def apply_market(
    hub: Kube,
    *,
    pool: str,
    strategy: str,
    tenants: JSON,
    account: str,
    billed: JSON,
    payer: str = DEFAULT_PAYER,
) -> None:
    """Apply (idempotently) a pool of every provider and the billing account paying for it.

    Args:
        hub: Admin client of the hub.
        pool: Name of the ``ProviderPool``.
        strategy: Its scheduling strategy (``LowestPrice``, ``Spread`` ...).
        tenants: Its ``tenantNamespaceSelector``: who may lease from it.
        account: Name of the ``BillingAccount``.
        billed: The account's ``namespaceSelector``: whose leases it pays for.
        payer: The account's escrow address.
    """
    hub.apply(
        r.PROVIDER_POOLS,
        {
            "apiVersion": API_VERSION,
            "kind": "ProviderPool",
            "metadata": {"name": pool},
            "spec": {"strategy": strategy, "tenantNamespaceSelector": tenants},
        },
    )
    hub.apply(
        r.BILLING_ACCOUNTS,
        {
            "apiVersion": API_VERSION,
            "kind": "BillingAccount",
            "metadata": {"name": account},
            "spec": {"address": payer, "namespaceSelector": billed},
        },
    )


def apply_namespace(hub: Kube, name: str, labels: Mapping[str, str]) -> None:
    """Apply a tenant namespace on the hub with ``labels``."""
    hub.apply(
        r.NAMESPACES,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels)},
        },
    )
