"""Onboard a provider on the hub: its namespace, least-privilege RBAC and a scoped kubeconfig.

The agent's hub credentials reach only its own namespace ``kommons-provider-<name>``
(placements, its pre-created heartbeat Lease, Events, the hub's config copies and the claims of
its settled epochs) and its own ``Provider`` (by resource
name). What the agent may change *inside* those objects is bounded by the admission policies of
:mod:`kommons.trust.policies`, installed by :func:`install_policies`. The provider's identity and
standing (region, labels such as the tier) are set here, by the hub admin, never by the agent.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from kommons.api.common import SecretKeyRef
from kommons.api_names import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_PROVIDER,
    MANAGER,
    provider_namespace,
)
from kommons.kube import Kube, Resource
from kommons.kube import resources as r
from kommons.trust.policies import AGENT_SERVICE_ACCOUNT, HEARTBEAT_LEASE, hub_policy_objects

JSON = dict[str, Any]
__all__ = [
    "AGENT_SERVICE_ACCOUNT",
    "HEARTBEAT_LEASE",
    "Onboarding",
    "install_policies",
    "missing_policies",
    "onboard",
]

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_RESERVED_LABELS = (LABEL_MANAGED_BY, LABEL_PROVIDER)


class OnboardingError(ValueError):
    """The admin's onboarding request is invalid; the message names the field."""


@dataclass(frozen=True)
class Onboarding:
    """What a hub admin declares when admitting a provider.

    ``region`` and ``labels`` (e.g. ``kommons.io/tier: community``, which pools select on) are
    the provider's identity on the market: only the hub admin sets them, here. ``mode`` Push
    (with ``kubeconfig_secret``, the Secret on the hub holding the provider cluster's
    kubeconfig) makes the hub run the provider's agent itself (docs/push-mode.md).
    """

    provider: str
    region: str
    payout_address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    mode: Literal["Pull", "Push"] = "Pull"
    kubeconfig_secret: SecretKeyRef | None = None

    def __post_init__(self) -> None:
        if self.mode == "Push" and self.kubeconfig_secret is None:
            raise OnboardingError(
                "--kubeconfig-secret NAMESPACE/NAME[:KEY] is required with --mode Push: the hub"
                " needs the provider cluster's kubeconfig"
            )
        if self.mode == "Pull" and self.kubeconfig_secret is not None:
            raise OnboardingError("--kubeconfig-secret is only for --mode Push")
        for key, value in self.labels.items():
            if not _LABEL_KEY.fullmatch(key) or len(key) > 316:
                raise OnboardingError(f"label key {key!r} is not a valid Kubernetes label key")
            if not _LABEL_VALUE.fullmatch(value):
                raise OnboardingError(
                    f"label {key}={value!r}: values are at most 63 letters, digits, '-', '_'"
                    " or '.', starting and ending with a letter or digit"
                )
            if key in _RESERVED_LABELS:
                raise OnboardingError(f"label {key} is set by Kommons itself; leave it out")


def parse_secret_ref(text: str) -> SecretKeyRef:
    """``NAMESPACE/NAME[:KEY]`` (from ``--kubeconfig-secret``); KEY defaults to ``kubeconfig``."""
    where, _, key = text.partition(":")
    namespace, sep, name = where.partition("/")
    if not sep or not namespace or not name:
        raise OnboardingError(f"--kubeconfig-secret {text!r}: expected NAMESPACE/NAME[:KEY]")
    try:
        return SecretKeyRef(namespace=namespace, name=name, key=key or "kubeconfig")
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise OnboardingError(f"--kubeconfig-secret {text!r}: {problems}") from exc


