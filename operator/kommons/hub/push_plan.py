"""Push mode, decided (pure): which in-hub agents to start or stop, and what the Provider says.

A ``Push`` provider's agent runs inside the hub (:mod:`kommons.hub.push`). Everything the hub
needs to decide about it is computed here from data: the referenced Secret (as read from the
hub), whether the provider cluster answered, which agents run. Every problem names the field
of the Provider it comes from and what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from kommons.api import Provider, set_condition

JSON = dict[str, Any]
PUSH_CONDITION = "PushAgent"
"""Condition type on a Push provider's status: is the hub running its agent, and if not, why."""
REF = "spec.kubeconfigSecretRef"


@dataclass(frozen=True)
class Target:
    """A usable provider-cluster kubeconfig; the fingerprint changes with anything that matters."""

    kubeconfig: str
    server: str
    fingerprint: str


@dataclass(frozen=True)
class Problem:
    """Why the hub cannot run a provider's agent: a reason, and a message naming the field."""

    reason: str
    message: str


Resolution = Target | Problem


def kubeconfig_problem(doc: object) -> str | None:
    """Why a kubeconfig cannot be used by the hub, or ``None`` (pure).

    It must be self-contained: its current context's cluster and user, with certificates and
    token inline. A reference to a file on the hub (``tokenFile``, ``certificate-authority``
    …) or a command (``exec``, ``auth-provider``) is refused: the hub would read its own files
    or run a command on behalf of whoever wrote the Secret.
    """
    if not isinstance(doc, dict):
        return "is not a kubeconfig (a YAML mapping with clusters, users and contexts)"
    current = doc.get("current-context")
    if not current:
        return "current-context is not set"
    context = _named(doc, "contexts", current)
    if context is None:
        return f"current-context {current!r} is not one of its contexts"
    ctx = context.get("context") or {}
    cluster = _named(doc, "clusters", ctx.get("cluster"))
    if cluster is None:
        return f"contexts[{current}].context.cluster {ctx.get('cluster')!r} is not defined"
    server = str((cluster.get("cluster") or {}).get("server") or "")
    if not server.startswith("https://"):
        return f"clusters[{cluster.get('name')}].cluster.server must be an https:// URL"
    for key in ("certificate-authority",):
        if key in (cluster.get("cluster") or {}):
            return (
                f"clusters[{cluster.get('name')}].cluster.{key} refers to a file on the hub; "
                f"use {key}-data"
            )
    user = _named(doc, "users", ctx.get("user"))
    if user is None:
        return f"contexts[{current}].context.user {ctx.get('user')!r} is not defined"
    body = user.get("user") or {}
    for key in ("exec", "auth-provider"):
        if key in body:
            return f"users[{user.get('name')}].user.{key} would run a command in the hub"
    for key in ("tokenFile", "client-certificate", "client-key"):
        if key in body:
            return (
                f"users[{user.get('name')}].user.{key} refers to a file on the hub;"
                " embed the credential (token, client-certificate-data, client-key-data)"
            )
    return None


def _named(doc: JSON, section: str, name: object) -> JSON | None:
    for item in doc.get(section) or ():
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def server_of(doc: JSON) -> str:
    """The API server URL of a valid kubeconfig's current context."""
    ctx = (_named(doc, "contexts", doc.get("current-context")) or {}).get("context") or {}
    return str(((_named(doc, "clusters", ctx.get("cluster")) or {}).get("cluster") or {})["server"])


