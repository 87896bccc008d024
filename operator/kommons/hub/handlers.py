"""The hub's kopf handlers: thin wrappers that read indexes and call the reconcilers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from kommons.api_names import GROUP, LABEL_PROVIDER, PROVIDER_NAMESPACE_PREFIX, VERSION
from kommons.hub.leases import LeaseReconciler, World
from kommons.hub.providers import provider_status_patch
from kommons.kopf_settings import configure_settings
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons.kube.login import connection_info

log = logging.getLogger("kommons.hub")
LEASES = (GROUP, VERSION, "computeleases")
PROVIDERS = (GROUP, VERSION, "providers")
PLACEMENTS = (GROUP, VERSION, "leaseplacements")
POOLS = (GROUP, VERSION, "providerpools")
ACCOUNTS = (GROUP, VERSION, "billingaccounts")


@dataclass(frozen=True)
class HubOptions:
    """How the hub runs."""

    kubeconfig: Path | None
    heartbeat_timeout: float = 20.0
    """Seconds without a heartbeat before a provider is Unreachable."""
    retry_seconds: float = 5.0
    """How often a lease that waits (capacity, billing ...) is reconciled again."""
    provider_check_seconds: float = 3.0
    """How often each Provider's phase is re-evaluated from its heartbeat."""


def _one(store: Any) -> Any:
    """The single value a kopf index store holds for a key (or ``None``)."""
    for value in store:
        return value
    return None


def plain(body: kopf.Body, *, status: bool = True) -> dict[str, Any]:
    """A plain-dict copy of an object's metadata, spec (and status) for the pure functions."""
    data = {"metadata": dict(body.metadata), "spec": dict(body.spec)}
    if status:
        data["status"] = dict(body.status)
    return data


def _snapshot(index: Mapping[Any, Any]) -> dict[Any, Any]:
    return {key: _one(store) for key, store in index.items()}