def _labels(provider: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_PROVIDER: provider}


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` (from ``--label``) as a dict; raises :class:`OnboardingError`."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OnboardingError(f"--label {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def rbac_objects(provider: str) -> list[JSON]:
    """Namespace, ServiceAccount, Role(+Binding), ClusterRole(+Binding), heartbeat Lease."""
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
                    # Only the heartbeat Lease the hub pre-created: resourceNames cannot limit
                    # create, so the agent gets no create at all.
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": [HEARTBEAT_LEASE],
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "apiGroups": ["", "events.k8s.io"],
                    "resources": ["events"],
                    "verbs": ["create", "patch"],
                },
                {
                    # The hub's copies of its placements' ConfigMaps and Secrets
                    # (kommons.config_copies): read by name, never written.
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get"],
                },
                {
                    # Its answers to `kommons logs` (kommons.lease_logs), in this namespace only;
                    # read and list also the hub's claims of its settled epochs
                    # (kommons-claims-<epochId>, kommons.settlement.proofs), which the
                    # admission policy kommons-agent-claims keeps it from writing.
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "list", "create", "patch", "update"],
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
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": HEARTBEAT_LEASE, "namespace": ns, "labels": labels},
            "spec": {},
        },
    ]


VALIDATING_ADMISSION_POLICIES = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicies",
    False,
    "ValidatingAdmissionPolicy",
)
VALIDATING_ADMISSION_POLICY_BINDINGS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicybindings",
    False,
    "ValidatingAdmissionPolicyBinding",
)

_KINDS = {
    "Namespace": r.NAMESPACES,
    "ServiceAccount": r.SERVICE_ACCOUNTS,
    "Role": r.ROLES,
    "RoleBinding": r.ROLE_BINDINGS,
    "ClusterRole": r.CLUSTER_ROLES,
    "ClusterRoleBinding": r.CLUSTER_ROLE_BINDINGS,
    "Lease": r.LEASES,
    "ValidatingAdmissionPolicy": VALIDATING_ADMISSION_POLICIES,
    "ValidatingAdmissionPolicyBinding": VALIDATING_ADMISSION_POLICY_BINDINGS,
}


def install_policies(
    hub: Kube, *, timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Apply the trust-boundary policies, their bindings and the tenant roles; return names.

    Waits (up to ``timeout``) until the API server has type-checked every policy
    (``status.observedGeneration``), and raises if a policy has type-check warnings: a policy
    that does not compile would refuse every agent write it matches.
    """
    names = []
    for body in hub_policy_objects():
        hub.apply(_KINDS[body["kind"]], body)
        names.append(f"{body['kind']}/{body['metadata']['name']}")
    deadline = time.monotonic() + timeout
    for body in hub_policy_objects():
        if body["kind"] != "ValidatingAdmissionPolicy":
            continue
        while True:
            current = hub.get(VALIDATING_ADMISSION_POLICIES, body["metadata"]["name"])
            status = current.get("status") or {}
            if status.get("observedGeneration") == current["metadata"].get("generation"):
                warnings = (status.get("typeChecking") or {}).get("expressionWarnings") or []
                if warnings:
                    raise RuntimeError(
                        f"policy {body['metadata']['name']} does not type-check: {warnings}"
                    )
                break
            if time.monotonic() > deadline:
                break  # no status controller (e.g. no controller manager): enforce anyway
            sleep(0.2)
    return names


def missing_policies(hub: Kube) -> list[str]:
    """Trust-boundary policies or bindings not installed on the hub (``kind/name``)."""
    return [
        f"{body['kind']}/{body['metadata']['name']}"
        for body in hub_policy_objects()
        if body["kind"].startswith("ValidatingAdmissionPolicy")
        and hub.get_or_none(_KINDS[body["kind"]], body["metadata"]["name"]) is None
    ]


def provider_object(request: Onboarding) -> JSON:
    """The ``Provider`` as onboarding creates it: admin's region and labels, zero prices."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Provider",
        "metadata": {
            "name": request.provider,
            "labels": {**request.labels, **_labels(request.provider)},
        },
        "spec": {
            **_mode_fields(request),
            "region": request.region,
            "payoutAddress": request.payout_address,
            "pricing": {"cpuCoreHour": "0", "memoryGiBHour": "0"},
        },
    }


def _mode_fields(request: Onboarding, *, patch: bool = False) -> JSON:
    """``mode`` and ``kubeconfigSecretRef`` (in a merge patch, ``None`` removes the ref)."""
    ref = request.kubeconfig_secret
    if ref is None:
        return {"mode": request.mode, "kubeconfigSecretRef": None} if patch else {"mode": "Pull"}
    return {"mode": request.mode, "kubeconfigSecretRef": ref.to_api()}


def onboard(hub: Kube, request: Onboarding, *, token_seconds: int) -> str:
    """Create (or update) everything a provider needs on the hub; return its kubeconfig text.

    The ``Provider`` is created with the admin's region, labels and payout address and zero
    prices; the agent replaces the prices (and may replace the payout address) with its own
    declarations when it registers, and the provider is not schedulable before its agent
    heartbeats and reports inventory. Onboarding an existing provider again sets its region,
    mode and the given labels (it removes no label and keeps the agent's declarations).
    """
    for body in rbac_objects(request.provider):
        hub.apply(_KINDS[body["kind"]], body)
    provider = provider_object(request)
    if hub.get_or_none(r.PROVIDERS, request.provider) is None:
        hub.create(r.PROVIDERS, provider)
    else:
        hub.patch(
            r.PROVIDERS,
            request.provider,
            {
                "metadata": {"labels": provider["metadata"]["labels"]},
                "spec": {"region": request.region, **_mode_fields(request, patch=True)},
            },
        )
    token = service_account_token(
        hub, provider_namespace(request.provider), AGENT_SERVICE_ACCOUNT, seconds=token_seconds
    )
    return agent_kubeconfig(hub, request.provider, token)


def agent_kubeconfig(hub: Kube, provider: str, token: str) -> str:
    """A kubeconfig for the agent: the hub's server and CA, the agent's token."""
    return token_kubeconfig(hub, f"kommons-hub-{provider}", token, provider_namespace(provider))


def token_kubeconfig(hub: Kube, name: str, token: str, namespace: str) -> str:
    """A kubeconfig with the hub's server and CA and a bearer ``token`` (agents, tenants)."""
    config = hub.api_client.configuration
    cluster: JSON = {"server": hub.server}
    if config.ssl_ca_cert:
        with open(config.ssl_ca_cert, "rb") as ca:
            cluster["certificate-authority-data"] = base64.b64encode(ca.read()).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kommons-hub", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [
                {
                    "name": name,
                    "context": {"cluster": "kommons-hub", "user": name, "namespace": namespace},
                }
            ],
            "current-context": name,
        },
        sort_keys=False,
    )


def service_account_token(hub: Kube, namespace: str, name: str, *, seconds: int) -> str:
    """A TokenRequest token for a ServiceAccount (the hub admin's credentials are used)."""
    response = hub.request(
        "POST",
        r.SERVICE_ACCOUNTS.path(namespace, name) + "/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    return str(response["status"]["token"])
