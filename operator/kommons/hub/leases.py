"""Reconcile one ComputeLease: gates, scheduling, placements, status.

Called from kopf handlers with a snapshot of the hub's indexes (:class:`World`). Everything
it decides can be rebuilt from the API objects; the only memory it keeps is the reservation
ledger for placements written but not yet seen in the indexes or in a provider's report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kommons.api.template import template_violations
from kommons.hub.lease_status import Gate, lease_status, status_changed
from kommons.hub.placements import needs_update, placement_object, scale_down
from kommons.hub.views import (
    heartbeat_age,
    lease_key,
    lease_request,
    placement_resources,
    pool_policy,
    provider_view,
    selects,
)
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons.money import format_units
from kommons.scheduler import (
    Decision,
    ProviderView,
    Reservations,
    placement_key,
    schedule,
)

log = logging.getLogger("kommons.hub")
JSON = dict[str, Any]


@dataclass(frozen=True)
class World:
    """What the hub knows, from its indexes, when it reconciles a lease."""

    providers: Mapping[str, JSON]
    heartbeats: Mapping[str, str]
    """Provider name → last ``renewTime`` of its heartbeat Lease."""
    placements: Mapping[str, Sequence[JSON]]
    """Lease UID → its ``LeasePlacement`` objects."""
    pools: Mapping[str, JSON]
    accounts: Mapping[str, JSON]
    namespaces: Mapping[str, Mapping[str, str]]
    """Namespace name → its labels."""
    heartbeat_timeout: float = 20.0


@dataclass
class Outcome:
    """What one reconcile did, for the handler to log and post as an Event."""

    event_reason: str | None = None
    event_message: str = ""
    warning: bool = False


@dataclass
class _Ledger:
    """Placements written by this hub that its indexes may not show yet."""

    written: dict[str, tuple[str, JSON]] = field(default_factory=dict)
    """Placement key → (lease uid, the placement object written)."""


def provider_is_fresh(world: World, name: str, now: datetime) -> bool:
    """Whether a provider's heartbeat is within the timeout."""
    age = heartbeat_age(world.heartbeats.get(name), now)
    return age is not None and age <= world.heartbeat_timeout