def build_registry(options: HubOptions, kube: Kube) -> kopf.OperatorRegistry:
    """Every handler of the hub, bound to one reconciler."""
    registry = kopf.OperatorRegistry()
    reconciler = LeaseReconciler(kube)
    events = EventDeduplicator()

    def world(kwargs: Mapping[str, Any]) -> World:
        return World(
            providers=_snapshot(kwargs["provider_index"]),
            heartbeats=_snapshot(kwargs["heartbeat_index"]),
            placements={k: list(v) for k, v in kwargs["placement_index"].items()},
            pools=_snapshot(kwargs["pool_index"]),
            accounts=_snapshot(kwargs["account_index"]),
            namespaces=_snapshot(kwargs["namespace_index"]),
            heartbeat_timeout=options.heartbeat_timeout,
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, role="hub")

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(options.kubeconfig)

    # --- indexes: the hub's whole view of the world, rebuilt from list+watch -------------

    @kopf.index(*PROVIDERS, id="provider_index", registry=registry)
    def provider_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {name: plain(body)}

    @kopf.index(
        "coordination.k8s.io",
        "v1",
        "leases",
        labels={LABEL_PROVIDER: kopf.PRESENT},
        id="heartbeat_index",
        registry=registry,
    )
    def heartbeat_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, str] | None:
        if not namespace or not namespace.startswith(PROVIDER_NAMESPACE_PREFIX):
            return None
        provider = body.metadata.labels.get(LABEL_PROVIDER)
        renew = body.spec.get("renewTime")
        return {provider: str(renew)} if provider and renew else None

    @kopf.index(*PLACEMENTS, id="placement_index", registry=registry)
    def placement_index(body: kopf.Body, **_: Any) -> dict[str, Any]:
        uid = body.spec.get("leaseRef", {}).get("uid", "")
        return {uid: plain(body)}

    @kopf.index(*POOLS, id="pool_index", registry=registry)
    def pool_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {name: plain(body, status=False)}

    @kopf.index(*ACCOUNTS, id="account_index", registry=registry)
    def account_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
        return {name: plain(body, status=False)}

    @kopf.index("", "v1", "namespaces", id="namespace_index", registry=registry)
    def namespace_index(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, Any]:
        return {name: dict(labels)}

    # --- leases ---------------------------------------------------------------------------

    def reconcile(body: kopf.Body, kwargs: Mapping[str, Any]) -> None:
        lease = plain(body)
        outcome = reconciler.reconcile(lease, world(kwargs))
        uid = str(body.metadata.uid)
        if outcome.event_reason and events.is_new(uid, outcome.event_reason, outcome.event_message):
            post = kopf.warn if outcome.warning else kopf.info
            post(body, reason=outcome.event_reason, message=outcome.event_message)

    @kopf.on.resume(*LEASES, registry=registry)
    @kopf.on.create(*LEASES, registry=registry)
    @kopf.on.update(*LEASES, field="spec", registry=registry)
    def lease_changed(body: kopf.Body, **kwargs: Any) -> None:
        reconcile(body, kwargs)

    @kopf.timer(*LEASES, interval=options.retry_seconds, registry=registry)
    def lease_retry(body: kopf.Body, **kwargs: Any) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        reconcile(body, kwargs)

    @kopf.on.event(*PLACEMENTS, registry=registry)
    def placement_event(body: kopf.Body, type: str | None, **kwargs: Any) -> None:
        """A placement changed (the agent reported): refresh its lease's status at once."""
        ref = body.spec.get("leaseRef") or {}
        if not ref or type is None:
            return
        lease = kube.get_or_none(r.COMPUTE_LEASES, ref["name"], ref["namespace"])
        if lease is None or lease["metadata"].get("uid") != ref.get("uid"):
            return
        if lease["metadata"].get("deletionTimestamp"):
            return
        reconciler.refresh_status(lease, world(kwargs))

    @kopf.on.delete(*LEASES, registry=registry)
    def lease_deleted(body: kopf.Body, **kwargs: Any) -> None:
        lease = plain(body)
        remaining = reconciler.delete_placements(lease, world(kwargs))
        if remaining:
            reconciler.refresh_status(lease, world(kwargs))
            raise kopf.TemporaryError(
                f"waiting for {remaining} placement(s) to be removed by their providers", delay=2
            )
        log.info(
            "lease %s/%s: every placement removed", body.metadata.namespace, body.metadata.name
        )

    # --- providers ------------------------------------------------------------------------

    @kopf.timer(*PROVIDERS, interval=options.provider_check_seconds, registry=registry)
    def provider_health(name: str, body: kopf.Body, **kwargs: Any) -> None:
        renew = _one(kwargs["heartbeat_index"].get(name, []))
        provider = plain(body)
        patch = provider_status_patch(
            provider, renew, now=datetime.now(UTC), timeout=options.heartbeat_timeout
        )
        if patch is None:
            return
        old = body.status.get("phase")
        kube.patch(r.PROVIDERS, name, {"status": patch}, subresource="status")
        if old != patch["phase"]:
            log.info("provider %s: %s -> %s", name, old, patch["phase"])
            message = patch["conditions"][-1]["message"] if patch["conditions"] else ""
            post = kopf.info if patch["phase"] == "Ready" else kopf.warn
            post(body, reason=f"Provider{patch['phase']}", message=message)

    return registry


class EventDeduplicator:
    """Remembers the last Event posted per lease, so retries do not repeat it (no spam)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, str]] = {}

    def is_new(self, uid: str, reason: str, message: str) -> bool:
        """Whether (reason, message) differs from the lease's last Event; records it if so."""
        if self._last.get(uid) == (reason, message):
            return False
        self._last[uid] = (reason, message)
        return True

    def forget(self, uid: str) -> None:
        """Drop a deleted lease's memory."""
        self._last.pop(uid, None)
