"""The hub: kopf watches feed the market view; workers plan and execute one lease at a time.

- **Edge.** Every watched object is parsed once into its :mod:`kommons.api` model where it
  enters (:class:`~kommons.hub.market_view.MarketView`). kopf index handlers keep the view
  current; kopf runs no regular handler before every index is populated, so no lease is
  planned before the hub has seen all placements (a restart never places twice).
- **Queue.** A lease is planned when it, one of its placements, or (while it waits for
  capacity) the market changes: a provider with more room, a new provider, a pool, account or
  namespace change. Waiting leases back off exponentially; nothing re-plans on a timer except
  a readiness deadline the plan asked for.
- **Step.** ``plan_lease`` (pure) → hold the decision's capacity in the view → the executor
  writes (in a thread) → the view absorbs what was written. Writes of different leases run in
  parallel; decisions are made one at a time on the event loop, so holds are never raced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from kommons.api import (
    BillingAccount,
    ComputeLease,
    DepartedUsage,
    LeasePlacement,
    LeaseUsage,
    ProviderPool,
    Reputation,
    SettlementEpoch,
)
from kommons.api.provider import Outage
from kommons.api_names import FINALIZER_METERING, GROUP, PROVIDER_NAMESPACE_PREFIX, VERSION
from kommons.hub.chain_options import ChainOptions
from kommons.hub.edge import parse
from kommons.hub.executor import Executor, Outcome
from kommons.hub.handover import hand_over_to_epoch
from kommons.hub.logs_relay import LogsRelay
from kommons.hub.market_view import MarketView
from kommons.hub.metering import Metered, meter, only_metering_finalizer, to_remeter
from kommons.hub.metrics_snapshot import take as take_snapshot
from kommons.hub.payment import PaymentSettings
from kommons.hub.payment_loop import (
    BalanceReader,
    LazyBalances,
    PaymentLoop,
    absorb,
    write_status,
)
from kommons.hub.plan import LeasePlan, plan_lease
from kommons.hub.providers import health_status_patch
from kommons.hub.push import PushAgents, PushOptions
from kommons.hub.reputation import ReputationBook, ReputationSettings
from kommons.hub.settlement_loop import read_epochs, settlement_loop
from kommons.hub.views import lease_key
from kommons.hub.workqueue import WorkQueue
from kommons.kopf_settings import configure_settings
from kommons.kube import Conflict, Kube, KubeError, NotFound
from kommons.kube import resources as r
from kommons.kube.login import connection_info
from kommons.metering.ledger import Epoch, epoch_of
from kommons.metering.outages import outages_after, parse_outages
from kommons.metrics import HubMetrics

log = logging.getLogger("kommons.hub")
LEASES = (GROUP, VERSION, "computeleases")
PROVIDERS = (GROUP, VERSION, "providers")
PLACEMENTS = (GROUP, VERSION, "leaseplacements")
POOLS = (GROUP, VERSION, "providerpools")
ACCOUNTS = (GROUP, VERSION, "billingaccounts")
EPOCHS = (GROUP, VERSION, "settlementepochs")
EPOCH_MEMORY = 168
"""Settled (Confirmed/Failed) epochs the hub keeps in memory, the newest: a week of hourly
epochs. Open, Sealed and Submitted epochs are always kept."""
HANDOVER_RETRY_SECONDS = 2.0
"""A deleted lease whose usage could not be handed over to its epochs is tried again then."""
HEARTBEAT_LEASE = "kommons-agent"
"""Name of the heartbeat ``coordination.k8s.io/Lease`` in each provider's hub namespace."""


