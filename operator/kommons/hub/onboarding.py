"""Onboard a provider on the hub: its namespace, least-privilege RBAC and a scoped kubeconfig.

The agent's hub credentials reach only its own namespace ``kommons-provider-<name>``
(placements, heartbeat Lease, Events) and its own ``Provider`` (by resource name).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import yaml

from kommons.api_names import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_PROVIDER,
    MANAGER,
    provider_namespace,
)
from kommons.kube import Kube
from kommons.kube import resources as r

JSON = dict[str, Any]
AGENT_SERVICE_ACCOUNT = "kommons-agent"


@dataclass(frozen=True)
class Onboarding:
    """What a hub admin declares when admitting a provider."""

    provider: str
    region: str
    payout_address: str


def _labels(provider: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_PROVIDER: provider}


def rbac_objects(provider: str) -> list[JSON]:
    """Namespace, ServiceAccount, Role(+Binding) and ClusterRole(+Binding) for one agent."""
    ns = provider_namespace(provider)
    name = f"kommons-provider-{provider}"
    subject = {"kind": "ServiceAccount", "name": AGENT_SERVICE_ACCOUNT, "namespace": ns}
    labels = _labels(provider)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": AGENT_SERVICE_ACCOUNT, "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "kommons-agent", "namespace": ns, "labels": labels},
            "rules": [
                {
                    "apiGroups": ["kommons.io"],
                    "resources": ["leaseplacements"],
                    "verbs": ["get", "list", "watch", "patch", "update"],
                },
                {
                    "apiGroups": ["kommons.io"],
                    "resources": ["leaseplacements/status"],
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update"],
                },
                {
                    "apiGroups": ["", "events.k8s.io"],
                    "resources": ["events"],
                    "verbs": ["create", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kommons-agent", "namespace": ns, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "kommons-agent",
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": [
                {
                    "apiGroups": ["kommons.io"],
                    "resources": ["providers", "providers/status"],
                    "resourceNames": [provider],
                    "verbs": ["get", "patch", "update"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [subject],
        },
    ]


_KINDS = {
    "Namespace": r.NAMESPACES,
    "ServiceAccount": r.SERVICE_ACCOUNTS,
    "Role": r.ROLES,
    "RoleBinding": r.ROLE_BINDINGS,
    "ClusterRole": r.CLUSTER_ROLES,
    "ClusterRoleBinding": r.CLUSTER_ROLE_BINDINGS,
}


def onboard(hub: Kube, request: Onboarding, *, token_seconds: int) -> str:
    """Create (or update) everything a provider needs on the hub; return its kubeconfig text.

    The ``Provider`` is created with the declared region and payout address and zero prices;
    the agent replaces the prices with its own when it registers, and the provider is not
    schedulable before its agent heartbeats and reports inventory.
    """
    for body in rbac_objects(request.provider):
        hub.apply(_KINDS[body["kind"]], body)
    provider = {
        "apiVersion": API_VERSION,
        "kind": "Provider",
        "metadata": {"name": request.provider, "labels": _labels(request.provider)},
        "spec": {
            "mode": "Pull",
            "region": request.region,
            "payoutAddress": request.payout_address,
            "pricing": {"cpuCoreHour": "0", "memoryGiBHour": "0"},
        },
    }
    if hub.get_or_none(r.PROVIDERS, request.provider) is None:
        hub.create(r.PROVIDERS, provider)
    token = hub.request(
        "POST",
        r.SERVICE_ACCOUNTS.path(provider_namespace(request.provider), AGENT_SERVICE_ACCOUNT)
        + "/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": token_seconds},
        },
    )["status"]["token"]
    return agent_kubeconfig(hub, request.provider, str(token))


def agent_kubeconfig(hub: Kube, provider: str, token: str) -> str:
    """A kubeconfig for the agent: the hub's server and CA, the agent's token."""
    config = hub.api_client.configuration
    cluster: JSON = {"server": hub.server}
    if config.ssl_ca_cert:
        with open(config.ssl_ca_cert, "rb") as ca:
            cluster["certificate-authority-data"] = base64.b64encode(ca.read()).decode()
    name = f"kommons-hub-{provider}"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kommons-hub", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [
                {
                    "name": name,
                    "context": {
                        "cluster": "kommons-hub",
                        "user": name,
                        "namespace": provider_namespace(provider),
                    },
                }
            ],
            "current-context": name,
        },
        sort_keys=False,
    )