def resolve(provider: Provider, secret: Mapping[str, Any] | None) -> Resolution:
    """The provider cluster's kubeconfig from the Secret its ``kubeconfigSecretRef`` names.

    Args:
        provider: A Push provider.
        secret: The Secret as read from the hub, ``None`` when it does not exist.
    """
    ref = provider.spec.kubeconfig_secret_ref
    if ref is None:
        return Problem("NoKubeconfigSecretRef", f"{REF}: required when spec.mode is Push")
    where = f"Secret {ref.namespace}/{ref.name}"
    if secret is None:
        return Problem(
            "SecretNotFound",
            f"{REF}.name: {where} not found on the hub; create it with the provider"
            f" cluster's kubeconfig under key '{ref.key}'",
        )
    data = secret.get("data") or {}
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        return Problem(
            "SecretKeyNotFound", f"{REF}.key: key '{ref.key}' not in {where} (its keys: {keys})"
        )
    try:
        text = base64.b64decode(str(data[ref.key]), validate=True).decode()
        doc = yaml.safe_load(text)
    except (binascii.Error, UnicodeDecodeError, yaml.YAMLError) as exc:
        return Problem(
            "InvalidKubeconfig",
            f"{REF}: key '{ref.key}' of {where} is not a kubeconfig ({type(exc).__name__})",
        )
    problem = kubeconfig_problem(doc)
    if problem is not None:
        why = f"{REF}: the kubeconfig in {where} key '{ref.key}': {problem}"
        return Problem("InvalidKubeconfig", why)
    offer = provider.spec.offer.to_api() if provider.spec.offer else None
    identity = json.dumps({"ref": ref.to_api(), "kubeconfig": text, "offer": offer}, sort_keys=True)
    fingerprint = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Target(kubeconfig=text, server=server_of(doc), fingerprint=fingerprint)


def unreachable(provider: Provider, target: Target, error: str) -> Problem:
    """The provider cluster did not answer with the kubeconfig of the Secret."""
    ref = provider.spec.kubeconfig_secret_ref
    where = f"Secret {ref.namespace}/{ref.name} key '{ref.key}'" if ref else "its Secret"
    return Problem(
        "ClusterUnreachable",
        f"{REF}: the provider cluster {target.server} (kubeconfig in {where}) did not answer:"
        f" {error}",
    )


@dataclass
class PushPlan:
    """Agents to stop (first) and to start; a changed target appears in both (a restart)."""

    stop: list[str] = field(default_factory=list)
    start: dict[str, Target] = field(default_factory=dict)


def plan_agents(wanted: Mapping[str, Resolution], running: Mapping[str, str]) -> PushPlan:
    """Which in-hub agents to stop and start.

    Args:
        wanted: Every Push provider and what its Secret resolved to (a problem stops its agent:
            a provider whose kubeconfig is gone or broken is not reached any more).
        running: Provider → fingerprint of the target its running agent uses.
    """
    plan = PushPlan()
    for name, fingerprint in sorted(running.items()):
        target = wanted.get(name)
        if not isinstance(target, Target) or target.fingerprint != fingerprint:
            plan.stop.append(name)
    for name, target in sorted(wanted.items()):
        if isinstance(target, Target) and running.get(name) != target.fingerprint:
            plan.start[name] = target
    return plan


def restart_delay(crashes: int, base: float, *, cap: float = 300.0) -> float:
    """Seconds before restarting an agent that died ``crashes`` times in a row before (doubling)."""
    return float(min(cap, base * 2 ** min(crashes, 16)))


def running_message(target: Target, username: str) -> str:
    """The condition message of a running in-hub agent: where it reaches and as whom."""
    return (
        f"the hub runs this provider's agent against {target.server},"
        f" acting on the hub as {username}"
    )


def condition_patch(
    provider: Provider,
    wanted: tuple[str, str, str] | None,
    *,
    now: datetime,
) -> JSON | None:
    """The status patch setting (or, for ``None``, removing) the PushAgent condition.

    ``None`` when the status already says so (nothing to write).

    Args:
        provider: The provider as the hub last saw it.
        wanted: ``(status, reason, message)``, or ``None`` for a provider not in push mode.
        now: The current time.
    """
    conditions = list((provider.status.conditions if provider.status else None) or ())
    current = next((c for c in conditions if c.type == PUSH_CONDITION), None)
    if wanted is None:
        if current is None:
            return None
        kept = [c.to_api() for c in conditions if c.type != PUSH_CONDITION]
        return {"conditions": kept}
    status, reason, message = wanted
    if (
        current is not None
        and (current.status, current.reason, current.message) == wanted
        and current.observed_generation == provider.metadata.generation
    ):
        return None
    updated = set_condition(
        conditions,
        type_=PUSH_CONDITION,
        status="True" if status == "True" else "False",
        reason=reason,
        message=message,
        observed_generation=provider.metadata.generation,
        now=now,
    )
    return {"conditions": [c.to_api() for c in updated]}