class LeaseReconciler:
    """Decides and writes placements; thread-safe (kopf runs sync handlers in threads)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._ledger = _Ledger()

    # --- gates ----------------------------------------------------------------------------

    @staticmethod
    def billing_account(world: World, namespace: str) -> str | None:
        """The BillingAccount that selects ``namespace`` (first by name if several do)."""
        labels = world.namespaces.get(namespace, {})
        for name in sorted(world.accounts):
            selector = (world.accounts[name].get("spec") or {}).get("namespaceSelector")
            if selects(selector, labels, empty_selects_all=False):
                return name
        return None

    def gates(self, lease: JSON, world: World) -> tuple[list[Gate], str | None, JSON | None]:
        """Evaluate what must hold before scheduling: pool, tenancy, billing, template."""
        namespace = lease["metadata"]["namespace"]
        pool_name = lease["spec"]["poolRef"]["name"]
        pool = world.pools.get(pool_name)
        account = self.billing_account(world, namespace)
        gates = [
            Gate("PaymentOK", True, "BillingAccountFound", f"billed to BillingAccount {account}")
            if account
            else Gate(
                "PaymentOK",
                False,
                "NoBillingAccount",
                f"no BillingAccount selects namespace {namespace}; ask the hub admin to create"
                " one whose namespaceSelector matches it",
            )
        ]
        blocked: Gate | None = None
        violations = template_violations(lease["spec"].get("template") or {}, path="spec.template")
        if pool is None:
            blocked = Gate(
                "Scheduled", False, "PoolNotFound", f"ProviderPool {pool_name} does not exist"
            )
        elif not selects(
            (pool.get("spec") or {}).get("tenantNamespaceSelector"),
            world.namespaces.get(namespace, {}),
            empty_selects_all=True,
        ):
            blocked = Gate(
                "Scheduled",
                False,
                "NotAllowedByPool",
                f"ProviderPool {pool_name} does not admit namespace {namespace}"
                " (tenantNamespaceSelector)",
            )
        elif account is None:
            blocked = Gate("Scheduled", False, "NoBillingAccount", gates[0].message)
        elif violations:
            blocked = Gate("Scheduled", False, "InvalidTemplate", "; ".join(violations))
        if blocked is not None:
            gates.append(blocked)
        return gates, account, pool

    # --- scheduling -----------------------------------------------------------------------

    def _views(self, world: World, pool_body: JSON, now: datetime) -> list[ProviderView]:
        policy = pool_policy(pool_body)
        views = []
        for name, body in sorted(world.providers.items()):
            labels = (body.get("metadata") or {}).get("labels") or {}
            if policy.selector is not None and not policy.selector.matches(labels):
                continue
            views.append(provider_view(body, heartbeat_fresh=provider_is_fresh(world, name, now)))
        return views

    def _reservations(self, world: World, views: Sequence[ProviderView]) -> Reservations:
        """Capacity held by placements that the providers' reports do not include yet."""
        accounted = {v.name: v.accounted for v in views}
        pending: dict[str, tuple[str, JSON]] = {}
        for placements in world.placements.values():
            for placement in placements:
                spec = placement["spec"]
                ref = spec["leaseRef"]
                key = placement_key(f"{ref['namespace']}/{ref['name']}", spec["provider"])
                pending[key] = (spec["provider"], placement)
        for key, (_, placement) in list(self._ledger.written.items()):
            if key in accounted.get(placement["spec"]["provider"], frozenset()):
                del self._ledger.written[key]  # the provider's report includes it now
            else:
                pending.setdefault(key, (placement["spec"]["provider"], placement))
        ledger = Reservations()
        for key, (provider, placement) in pending.items():
            if key not in accounted.get(provider, frozenset()):
                ledger.reserve(
                    key=key, provider=provider, resources=placement_resources(placement), at=0.0
                )
        return ledger

    def _schedule(
        self, lease: JSON, world: World, pool: JSON, existing: Sequence[JSON], now: datetime
    ) -> Decision:
        views = self._views(world, pool, now)
        request = lease_request(lease)
        already = {p["spec"]["provider"]: int(p["spec"]["replicas"]) for p in existing}
        decision = schedule(
            request,
            views,
            pool_policy(pool),
            self._reservations(world, views),
            already_placed=already,
        )
        log.info(
            "lease %s: %s (considered %d, feasible %d)",
            request.key,
            decision.message,
            decision.considered,
            decision.feasible,
        )
        return decision

    def _write_placements(
        self, lease: JSON, decision: Decision, existing: Sequence[JSON], account: str
    ) -> None:
        by_provider = {p["spec"]["provider"]: p for p in existing}
        for chosen in decision.chosen:
            replicas = chosen.replicas
            if chosen.provider in by_provider:
                replicas += int(by_provider[chosen.provider]["spec"]["replicas"])
            body = placement_object(
                lease,
                provider=chosen.provider,
                replicas=replicas,
                price_per_hour=format_units(chosen.price_per_hour),
                billing_account=account,
            )
            self.kube.apply(r.LEASE_PLACEMENTS, body)
            key = placement_key(lease_key(lease), chosen.provider)
            self._ledger.written[key] = (lease["metadata"]["uid"], body)

    def _update_placements(self, lease: JSON, existing: Sequence[JSON], account: str) -> None:
        """Carry spec changes of the lease (template, suspend, fewer replicas) to placements."""
        targets = scale_down(existing, int(lease["spec"].get("replicas", 1)))
        for placement in existing:
            spec = placement["spec"]
            if targets[spec["provider"]] == 0:
                meta = placement["metadata"]
                self.kube.delete(r.LEASE_PLACEMENTS, meta["name"], meta["namespace"])
                self._ledger.written.pop(placement_key(lease_key(lease), spec["provider"]), None)
                continue
            desired = placement_object(
                lease,
                provider=spec["provider"],
                replicas=targets[spec["provider"]],
                price_per_hour=str(spec["pricePerHour"]),  # locked at placement
                billing_account=account,
            )
            desired["spec"].pop("leaseGeneration", None)
            if needs_update(placement, desired):
                desired["spec"]["leaseGeneration"] = lease["metadata"].get("generation")
                self.kube.apply(r.LEASE_PLACEMENTS, desired)

    # --- the reconcile --------------------------------------------------------------------

    def reconcile(self, lease: JSON, world: World) -> Outcome:
        """Bring one lease a step closer to its spec and write its status."""
        now = datetime.now(UTC)
        outcome = Outcome()
        uid = lease["metadata"]["uid"]
        gates, account, pool = self.gates(lease, world)
        blocked = next((g for g in gates if g.type == "Scheduled" and not g.ok), None)
        decision_status: JSON | None = None
        with self._lock:
            existing = self._known_placements(uid, world)
            placed = sum(int(p["spec"]["replicas"]) for p in existing)
            wanted = int(lease["spec"].get("replicas", 1))
            if blocked is None and pool is not None and account is not None:
                if placed < wanted:
                    started = time.monotonic()
                    decision = self._schedule(lease, world, pool, existing, now)
                    decision_status = decision.to_status()
                    if decision.chosen:
                        self._write_placements(lease, decision, existing, account)
                        outcome.event_reason = "Scheduled"
                        outcome.event_message = decision.message
                        log.debug("scheduled in %.3fs", time.monotonic() - started)
                        gates.append(Gate("Scheduled", True, "Placed", decision.message))
                    else:
                        gates.append(Gate("Scheduled", False, "Unschedulable", decision.message))
                        outcome.event_reason = "Unschedulable"
                        outcome.event_message = decision.message
                        outcome.warning = True
                else:
                    self._update_placements(lease, existing, account)
                    gates.append(
                        Gate("Scheduled", True, "Placed", f"{placed}/{wanted} replicas placed")
                    )
            elif blocked is not None:
                outcome.event_reason = blocked.reason
                outcome.event_message = blocked.message
                outcome.warning = True
        with self._lock:
            placements = self._known_placements(uid, world)
        self.write_status(lease, placements, gates, decision_status, account, now)
        return outcome

    def _known_placements(self, uid: str, world: World) -> list[JSON]:
        """A lease's placements: the index's, plus those written but not indexed yet."""
        placements = [
            p for p in world.placements.get(uid, ()) if not p["metadata"].get("deletionTimestamp")
        ]
        seen = {p["spec"]["provider"] for p in placements}
        for owner, body in self._ledger.written.values():
            if owner == uid and body["spec"]["provider"] not in seen:
                placements.append(body)
        return placements

    def write_status(
        self,
        lease: JSON,
        placements: Sequence[JSON],
        gates: Sequence[Gate],
        decision: JSON | None,
        account: str | None,
        now: datetime,
    ) -> bool:
        """Write the lease's status if it changed; ``True`` when a write happened."""
        desired = lease_status(
            lease, placements, gates, decision=decision, billing_account=account, now=now
        )
        if not status_changed(lease.get("status"), desired):
            return False
        meta = lease["metadata"]
        self.kube.patch(
            r.COMPUTE_LEASES,
            meta["name"],
            {"status": desired},
            meta["namespace"],
            subresource="status",
        )
        return True

    def refresh_status(self, lease: JSON, world: World) -> bool:
        """Re-aggregate a lease's status from its placements (no scheduling)."""
        now = datetime.now(UTC)
        placements = list(world.placements.get(lease["metadata"]["uid"], ()))
        return self.write_status(
            lease, placements, [], None, lease.get("status", {}).get("billingAccount"), now
        )

    # --- deletion -------------------------------------------------------------------------

    def delete_placements(self, lease: JSON, world: World) -> int:
        """Ask every placement of a lease to go; return how many still exist."""
        uid = lease["metadata"]["uid"]
        with self._lock:
            for key in [k for k, (owner, _) in self._ledger.written.items() if owner == uid]:
                del self._ledger.written[key]
        remaining = 0
        for placement in self.kube.list(
            r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}"
        ):
            meta = placement["metadata"]
            if not meta.get("deletionTimestamp"):
                self.kube.delete(r.LEASE_PLACEMENTS, meta["name"], meta["namespace"])
            remaining += 1
        return remaining