@dataclass(frozen=True)
class HubOptions:
    """How the hub runs."""

    kubeconfig: Path | None
    heartbeat_timeout: float = 20.0
    """Seconds without a heartbeat (as the hub observed it) before a provider is Unreachable
    and its placements fail over (docs/failover.md: shorter detects sooner, but a slow agent
    is flipped more often)."""
    replace_after: float = 300.0
    """Seconds replicas may stay not ready for a provider-side reason before they are
    re-placed on another provider (docs/failover.md)."""
    retry_seconds: float = 30.0
    """The longest a lease waiting for capacity backs off between two attempts."""
    provider_check_seconds: float = 3.0
    """How often every provider's phase is re-evaluated against the heartbeat timeout."""
    ready_timeout: float = 120.0
    """Seconds a placement's replicas may take to become ready before the lease's Ready
    condition carries the provider's reason."""
    heartbeat_record_seconds: float = 60.0
    """How often the hub writes a provider's ``lastHeartbeatTime`` while its phase holds."""
    workers: int = 8
    """Leases whose writes are in flight at once (decisions themselves are made one at a
    time). More helps only while the hub's API server has capacity to spare: measured on the
    bed (docs/performance.md), 32 placed no faster than 8 and slowed every other client."""
    reputation: ReputationSettings = field(default_factory=ReputationSettings)
    """How providers' reputation is computed and how often it is written."""
    chain: ChainOptions | None = None
    """Where to settle (``--chain-rpc`` …); None: settlement and the payment guard are off."""
    payment: PaymentSettings = field(default_factory=PaymentSettings)
    """The payment guard's horizon, grace and poll (it runs only with a chain to read)."""
    # --- settlement loop (kommons.hub.settlement_loop) ---
    epoch_seconds: int = 3600
    """Length of a settlement epoch (``--epoch-seconds``)."""
    seal_delay_seconds: int = 300
    """Seconds after an epoch's end before it is sealed (``--seal-delay-seconds``)."""
    claim_for_providers: bool = False
    """Claim confirmed leaves on providers' behalf (``--claim-for-providers``)."""
    # --- metrics (kommons.metrics) ---
    metrics_port: int = 8080
    """Port of ``/metrics`` (``--metrics-port``); 0: no exposition."""
    metrics_address: str = "0.0.0.0"
    """Address ``/metrics`` listens on (``--metrics-address``)."""


class EventDeduplicator:
    """Remembers the last Event posted per lease, so retries do not repeat it (no spam)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, str]] = {}

    def is_new(self, key: str, reason: str, message: str) -> bool:
        """Whether (reason, message) differs from the lease's last Event; records it if so."""
        if self._last.get(key) == (reason, message):
            return False
        self._last[key] = (reason, message)
        return True

    def forget(self, key: str) -> None:
        """Drop a deleted lease's memory."""
        self._last.pop(key, None)


def _backoff(attempts: int, cap: float) -> float:
    return float(min(cap, 0.5 * 2 ** min(attempts, 16)))


