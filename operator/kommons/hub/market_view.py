"""The hub's in-memory view of the market, updated per watch event (never rebuilt per decision).

It holds the typed objects the hub plans with: leases, their placements, providers (with the
heartbeat times the hub itself observed), pools, billing accounts and namespace labels, and the
scheduler's :class:`~kommons.scheduler.Market` with one *hold* per placement whose replicas
the provider's last inventory report does not include yet.

Everything here is a cache of the API server, rebuildable from a list + watch; its size is
O(leases + placements + providers + pools + accounts + namespaces + ConfigMaps and Secrets of
the hub cluster, kept as name and version only), nothing grows otherwise.
It is used from the hub's event loop thread only (not thread-safe, no locks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kommons.api import (
    BillingAccount,
    ComputeLease,
    LeasePlacement,
    ObjectMeta,
    Provider,
    ProviderPool,
)
from kommons.api_names import PROVIDER_NAMESPACE_PREFIX
from kommons.config_copies import (
    LABEL_COPY,
    UNCOPYABLE_SECRET_TYPES,
    copy_revision,
    revision_key,
    sources,
)
from kommons.hub.edge import parse
from kommons.hub.payment import accounts_selecting
from kommons.hub.plan import World
from kommons.hub.providers import ProviderPhase, provider_phase
from kommons.hub.views import (
    ProviderHealth,
    lease_key,
    placement_resources,
    provider_view,
    selects,
)
from kommons.scheduler import (
    Decision,
    LeaseRequest,
    Market,
    PoolPolicy,
    ProviderView,
    Resources,
    placement_key,
)

log = logging.getLogger("kommons.hub")


@dataclass(frozen=True)
class Heartbeat:
    """The last heartbeat change the hub saw.

    The agent's ``renewTime`` value is only compared, never trusted as a time; ``seen_at`` is
    the hub's clock.
    """

    renew_time: str
    seen_at: float
    """Hub monotonic clock when renewTime last changed."""
    seen_wall: datetime
    """Hub wall clock at the same moment (written as ``lastHeartbeatTime``)."""


def parse_accounted(entries: Iterable[str]) -> dict[str, int | None]:
    """Parse ``status.accountedLeases`` entries ``ns/name=replicas``.

    A bare ``ns/name`` (an older agent) counts every replica the placement has.
    """
    out: dict[str, int | None] = {}
    for entry in entries:
        key, sep, count = entry.partition("=")
        # A malformed count holds the whole placement (0 reported): never over-commit.
        out[key] = (int(count) if count.isdigit() else 0) if sep else None
    return out


def _has_capacity_gain(old: ProviderView | None, new: ProviderView) -> bool:
    """Whether a provider change could let a waiting lease fit (more free or newly ready)."""
    if old is None:
        return new.ready
    if new.ready and not old.ready:
        return True
    a, b = old.available, new.available
    return (
        b.cpu_milli > a.cpu_milli
        or b.memory_bytes > a.memory_bytes
        or b.pods > a.pods
        or any(n > a.gpus.get(m, 0) for m, n in b.gpus.items())
        or any(n > a.storage.get(t, 0) for t, n in b.storage.items())
        or new.pricing != old.pricing
        or new.labels != old.labels
        or (old.cordoned and not new.cordoned)
        or new.reputation > old.reputation  # may pass a pool's minReputation now
    )


class MarketView:
    """Typed cache of everything the hub schedules with (see the module docstring)."""

    def __init__(self, *, heartbeat_timeout: float) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.market = Market()
        self.leases: dict[str, ComputeLease] = {}
        """``namespace/name`` → lease."""
        self.placements: dict[str, dict[str, LeasePlacement]] = {}
        """Lease uid → provider → placement."""
        self.providers: dict[str, Provider] = {}
        self.excluded: dict[str, str] = {}
        """Provider name → why its declaration is unusable."""
        self._malformed: dict[str, str] = {}
        """Provider name → why its status could not be parsed (it stays excluded)."""
        self.heartbeats: dict[str, Heartbeat] = {}
        self.pools: dict[str, ProviderPool] = {}
        self.accounts: dict[str, BillingAccount] = {}
        self.payment_guard = False
        """Whether the payment guard runs: leases then follow their account's standing."""
        self.namespaces: dict[str, dict[str, str]] = {}
        self._accounted: dict[str, dict[str, int | None]] = {}
        """Provider → its last report's accounted leases (``ns/name`` → replicas)."""
        self._placements_on: dict[str, set[str]] = {}
        """Provider → lease uids with a placement there (to re-hold on each report)."""
        self.config: dict[tuple[str, str, str], str | None] = {}
        """Tenant ConfigMaps and Secrets: (namespace, kind, name) → resourceVersion (``None``:
        not copyable). Names and versions only, never data (kommons.config_copies)."""
        self.copies: dict[tuple[str, str], str] = {}
        """The hub's config copies: (provider namespace, name) → source resourceVersion."""

    # --- clocks ---------------------------------------------------------------------------

    @staticmethod
    def monotonic() -> float:
        """The hub's monotonic clock (seconds)."""
        return time.monotonic()

    # --- providers and heartbeats ---------------------------------------------------------

    def health(self, name: str) -> tuple[ProviderPhase, str, str]:
        """The phase the hub gives a provider now, with reason and message."""
        provider = self.providers.get(name)
        beat = self.heartbeats.get(name)
        age = None if beat is None else self.monotonic() - beat.seen_at
        return provider_phase(
            provider,
            age,
            timeout=self.heartbeat_timeout,
            invalid=self.excluded.get(name),
        )

    def _refresh_provider(self, name: str) -> bool:
        """Rebuild a provider's scheduler view; ``True`` when capacity may have grown."""
        provider = self.providers.get(name)
        if provider is None:
            return False
        # The declaration is judged first, so the phase below sees this report's verdict; the
        # phase (heartbeat freshness included) then decides readiness.
        view, excluded = provider_view(provider, ProviderHealth(phase="Ready", fresh=True))
        excluded = self._malformed.get(name) or excluded
        if excluded is None:
            self.excluded.pop(name, None)
        else:
            self.excluded[name] = excluded
        phase = self.health(name)[0]
        if excluded is not None:
            view = replace(view, ready=False, phase=f"Invalid: {excluded}")
        elif phase != "Ready":
            view = replace(view, ready=False, phase=phase)
        old = self.market.get(name)
        self.market.set_provider(view)
        self._rehold_provider(name)
        return _has_capacity_gain(old, view)

    def set_provider(self, body: Mapping[str, Any]) -> bool:
        """A Provider was added or changed; ``True`` when waiting leases should look again."""
        name = str(body["metadata"]["name"])
        self._malformed.pop(name, None)
        try:
            provider = parse(Provider, body)
        except ValidationError as exc:
            # A provider's malformed status must not stop anyone: keep it, excluded.
            try:
                provider = parse(Provider, {k: v for k, v in body.items() if k != "status"})
            except ValidationError:
                log.warning("provider %s: unusable object, left out: %s", name, exc)
                self.remove_provider(name)
                return False
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            self._malformed[name] = f"status is malformed at {where}: {first['msg']}"
        self.providers[name] = provider
        status = provider.status
        self._accounted[name] = parse_accounted(status.accounted_leases or ()) if status else {}
        return self._refresh_provider(name)

    def remove_provider(self, name: str) -> None:
        """A Provider was deleted."""
        self.providers.pop(name, None)
        self.excluded.pop(name, None)
        self._malformed.pop(name, None)
        self._accounted.pop(name, None)
        self.heartbeats.pop(name, None)
        if self.market.get(name) is not None:
            self.market.remove_provider(name)

    def heartbeat(self, provider: str, renew_time: str) -> bool:
        """The provider's heartbeat Lease changed; ``True`` when it went from stale to fresh."""
        old = self.heartbeats.get(provider)
        if old is not None and old.renew_time == renew_time:
            return False
        now = self.monotonic()
        was_fresh = old is not None and now - old.seen_at <= self.heartbeat_timeout
        self.heartbeats[provider] = Heartbeat(renew_time, now, datetime.now(UTC))
        if not was_fresh:
            return self._refresh_provider(provider)
        return False

    def refresh_health(self) -> list[str]:
        """Re-evaluate every provider against the heartbeat timeout.

        Returns:
            The providers whose readiness flipped (their views were rebuilt).
        """
        flipped = []
        for name in list(self.providers):
            view = self.market.get(name)
            phase, _, _ = self.health(name)
            if view is not None and view.ready != (phase == "Ready"):
                self._refresh_provider(name)
                flipped.append(name)
        return flipped

    # --- placements and holds -------------------------------------------------------------

    def _reported(self, placement: LeasePlacement) -> int:
        """Replicas of a placement that its provider's last report already subtracts."""
        ref = placement.spec.lease_ref
        accounted = self._accounted.get(placement.spec.provider, {})
        lease = f"{ref.namespace}/{ref.name}"
        if lease not in accounted:
            return 0
        count = accounted[lease]
        return placement.spec.replicas if count is None else min(count, placement.spec.replicas)

    def _rehold(self, placement: LeasePlacement) -> None:
        """Hold the part of a placement its provider's report does not include yet.

        A suspended placement holds nothing: its capacity is the market's until it resumes
        (the agent shrinks its quota to zero, so the provider's report frees it too).
        """
        ref = placement.spec.lease_ref
        key = placement_key(f"{ref.namespace}/{ref.name}", placement.spec.provider)
        replicas = 0 if placement.spec.suspend else placement.spec.replicas
        replicas -= self._reported(placement)
        if replicas > 0:
            self.market.hold(
                key=key,
                provider=placement.spec.provider,
                resources=placement_resources(placement, replicas),
                at=self.monotonic(),
            )
        else:
            self.market.release(key, placement.spec.provider)

    def _rehold_provider(self, provider: str) -> None:
        for uid in self._placements_on.get(provider, ()):
            placement = self.placements.get(uid, {}).get(provider)
            if placement is not None:
                self._rehold(placement)

    def set_placement(self, placement: LeasePlacement) -> str:
        """A placement was written or observed; returns its lease's key."""
        uid = placement.spec.lease_ref.uid
        provider = placement.spec.provider
        known = self.placements.get(uid, {}).get(provider)
        if known is not None and _older(placement.metadata, known.metadata):
            placement = known
        self.placements.setdefault(uid, {})[provider] = placement
        self._placements_on.setdefault(provider, set()).add(uid)
        self._rehold(placement)
        ref = placement.spec.lease_ref
        return f"{ref.namespace}/{ref.name}"

    def remove_placement(self, uid: str, provider: str, lease: str) -> None:
        """A placement is gone for good: its capacity is free again."""
        held = self.placements.get(uid)
        if held is not None:
            held.pop(provider, None)
            if not held:
                del self.placements[uid]
        on = self._placements_on.get(provider)
        if on is not None:
            on.discard(uid)
            if not on:
                del self._placements_on[provider]
        self.market.release(placement_key(lease, provider), provider)

    def settle_holds(self, lease: str, providers: Iterable[str]) -> None:
        """After a decision was written (or not), hold exactly what its placements need.

        A placement on one of ``providers`` that was not written holds nothing.
        """
        body = self.leases.get(lease)
        placed = self.placements.get(str(body.metadata.uid), {}) if body else {}
        for provider in providers:
            placement = placed.get(provider)
            if placement is None:
                self.market.release(placement_key(lease, provider), provider)
            else:
                self.set_placement(placement)

    def commit(self, decision: Decision, request: LeaseRequest) -> None:
        """Hold a decision's placements at once, so a burst cannot over-commit a provider."""
        self.market.commit(decision, request, at=self.monotonic())

    # --- leases ---------------------------------------------------------------------------

    def set_lease(self, lease: ComputeLease) -> str:
        """A lease was added or changed; returns its key.

        An event older than the lease the view holds (the executor's own write may arrive
        before the watch delivers the writes it follows) is ignored.
        """
        key = lease_key(lease)
        known = self.leases.get(key)
        if known is None or not _older(lease.metadata, known.metadata):
            self.leases[key] = lease
        return key

    def remove_lease(self, key: str) -> None:
        """A lease is gone (its placements are removed by their own events)."""
        self.leases.pop(key, None)

    def set_account(self, account: BillingAccount) -> BillingAccount | None:
        """A BillingAccount was added or changed; returns the one the view held before.

        An event older than the account the view holds (the payment guard's own status write
        may arrive before the watch delivers the events it follows) is ignored.
        """
        name = str(account.metadata.name)
        known = self.accounts.get(name)
        if known is None or not _older(account.metadata, known.metadata):
            self.accounts[name] = account
        return known

    def leases_billed_by(self, *accounts: BillingAccount) -> list[str]:
        """Keys of the leases in namespaces that any of ``accounts`` selects."""
        out = []
        for key, lease in self.leases.items():
            labels = self.namespaces.get(str(lease.metadata.namespace), {})
            if any(
                selects(a.spec.namespace_selector, labels, empty_selects_all=False)
                for a in accounts
            ):
                out.append(key)
        return out

    def billing_accounts(self, namespace: str) -> list[str]:
        """The BillingAccounts selecting ``namespace``, sorted by name (the first pays)."""
        return accounts_selecting(self.accounts, self.namespaces.get(namespace, {}))

    def billing_account(self, namespace: str) -> str | None:
        """The BillingAccount that selects ``namespace`` (first by name if several do)."""
        selecting = self.billing_accounts(namespace)
        return selecting[0] if selecting else None

    def world(
        self, lease: ComputeLease, *, ready_timeout: float, replace_after: float = 300.0
    ) -> World:
        """Everything :func:`~kommons.hub.plan.plan_lease` needs about one lease."""
        namespace = str(lease.metadata.namespace)
        placements = list(self.placements.get(str(lease.metadata.uid), {}).values())
        selecting = self.billing_accounts(namespace)
        paying = self.accounts.get(selecting[0]) if selecting else None
        return World(
            placements=placements,
            pool=self.pools.get(lease.spec.pool_ref.name),
            account=selecting[0] if selecting else None,
            selecting=selecting,
            account_status=paying.status if paying else None,
            payment_guard=self.payment_guard,
            namespace_labels=self.namespaces.get(namespace, {}),
            market=self,
            now=datetime.now(UTC),
            ready_timeout=ready_timeout,
            unreachable=self.unreachable({p.spec.provider for p in placements}),
            replace_after=replace_after,
            config=self.config,
            copies=self.copies,
        )

    # --- config and secrets (kommons.config_copies) -------------------------------------------

    def set_config(self, kind: str, body: Mapping[str, Any]) -> list[str]:
        """A ConfigMap or Secret was added or changed: record its version (never its data).

        Returns the keys of the leases that take it along (their copies must follow). In a
        provider's hub namespace only the hub's copies are recorded.
        """
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        version = str(meta.get("resourceVersion"))
        if namespace.startswith(PROVIDER_NAMESPACE_PREFIX):
            if kind == "Secret" and (meta.get("labels") or {}).get(LABEL_COPY) == "true":
                self.copies[(namespace, name)] = copy_revision(body) or ""
            return []
        copyable = kind != "Secret" or body.get("type") not in UNCOPYABLE_SECRET_TYPES
        key = (namespace, kind, name)
        known = self.config.get(key, "")
        self.config[key] = version if copyable else None
        return self.leases_taking(namespace, kind, name) if known != self.config[key] else []

    def remove_config(self, kind: str, namespace: str, name: str) -> list[str]:
        """A ConfigMap or Secret is gone; returns the keys of the leases that take it along."""
        if namespace.startswith(PROVIDER_NAMESPACE_PREFIX):
            self.copies.pop((namespace, name), None)
            return []
        self.config.pop((namespace, kind, name), None)
        return self.leases_taking(namespace, kind, name)

    def leases_taking(self, namespace: str, kind: str, name: str) -> list[str]:
        """Keys of the leases of ``namespace`` whose configFrom/imagePullSecrets name it."""
        wanted = revision_key(kind, name)
        return [
            key
            for key, lease in self.leases.items()
            if lease.metadata.namespace == namespace
            and any(
                s.key == wanted
                for s in sources(lease.spec.config_from, lease.spec.image_pull_secrets)
            )
        ]

    # --- failover (kommons.hub.failover) ----------------------------------------------------

    def unreachable(self, providers: Iterable[str]) -> dict[str, str]:
        """Those of ``providers`` the hub sees ``Unreachable`` (or deleted) → why."""
        out = {}
        for name in providers:
            phase, _, message = self.health(name)
            if phase == "Unreachable":
                out[name] = message
        return out

    def leases_on(self, provider: str) -> list[str]:
        """Keys of the leases with a placement on ``provider`` (to plan them on a flip)."""
        keys = []
        for uid in self._placements_on.get(provider, ()):
            placement = self.placements.get(uid, {}).get(provider)
            if placement is not None:
                ref = placement.spec.lease_ref
                keys.append(f"{ref.namespace}/{ref.name}")
        return keys

    # --- MarketReader ---------------------------------------------------------------------

    def decide(
        self,
        lease: LeaseRequest,
        pool: PoolPolicy,
        *,
        already_placed: Mapping[str, int],
        released: frozenset[str],
        exclude: frozenset[str] = frozenset(),
    ) -> Decision:
        """A decision for ``lease``; ``released`` placement keys count as free.

        ``exclude`` are providers this decision must not use (failover).

        Released capacity (a placement being replaced) is given back for this one decision and
        restored right after: nothing else runs in between (one event loop thread).
        """
        if not released:
            return self.market.decide(lease, pool, already_placed=already_placed, exclude=exclude)
        by_key = {
            placement_key(lease.key, p.spec.provider): p for p in self.placements_of_key(lease.key)
        }
        restore: list[tuple[ProviderView, LeasePlacement]] = []
        for key in sorted(released):
            placement = by_key.get(key)
            view = self.market.get(placement.spec.provider) if placement else None
            if placement is None or view is None:
                continue
            restore.append((view, placement))
            self.market.release(key, placement.spec.provider)  # the unreported part
            freed = self._reported_resources(placement)
            if freed != Resources():  # the part the provider's report already subtracts
                self.market.set_provider(replace(view, available=view.available.plus(freed)))
        try:
            return self.market.decide(lease, pool, already_placed=already_placed, exclude=exclude)
        finally:
            for view, placement in restore:
                self.market.set_provider(view)
                self.set_placement(placement)

    def _reported_resources(self, placement: LeasePlacement) -> Resources:
        """What the provider's last report subtracts for a placement.

        Its accounted replicas' resources; and all its storage while it is suspended: the
        claims (and their data) are kept, so the quota, and the report, still count them.
        """
        reported = self._reported(placement)
        freed = placement_resources(placement, reported) if reported else Resources()
        if placement.spec.suspend and placement.spec.storage:
            freed = replace(freed, storage=placement_resources(placement).storage)
        return freed

    def placements_of_key(self, key: str) -> list[LeasePlacement]:
        """The placements the view holds for the lease ``namespace/name`` (none if unknown)."""
        lease = self.leases.get(key)
        if lease is None:
            return []
        return list(self.placements.get(str(lease.metadata.uid), {}).values())


def _older(new: ObjectMeta, known: ObjectMeta) -> bool:
    """Whether ``new`` is an older version of the same object than ``known``.

    resourceVersions are opaque strings by contract; the API servers Kommons targets serve
    etcd revisions, which grow. Anything not comparable counts as newer.
    """
    a, b = new.resource_version or "", known.resource_version or ""
    return new.uid == known.uid and a.isdigit() and b.isdigit() and int(a) < int(b)