class Hub:
    """The hub's state between kopf events: the view, the queue, the waiting leases."""

    def __init__(self, options: HubOptions, kube: Kube, metrics: HubMetrics | None = None) -> None:
        self.options = options
        self.kube = kube
        self.metrics = metrics or HubMetrics()
        """What ``/metrics`` shows (a private registry when the caller passes none)."""
        self.view = MarketView(heartbeat_timeout=options.heartbeat_timeout)
        self.queue = WorkQueue()
        self.executor = Executor(kube)
        self.events = EventDeduplicator()
        self.waiting: dict[str, tuple[int, float]] = {}
        """Lease key → (failed attempts, monotonic time before which it is not retried)."""
        self.ready = asyncio.Event()
        self.threads = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="hub")
        self.tasks: list[asyncio.Task[None]] = []
        """The workers and the health loop (kept so they are not garbage-collected)."""
        self._recorded: dict[str, float] = {}
        """Provider → when its lastHeartbeatTime was last written (hub monotonic clock)."""
        self.reputation = ReputationBook(options.reputation)
        """Providers' track records (``status.reputation``), restored on first sight."""
        self.logs = LogsRelay(kube)
        """``kommons logs`` requests, relayed to the providers (kommons.lease_logs)."""
        # --- metering (kommons.hub.metering)
        self.epochs: dict[int, Epoch] = {}
        """SettlementEpochs by id (window and phase), from their watch."""
        self.outages: dict[str, list[Outage]] = {}
        """Provider → its hub-written outage windows (``status.outages``), as last read or
        written (kept when the rest of a provider's status cannot be parsed)."""
        self._late_seen: dict[tuple[str, int, str], int] = {}
        """(lease key, epochId, placementUid) → late seconds already counted, until the epoch
        settles (each step of the lease reports them again)."""

    # --- waking -------------------------------------------------------------------------

    def wake_waiting(self) -> None:
        """The market changed in a way that may let waiting leases fit: queue them."""
        now = time.monotonic()
        for key, (_, not_before) in self.waiting.items():
            self.queue.add(key, max(0.0, not_before - now))

    # --- one step -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        """Plan one lease, hold its capacity, write the plan, absorb what was written."""
        lease = self.view.leases.get(key)
        if lease is None:
            return
        world = self.view.world(
            lease,
            ready_timeout=self.options.ready_timeout,
            replace_after=self.options.replace_after,
        )
        started = time.perf_counter()
        plan = plan_lease(lease, world)
        metered = self._meter(lease, plan, world.placements, world.now)
        if plan.decision is not None and plan.request is not None:
            self.view.commit(plan.decision, plan.request)
            log.info(
                "lease %s: %s (considered %d, feasible %d, %.1f ms)",
                key,
                plan.decision.message,
                plan.decision.considered,
                plan.decision.feasible,
                (time.perf_counter() - started) * 1000,
            )
        plan.events = [e for e in plan.events if self.events.is_new(key, e.reason, e.message)]
        outcome = Outcome()
        loop = asyncio.get_running_loop()
        if metered.handover and plan.remove_finalizer:
            handed = await loop.run_in_executor(
                self.threads, self._hand_over, lease, metered.handover
            )
            if not handed:  # the lease stays (and keeps its usage) until it is handed over
                plan.remove_finalizer = False
                self.queue.add(key, HANDOVER_RETRY_SECONDS)
        if plan.writes or plan.events:
            outcome = await loop.run_in_executor(self.threads, self.executor.execute, lease, plan)
        if metered.release and not outcome.conflict:
            await loop.run_in_executor(self.threads, self._release, metered.release)
        self._absorb(key, plan, outcome)
        try:
            self._observe(lease, plan, outcome, world.now, time.perf_counter() - started)
        except Exception:  # metrics must never fail (and so retry) a step that is done
            log.exception("lease %s: metrics not recorded", key)

    def _observe(
        self,
        lease: ComputeLease,
        plan: LeasePlan,
        outcome: Outcome,
        now: datetime,
        seconds_taken: float,
    ) -> None:
        """Count one step in the hub's metrics (:mod:`kommons.metrics`)."""
        metrics = self.metrics
        metrics.reconcile_seconds.observe(seconds_taken)
        decision = plan.decision
        if decision is not None and decision.wanted > 0:
            result = "placed" if decision.scheduled else "unschedulable"
            metrics.scheduling_attempts.labels(result=result).inc()
            for reason, count in decision.rejected_counts.items():
                metrics.scheduling_rejections.labels(reason=str(reason)).inc(count)
            first = not (lease.status and lease.status.placements)
            created = lease.metadata.creation_timestamp
            if decision.scheduled and first and created is not None and not outcome.conflict:
                metrics.scheduling_latency.observe(max(0.0, (now - created).total_seconds()))
        if outcome.conflict:
            return
        deleted = {p.metadata.uid for p in outcome.deleted}
        moved = [e for e in plan.endings if e.kind == "FailedOver" and e.placement_uid in deleted]
        metrics.failovers.inc(len(moved))
        before = lease.status.cost if lease.status else None
        after = plan.status.cost if plan.status else None
        if after is not None:
            added = Decimal(after.accrued) - Decimal(before.accrued if before else "0")
            if added > 0:
                metrics.accrued_tokens.inc(float(added))

    # --- metering ---------------------------------------------------------------------------

    def _meter(
        self,
        lease: ComputeLease,
        plan: LeasePlan,
        placements: Sequence[LeasePlacement],
        now: datetime,
    ) -> Metered:
        """Amend ``plan`` with the lease's ledger (usage, cost, the settlement finalizer rule)."""
        metered = meter(
            lease,
            plan.status,
            placements,
            removing_finalizer=plan.remove_finalizer,
            epochs=self.epochs,
            outages=self.outages,
            now=now,
        )
        plan.status = metered.status
        key = lease_key(lease)
        new = 0
        for (epoch_id, placement_uid), seconds_ in metered.late.items():
            seen = (key, epoch_id, placement_uid)
            new += max(0, seconds_ - self._late_seen.get(seen, 0))
            self._late_seen[seen] = max(seconds_, self._late_seen.get(seen, 0))
        if new:
            self.metrics.late_seconds.inc(new)
            log.info(
                "lease %s: %d replica-second(s) reported for epochs already sealed; not billed",
                key,
                new,
            )
        return metered

    def _hand_over(self, lease: ComputeLease, handover: Mapping[int, Sequence[LeaseUsage]]) -> bool:
        """Write a going lease's usage into its epochs' ``status.departed``; True when done.

        Each write is conditional on the epoch's resourceVersion, so it and the settlement
        loop's seal (conditional too) never miss each other: the usage is in the seal either
        through the lease (still there when the epoch was read) or through the epoch. An epoch
        with a root was sealed while the lease was there: nothing to hand over.
        """
        meta = lease.metadata
        where = f"{meta.namespace}/{meta.name}"
        for epoch_id, usage in sorted(handover.items()):
            entries = [
                DepartedUsage(
                    lease=where,
                    lease_uid=str(meta.uid),
                    placement_uid=u.placement_uid,
                    provider=u.provider,
                    billing_account=u.billing_account,
                    ready_seconds=u.ready_seconds,
                    amount=u.amount,
                ).to_api()
                for u in usage
            ]
            try:
                done = hand_over_to_epoch(self.kube, epoch_id, entries)
            except KubeError as exc:
                log.warning("lease %s: usage not handed to epoch %d yet: %s", where, epoch_id, exc)
                return False
            if not done:
                return False
            log.info(
                "lease %s: its usage in epoch %d (%d placement(s)) handed over to the epoch",
                where,
                epoch_id,
                len(entries),
            )
        return True

    def _release(self, placements: Sequence[LeasePlacement]) -> None:
        """Drop the metering finalizer of placements whose final checkpoint is ingested."""
        for placement in placements:
            meta = placement.metadata
            finalizers = [f for f in meta.finalizers or () if f != FINALIZER_METERING]
            try:
                self.kube.patch(
                    r.LEASE_PLACEMENTS,
                    str(meta.name),
                    {
                        "metadata": {
                            "finalizers": finalizers,
                            "resourceVersion": meta.resource_version,
                        }
                    },
                    meta.namespace,
                )
            except (Conflict, NotFound) as exc:
                log.debug("placement %s/%s not released: %s", meta.namespace, meta.name, exc)

    def _lease_gone(self, placement: LeasePlacement) -> bool:
        """Whether the placement's lease (that very object, by uid) is gone from the API server."""
        ref = placement.spec.lease_ref
        lease = self.kube.get_or_none(r.COMPUTE_LEASES, ref.name, ref.namespace)
        return lease is None or (lease.get("metadata") or {}).get("uid") != ref.uid

    def release_orphan(self, placement: LeasePlacement) -> None:
        """Release a placement's metering finalizer if its lease is gone from the API server."""
        if self._lease_gone(placement):
            self._release([placement])

    def delete_if_orphan(self, placement: LeasePlacement) -> None:
        """Delete a live placement whose lease is gone from the API server.

        The lease's finalizer keeps it until its placements are gone, and the lease's DELETED
        event removes what the view still holds; a placement whose create landed after both
        (a hub SIGKILLed with the create in flight, committed by a starved API server seconds
        later: chaos run, lease ``c103``) is caught here, at its next event.
        """
        if not self._lease_gone(placement):
            return
        meta = placement.metadata
        log.warning(
            "placement %s/%s: its lease %s/%s is gone; deleting it",
            meta.namespace,
            meta.name,
            placement.spec.lease_ref.namespace,
            placement.spec.lease_ref.name,
        )
        self._delete_placement(str(meta.name), str(meta.namespace), meta.uid)

    def set_epoch(self, body: Mapping[str, Any]) -> list[str]:
        """A SettlementEpoch changed: remember it; the keys of the leases to re-meter."""
        epoch = _parse(SettlementEpoch, body, "settlement epoch")
        if epoch is None or epoch.spec.epoch_id is None:
            return []
        epoch_id = epoch.spec.epoch_id
        phase = epoch.status.phase if epoch.status else None
        new = epoch_of(epoch_id=epoch_id, start=epoch.spec.start, end=epoch.spec.end, phase=phase)
        before = self.epochs.get(epoch_id)
        if before == new:
            return []
        self.epochs[epoch_id] = new
        settled = sorted(i for i, e in self.epochs.items() if e.phase in ("Confirmed", "Failed"))
        if new.phase in ("Confirmed", "Failed"):
            self._late_seen = {k: v for k, v in self._late_seen.items() if k[1] != epoch_id}
        for old in settled[: max(0, len(settled) - EPOCH_MEMORY)]:
            del self.epochs[old]  # folded long ago (its leases were re-metered when it settled)
        return to_remeter(epoch_id, before, new, self.view.leases, self.view.placements_of_key)

    def remeter(self, keys: Sequence[str]) -> None:
        """Queue the leases an epoch's change concerns."""
        for key in keys:
            self.queue.add(key, 0.2)

    def _absorb(self, key: str, plan: LeasePlan, outcome: Outcome) -> None:
        for body in outcome.written:
            self.view.set_placement(parse(LeasePlacement, body))
        if plan.decision is not None:
            # Holds follow the placements as they are now, written or not.
            self.view.settle_holds(key, [c.provider for c in plan.decision.chosen])
        if outcome.lease is not None:
            self.view.set_lease(parse(ComputeLease, outcome.lease))
        if plan.endings:
            self._count_endings(plan, outcome)
        if outcome.conflict:
            self.queue.add(key, 0.5)
            return
        if plan.waiting_for_capacity:
            attempts = self.waiting.get(key, (0, 0.0))[0] + 1
            retry_at = time.monotonic() + _backoff(attempts, self.options.retry_seconds)
            self.waiting[key] = (attempts, retry_at)
        else:
            self.waiting.pop(key, None)
        if plan.recheck_after is not None:
            self.queue.add(key, plan.recheck_after + 0.5)

    # --- reputation -----------------------------------------------------------------------

    def _restore_reputation(self, name: str) -> None:
        """Start the provider's record from its stored status the first time the hub needs it."""
        if not self.reputation.knows(name):
            provider = self.view.providers.get(name)
            stored = provider.status.reputation if provider and provider.status else None
            self.reputation.restore(name, stored, now=datetime.now(UTC), at=time.monotonic())

    def _count_endings(self, plan: LeasePlan, outcome: Outcome) -> None:
        """Count the placements the executor did delete (the book ignores the others)."""
        for ending in plan.endings:
            self._restore_reputation(ending.provider)
        deleted = [str(p.metadata.uid) for p in outcome.deleted if p.metadata.uid]
        self.reputation.end(plan.endings, deleted, at=time.monotonic())

    def _reputation_due(self, name: str, now: float) -> Reputation | None:
        """Observe the provider's heartbeat for this tick; its record, if it is worth writing."""
        self._restore_reputation(name)
        beat = self.view.heartbeats.get(name)
        age = None if beat is None else now - beat.seen_at
        self.reputation.tick(name, age, timeout=self.options.heartbeat_timeout, at=now)
        return self.reputation.due(name, now=datetime.now(UTC), at=now)

    async def remove_orphans(self, key: str, uid: str) -> None:
        """Delete the placements of a lease that is gone although they were not.

        Normally the hub's finalizer keeps a lease until its placements are removed; a lease
        whose finalizer was stripped by hand goes at once, and its placements would run on.
        """
        orphans = [
            p
            for p in self.view.placements.get(uid, {}).values()
            if p.metadata.deletion_timestamp is None
        ]
        if not orphans:
            return
        log.warning(
            "lease %s went before its %d placement(s) (finalizer removed?); deleting them",
            key,
            len(orphans),
        )
        loop = asyncio.get_running_loop()
        for placement in orphans:
            meta = placement.metadata
            try:
                await loop.run_in_executor(
                    self.threads,
                    self._delete_placement,
                    str(meta.name),
                    str(meta.namespace),
                    meta.uid,
                )
            except Exception as exc:
                log.warning("placement %s/%s not deleted: %s", meta.namespace, meta.name, exc)

    def _delete_placement(self, name: str, namespace: str, uid: str | None) -> None:
        self.kube.delete(r.LEASE_PLACEMENTS, name, namespace, uid=uid)

    async def worker(self) -> None:
        """Take leases from the queue, one step each, until cancelled."""
        await self.ready.wait()
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
            except Exception:
                self.metrics.reconcile_errors.inc()
                log.exception("lease %s: step failed; retrying", key)
                self.queue.add(key, 2.0)
            finally:
                self.queue.done(key)

    # --- providers' health ----------------------------------------------------------------

    def forget_provider(self, name: str) -> None:
        """A provider was deleted: drop what the hub remembers about it (bounded memory)."""
        self._recorded.pop(name, None)
        self.reputation.forget(name)

    def _write_provider_status(self, name: str, patch: dict[str, object]) -> dict[str, Any]:
        return self.kube.patch(r.PROVIDERS, name, {"status": patch}, subresource="status")

    def _snapshot_metrics(self) -> None:
        """Refresh the market gauges; a failure leaves the last ones (never stops the loop)."""
        try:
            self.metrics.snapshot = take_snapshot(self.view, self.epochs, now=time.monotonic())
        except Exception:  # metrics must never take the providers' health loop down
            log.exception("metrics snapshot failed; the gauges keep their last values")

    async def health_loop(self) -> None:
        """Re-evaluate providers' phases; write the ones that changed; wake waiting leases."""
        await self.ready.wait()
        loop = asyncio.get_running_loop()
        while True:
            self._snapshot_metrics()
            flipped = self.view.refresh_health()
            if flipped:
                self.wake_waiting()
            for name in flipped:  # failover: plan the leases of a provider that flipped
                for key in self.view.leases_on(name):
                    self.queue.add(key)
            for name, provider in list(self.view.providers.items()):
                beat = self.view.heartbeats.get(name)
                now = time.monotonic()
                patch: dict[str, object] | None = health_status_patch(
                    provider,
                    self.view.health(name),
                    last_heartbeat=beat.seen_wall if beat else None,
                    now=datetime.now(UTC),
                )
                record = beat is not None and now - self._recorded.get(name, 0.0) >= (
                    self.options.heartbeat_record_seconds
                )
                if patch is None and record and beat is not None:
                    patch = {"lastHeartbeatTime": beat.seen_wall.strftime("%Y-%m-%dT%H:%M:%SZ")}
                outages = outages_after(  # metering: the hub's record of unreachability
                    self.outages.get(name),
                    unreachable=beat is None or now - beat.seen_at > self.options.heartbeat_timeout,
                    last_heartbeat=beat.seen_wall if beat else None,
                    now=datetime.now(UTC),
                )
                if outages is not None:
                    patch = {**(patch or {}), "outages": [o.to_api() for o in outages]}
                reputation = self._reputation_due(name, now)
                if reputation is not None:
                    patch = {**(patch or {}), "reputation": reputation.to_api()}
                if patch is None:
                    continue
                if "lastHeartbeatTime" in patch:
                    self._recorded[name] = now
                try:
                    body = await loop.run_in_executor(
                        self.threads, self._write_provider_status, name, patch
                    )
                except Exception as exc:
                    log.warning("provider %s: status not written: %s", name, exc)
                    continue
                if reputation is not None:
                    self.reputation.written(name, reputation, at=now)
                if outages is not None:
                    self.outages[name] = outages
                    for key in self.view.leases_on(name):
                        self.queue.add(key)
                if "phase" in patch and provider.status and provider.status.phase != patch["phase"]:
                    log.info("provider %s: %s -> %s", name, provider.status.phase, patch["phase"])
                if self.view.set_provider(body):
                    self.wake_waiting()
            await asyncio.sleep(self.options.provider_check_seconds)


def _parse(model: Any, body: Mapping[str, Any], what: str) -> Any:
    try:
        return parse(model, body)
    except ValidationError as exc:
        name = (body.get("metadata") or {}).get("name")
        log.warning("%s %s: cannot be parsed, ignored: %s", what, name, exc)
        return None


def build_registry(
    options: HubOptions,
    kube: Kube,
    *,
    balances: BalanceReader | None = None,
    metrics: HubMetrics | None = None,
) -> tuple[kopf.OperatorRegistry, Hub]:
    """Every handler of the hub, bound to one :class:`Hub`.

    ``balances`` reads escrow balances on chain (default: the chain of ``options.chain``):
    with it the payment guard runs (:mod:`kommons.hub.payment_loop`); without it leases are
    never suspended for payment.
    """
    registry = kopf.OperatorRegistry()
    hub = Hub(options, kube, metrics)
    view = hub.view
    if balances is None and options.chain is not None:
        balances = LazyBalances(options.chain.connect)  # payment: connects on the first read
    view.payment_guard = balances is not None  # payment: before any lease is planned

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, role="hub")
        # The hub posts its own Events (kommons-hub); kopf's per-handler notes would be one
        # log line and one Event write per watch event.
        settings.posting.enabled = False
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        hub.tasks = [asyncio.create_task(hub.worker()) for _ in range(options.workers)]
        hub.tasks.append(asyncio.create_task(hub.health_loop()))
        # Push providers' agents run here, so only in the acting hub (kommons.hub.push).
        push = PushAgents(kube, view, PushOptions.for_timeout(options.heartbeat_timeout))
        hub.tasks.append(asyncio.create_task(push.run(ready=hub.ready)))
        # payment: the guard reads balances and suspends/resumes leases (acting hub only)
        if balances is None:
            log.info("payment guard off: no chain to read escrow balances from (--chain-rpc)")
        else:
            guard = PaymentLoop(
                settings=options.payment,
                reader=balances,
                view=view,
                write=lambda account, status: write_status(kube, account, status),
                replan=hub.queue.add,
                threads=hub.threads,
                epochs=lambda: read_epochs(kube),
                on_read_error=hub.metrics.chain_errors.labels(loop="payment").inc,
            )
            hub.tasks.append(asyncio.create_task(guard.run(hub.ready)))
        # Settlement (kommons.hub.settlement_loop): also only in the acting hub.
        settlement = settlement_loop(options, kube, hub.metrics)
        if settlement is not None:
            hub.tasks.append(asyncio.create_task(settlement.run()))

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(options.kubeconfig)

    # --- indexes: the view, fed before any lease is planned ----------------------------

    @kopf.index(*PLACEMENTS, registry=registry)
    async def placement_index(body: kopf.Body, **_: Any) -> None:
        placement = _parse(LeasePlacement, body, "placement")
        if placement is not None:
            key = view.set_placement(placement)
            hub.queue.add(key)
            live = placement.metadata.deletion_timestamp is None
            if live and hub.ready.is_set() and key not in view.leases:
                # every lease is in the view once the hub is ready: this one's lease may be gone
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(hub.threads, hub.delete_if_orphan, placement)
            if only_metering_finalizer(placement):
                # normally released by its lease's step; a lease that went first (it does not
                # wait for an Unreachable provider) has nothing left to ingest into
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(hub.threads, hub.release_orphan, placement)

    @kopf.index(*PROVIDERS, registry=registry)
    async def provider_index(body: kopf.Body, **_: Any) -> None:
        stored = parse_outages(body)
        if stored is not None:
            hub.outages[str(body.metadata.name)] = stored
        if view.set_provider(body):
            hub.wake_waiting()

    @kopf.index(*EPOCHS, registry=registry)
    async def epoch_index(body: kopf.Body, **_: Any) -> None:
        hub.remeter(hub.set_epoch(body))

    @kopf.index(
        "coordination.k8s.io",
        "v1",
        "leases",
        when=lambda name, namespace, **_: (
            name == HEARTBEAT_LEASE and str(namespace).startswith(PROVIDER_NAMESPACE_PREFIX)
        ),
        registry=registry,
    )
    async def heartbeat_index(namespace: str | None, spec: kopf.Spec, **_: Any) -> None:
        # The provider is the one whose namespace this is: never a label the agent wrote.
        renew = spec.get("renewTime")
        provider = str(namespace)[len(PROVIDER_NAMESPACE_PREFIX) :]
        if renew and view.heartbeat(provider, str(renew)):
            hub.wake_waiting()

    @kopf.index(*POOLS, registry=registry)
    async def pool_index(name: str, body: kopf.Body, **_: Any) -> None:
        pool = _parse(ProviderPool, body, "pool")
        if pool is not None:
            view.pools[name] = pool
            hub.wake_waiting()

    @kopf.index(*ACCOUNTS, registry=registry)
    async def account_index(name: str, body: kopf.Body, **_: Any) -> None:
        account = _parse(BillingAccount, body, "billing account")
        if account is not None:
            absorb(view, account, hub.queue.add)  # payment: re-plan its leases if it matters
            hub.wake_waiting()

    @kopf.index("", "v1", "namespaces", registry=registry)
    async def namespace_index(name: str, labels: Mapping[str, str], **_: Any) -> None:
        if view.namespaces.get(name) != dict(labels):
            view.namespaces[name] = dict(labels)
            hub.wake_waiting()

    def _config_changed(keys: list[str]) -> None:
        if hub.ready.is_set():  # before that, every lease is planned anyway
            for key in keys:
                hub.queue.add(key)

    # config and secrets (kommons.config_copies): names and versions only, never data
    @kopf.index("", "v1", "secrets", registry=registry)
    async def secret_index(body: kopf.Body, **_: Any) -> None:
        _config_changed(view.set_config("Secret", body))

    @kopf.index("", "v1", "configmaps", registry=registry)
    async def configmap_index(body: kopf.Body, **_: Any) -> None:
        _config_changed(view.set_config("ConfigMap", body))

    # --- regular handlers: kopf starts them once every index is populated --------------

    @kopf.on.event(*LEASES, registry=registry)
    async def lease_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        hub.ready.set()
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if type == "DELETED":
            view.remove_lease(key)
            hub.events.forget(key)
            hub.waiting.pop(key, None)
            hub.logs.forget(key)
            await hub.remove_orphans(key, str(body.metadata.uid))
            return
        lease = _parse(ComputeLease, body, "lease")
        if lease is not None:
            view.set_lease(lease)
            hub.queue.add(key)
            request = hub.logs.take(key, body.metadata)
            if request is not None:  # `kommons logs`: runs on, in the relay's own threads
                hub.logs.submit(key, dict(body), request, view.placements_of_key(key))

    @kopf.on.event(*PROVIDERS, registry=registry)
    async def provider_event(name: str, type: str | None, **_: Any) -> None:
        hub.ready.set()
        if type == "DELETED":
            view.remove_provider(name)
            hub.forget_provider(name)

    @kopf.on.event(*PLACEMENTS, registry=registry)
    async def placement_deleted(body: kopf.Body, type: str | None, **_: Any) -> None:
        if type != "DELETED":
            return
        ref = body.spec.get("leaseRef") or {}
        key = f"{ref.get('namespace')}/{ref.get('name')}"
        view.remove_placement(str(ref.get("uid")), str(body.spec.get("provider")), key)
        hub.queue.add(key)
        hub.wake_waiting()

    @kopf.on.event(*POOLS, registry=registry)
    async def pool_deleted(name: str, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            view.pools.pop(name, None)

    @kopf.on.event(*ACCOUNTS, registry=registry)
    async def account_deleted(name: str, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            gone = view.accounts.pop(name, None)
            for key in view.leases_billed_by(gone) if gone is not None else ():
                hub.queue.add(key)  # billed to another account now, or to none

    @kopf.on.event("", "v1", "secrets", registry=registry)
    async def secret_deleted(name: str, namespace: str | None, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            _config_changed(view.remove_config("Secret", str(namespace), name))

    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def configmap_deleted(
        name: str, namespace: str | None, type: str | None, **_: Any
    ) -> None:
        if type == "DELETED":
            _config_changed(view.remove_config("ConfigMap", str(namespace), name))

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_deleted(name: str, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            view.namespaces.pop(name, None)

    return registry, hub
