"""Decide one step of a ComputeLease: a pure function from (lease, what the hub knows) to a plan.

:func:`plan_lease` reads the world only through its arguments (the lease, its placements, the
gates' inputs, a read-only :class:`MarketReader` and the clock) and returns a
:class:`LeasePlan`: placements to create, update and delete, the status to write, Events, and
the scheduling decision whose capacity the executor holds. It writes nothing.

The branches, in order (``docs/architecture.md`` has the table):

1. deleting: delete every live placement; drop the finalizer once none is left.
2. gates: pool missing, namespace not admitted by the pool, no BillingAccount, template the
   agent would refuse, config the lease takes along missing or unlisted (:func:`config_gate`):
   nothing is scheduled, existing placements are kept (fail safe).
3. stale placements: a placement whose per-replica resources differ from the lease's, or
   whose locked price is above the lease's ``maxPricePerHour``, is re-placed: its replicas are
   scheduled again (possibly on the same provider, at that provider's current price, with an
   Event) and the old placement goes once the new ones are written. If they cannot be placed,
   the stale placement keeps running and the lease says why.
4. scale down: the surplus over ``spec.replicas`` leaves the most expensive placements first;
   each provider that loses replicas gets a ``ScaledDown`` history entry and Normal Event.
5. scale up: the missing replicas are scheduled, all or nothing; a provider that already runs
   some gets more at its placement's locked price.
6. pass-through changes (template, suspend, expose ...) update placements at their price.

The lease's life (:mod:`kommons.hub.lifecycle`, hooks marked ``lifecycle``): a lease whose
term passed or whose Job finished ends (placements deleted, the lease kept with phase
``Expired``, ``Succeeded`` or ``Failed``) right after branch 1; a resumed lease's suspended
placements go back where they still fit and are re-placed (branch 3) where they do not. A Job
placement that leaves with progress has its count recorded in the status in a step of its
own before branch 3 replaces it; a Job lease's new placements run only the completions left,
on providers that do not run a part of it yet.
Config (:mod:`kommons.config_copies`): every placement written carries
``configRevisions`` (the versions of the ConfigMaps and Secrets the lease takes along), and
the plan lists the copies to (re)write next to them (``copies``).
Failover (:mod:`kommons.hub.failover`) hooks into 1 and 3: a deleted lease does not wait for
placements on Unreachable providers (bounded deletion), and a placement on an Unreachable
provider, or one whose replicas stay not ready for a provider-side reason, is one more stale
placement, re-placed away from that provider (history, ``Relocated`` condition, Warning Event,
``endings``). Every placement written carries a fencing token.

Payment (:mod:`kommons.hub.payment`, hooks marked ``payment``): before the gates, the lease's
``PaymentOK`` follows its BillingAccount's standing; once the account is ``Suspended`` the
lease is planned as suspended (:func:`kommons.hub.lifecycle.as_planned`) and
``status.paymentSuspendedAt`` records it, until a top-up resumes it.

Endpoints (:mod:`kommons.hub.endpoints`): every status the plan writes lists the endpoints the
placements' agents reported, once the hub checked them, with the ``Endpoints`` condition and
the ``EndpointPublished``/``EndpointChanged``/``EndpointWithdrawn`` Events.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from kommons import config_copies
from kommons.api import (
    ENDPOINTS_CONDITION,
    BillingAccountStatus,
    ComputeLease,
    ComputeLeaseStatus,
    JobSpec,
    LeaseHistoryEntry,
    LeasePlacement,
    ProviderPool,
    SchedulingDecision,
    get_condition,
    template_violations,
)
from kommons.api_names import FINALIZER_HUB
from kommons.hub import endpoints, failover, lifecycle, payment
from kommons.hub.lease_status import Gate, lease_status, readiness, status_changed
from kommons.hub.placements import (
    SCALED_DOWN,
    locked_price,
    placement_object,
    placement_spec,
    same_spec,
    scaled_down_entry,
)
from kommons.hub.placements import scale_down as scale_down_counts
from kommons.hub.views import lease_request, pool_policy, selects
from kommons.money import format_units
from kommons.scheduler import Decision, LeaseRequest, PoolPolicy, placement_key


class MarketReader(Protocol):
    """The read-only part of the hub's market view a plan may consult."""

    def decide(
        self,
        lease: LeaseRequest,
        pool: PoolPolicy,
        *,
        already_placed: Mapping[str, int],
        released: frozenset[str],
        exclude: frozenset[str] = frozenset(),
    ) -> Decision:
        """Where the missing replicas of ``lease`` would go.

        ``released`` are placement keys whose capacity counts as free for this decision
        (placements being replaced); ``exclude`` are providers not to use.
        """
        ...


@dataclass(frozen=True)
class LeaseEvent:
    """A Kubernetes Event to post on the lease."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


PlacementEndKind = Literal["Completed", "Failed", "FailedOver"]
"""How a placement ended, for the provider's reputation: ``Completed`` (the lease ended,
shrank, expired or succeeded), ``Failed`` (the workload failed on the provider) or
``FailedOver`` (the provider became unreachable or never got the replicas ready, so they moved
elsewhere)."""


@dataclass(frozen=True)
class PlacementEnding:
    """A placement the plan ends, and how, so the hub can keep the provider's track record."""

    provider: str
    kind: PlacementEndKind
    placement_uid: str | None = None


def ending(placement: LeasePlacement, kind: PlacementEndKind) -> PlacementEnding:
    """How ``placement``, which the plan deletes, ended."""
    return PlacementEnding(placement.spec.provider, kind, placement.metadata.uid)


@dataclass(frozen=True)
class World:
    """What the hub knows around one lease when it plans."""

    placements: Sequence[LeasePlacement]
    """The lease's placements, deleting ones included."""
    pool: ProviderPool | None
    """The lease's pool, if it exists."""
    account: str | None
    """The BillingAccount selecting the lease's namespace (first by name), if any."""
    namespace_labels: Mapping[str, str]
    """Labels of the lease's namespace."""
    market: MarketReader
    """The market view (read only)."""
    now: datetime
    """The hub's clock."""
    ready_timeout: float = 120.0
    """Seconds replicas may take to become ready before the lease carries the provider's
    reason."""
    unreachable: Mapping[str, str] = field(default_factory=dict)
    """Providers of the lease's placements that the hub sees ``Unreachable`` → why."""
    replace_after: float = 300.0
    """Seconds replicas may stay not ready for a provider-side reason before they are
    re-placed on another provider."""
    selecting: Sequence[str] = ()
    """Every BillingAccount selecting the namespace, sorted (``account`` is the first); empty
    means just ``account``."""
    account_status: BillingAccountStatus | None = None
    """The paying account's status: the payment guard's last assessment."""
    payment_guard: bool = False
    """Whether the payment guard runs (the hub has ``--chain-rpc``)."""
    config: Mapping[tuple[str, str, str], str | None] = field(default_factory=dict)
    """ConfigMaps and Secrets of tenant namespaces: ``(namespace, kind, name)`` →
    ``resourceVersion`` (``None``: exists but cannot be copied, e.g. a service-account token).
    Names and versions only: the hub keeps no data in memory."""
    copies: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """The hub's copies in providers' hub namespaces: ``(namespace, name)`` → the source
    ``resourceVersion`` each was made from (:mod:`kommons.config_copies`)."""


@dataclass(frozen=True)
class CopyWrite:
    """A copy of a tenant's ConfigMap or Secret the hub (re)writes for one placement."""

    placement: str
    """The placement's name."""
    namespace: str
    """The placement's namespace (the provider's hub namespace), where the copy goes."""
    kind: config_copies.Kind
    name: str
    source_namespace: str
    owner_uid: str | None = None
    """The placement's uid as the plan saw it; ``None`` for a placement this plan creates
    (the executor takes it from the create)."""


@dataclass
class LeasePlan:
    """What one step of a lease does; the executor carries it out."""

    add_finalizer: bool = False
    remove_finalizer: bool = False
    create: list[LeasePlacement] = field(default_factory=list)
    """New placements (no resourceVersion)."""
    update: list[LeasePlacement] = field(default_factory=list)
    """Existing placements with a new spec; metadata (resourceVersion) of the observed one."""
    delete: list[LeasePlacement] = field(default_factory=list)
    """Placements to delete, as observed."""
    status: ComputeLeaseStatus | None = None
    """The status to write, or ``None`` when it is unchanged."""
    events: list[LeaseEvent] = field(default_factory=list)
    decision: Decision | None = None
    """A scheduling decision whose chosen placements the executor holds in the market."""
    request: LeaseRequest | None = None
    """The request ``decision`` was made for."""
    waiting_for_capacity: bool = False
    """The lease could not be placed: look again when the market changes."""
    recheck_after: float | None = None
    """Plan again after this many seconds even if nothing changes (readiness timeout)."""
    endings: list[PlacementEnding] = field(default_factory=list)
    """Placements this plan ends (a subset of ``delete``), for providers' reputation."""
    copies: list[CopyWrite] = field(default_factory=list)
    """Copies of ConfigMaps and Secrets to (re)write next to the placements, after them."""

    @property
    def writes(self) -> int:
        """How many API writes the plan asks for (Events aside)."""
        return (
            len(self.create)
            + len(self.update)
            + len(self.delete)
            + int(self.status is not None)
            + int(self.add_finalizer or self.remove_finalizer)
            + len(self.copies)
        )


def payment_of(lease: ComputeLease, world: World) -> payment.LeasePayment:
    """The lease's ``PaymentOK`` and whether the hub suspends it for payment."""
    selecting = tuple(world.selecting) or ((world.account,) if world.account else ())
    return payment.lease_payment(
        lease,
        selecting=selecting,
        status=world.account_status,
        guard=world.payment_guard,
        now=world.now,
    )


def gates(
    lease: ComputeLease, world: World, pay: payment.LeasePayment | None = None
) -> tuple[list[Gate], Gate | None]:
    """Conditions that must hold before scheduling, and the first one that blocks it.

    ``pay`` is the lease's payment state (computed from ``world`` when not given).
    """
    namespace = str(lease.metadata.namespace)
    pool_name = lease.spec.pool_ref.name
    account = world.account
    paying = (pay or payment_of(lease, world)).gate
    blocked: Gate | None = None
    template = lease.spec.template.to_api()
    violations = template_violations(template, path="spec.template")
    if world.pool is None:
        blocked = Gate(
            "Scheduled", False, "PoolNotFound", f"ProviderPool {pool_name} does not exist"
        )
    elif not selects(
        world.pool.spec.tenant_namespace_selector, world.namespace_labels, empty_selects_all=True
    ):
        blocked = Gate(
            "Scheduled",
            False,
            "NotAllowedByPool",
            f"ProviderPool {pool_name} does not admit namespace {namespace}"
            " (tenantNamespaceSelector)",
        )
    elif account is None:
        blocked = Gate("Scheduled", False, "NoBillingAccount", paying.message)
    elif violations:
        blocked = Gate("Scheduled", False, "InvalidTemplate", "; ".join(violations))
    else:
        blocked = config_gate(lease, world, template=template)
    return [paying] + ([blocked] if blocked else []), blocked


def config_revisions(lease: ComputeLease, world: World) -> dict[str, str] | None:
    """``Kind/name`` → resourceVersion of what the lease takes along (``None``: nothing).

    Only sources that exist (:func:`config_gate` holds the lease back otherwise).
    """
    namespace = str(lease.metadata.namespace)
    out: dict[str, str] = {}
    for source in config_copies.sources(lease.spec.config_from, lease.spec.image_pull_secrets):
        revision = world.config.get((namespace, source.kind, source.name))
        if revision:
            out[source.key] = revision
    return out or None


def config_gate(lease: ComputeLease, world: World, *, template: Mapping[str, Any]) -> Gate | None:
    """``Scheduled=False`` while the lease's config cannot go along with it, else ``None``.

    Reasons: ``ConfigNotListed`` (the template references a ConfigMap or Secret that
    ``spec.configFrom`` does not list: it would never exist on the provider),
    ``ConfigNotFound`` (a listed one does not exist; nothing is placed until it does),
    ``ConfigNotCopyable`` (a service-account token Secret, meaningful on the hub only).
    ``template`` is the lease's template in wire form (the caller rendered it already).
    """
    namespace = str(lease.metadata.namespace)
    listed = config_copies.sources(lease.spec.config_from, lease.spec.image_pull_secrets)
    unlisted = config_copies.unlisted_references(template, listed)
    if unlisted:
        return Gate("Scheduled", False, "ConfigNotListed", "; ".join(unlisted))
    missing = [s for s in listed if (namespace, s.kind, s.name) not in world.config]
    if missing:
        named = "; ".join(
            f"{s.kind} {s.name} ({s.field}) does not exist in namespace {namespace}"
            for s in missing
        )
        return Gate(
            "Scheduled", False, "ConfigNotFound", f"{named}: nothing is placed until it exists"
        )
    uncopyable = [s for s in listed if world.config.get((namespace, s.kind, s.name)) is None]
    if uncopyable:
        return Gate(
            "Scheduled",
            False,
            "ConfigNotCopyable",
            "; ".join(
                f"{s.kind} {s.name} ({s.field}) is a service-account token of the hub, which"
                " means nothing on a provider: list another Secret"
                for s in uncopyable
            ),
        )
    return None


def copy_writes(
    lease: ComputeLease, world: World, placements: Sequence[LeasePlacement]
) -> list[CopyWrite]:
    """The copies to (re)write next to ``placements``.

    Each source of the lease, for each placement whose copy is missing or was made from
    another version of the source.
    """
    namespace = str(lease.metadata.namespace)
    revisions = config_revisions(lease, world) or {}
    out: list[CopyWrite] = []
    for placement in placements:
        name = str(placement.metadata.name)
        where = str(placement.metadata.namespace)
        for key, revision in sorted(revisions.items()):
            kind, source = config_copies.split_key(key)
            copy = config_copies.copy_name(name, kind, source)
            if world.copies.get((where, copy)) != revision:
                out.append(CopyWrite(name, where, kind, source, namespace, placement.metadata.uid))
    return out


def _payment_events(lease: ComputeLease, pay: payment.LeasePayment) -> list[LeaseEvent]:
    """Events when the lease's payment state changes: short escrow, suspended, resumed."""
    status = lease.status
    was_suspended = status is not None and status.payment_suspended_at is not None
    if pay.suspended and not was_suspended:
        assert pay.ready is not None
        return [LeaseEvent("Warning", "PaymentSuspended", pay.ready.message)]
    if was_suspended and not pay.suspended:
        return [LeaseEvent("Normal", "PaymentResumed", f"resumed: {pay.gate.message}")]
    old = get_condition(status.conditions if status else None, "PaymentOK")
    if (
        pay.gate.reason == "InsufficientEscrow"
        and not pay.gate.ok
        and (old is None or old.reason != pay.gate.reason)
    ):
        return [LeaseEvent("Warning", "InsufficientEscrow", pay.gate.message)]
    return []


def _stale_reason(placement: LeasePlacement, lease: ComputeLease, request: LeaseRequest) -> str:
    """Why a placement must be re-placed, or ``""`` when it still fits the lease."""
    if placement.spec.resources != lease.spec.resources:
        return "the lease's resources changed"
    price = locked_price(placement)
    if request.max_price_per_hour is not None and price > request.max_price_per_hour:
        return (
            f"its locked price {format_units(price)}/h is above maxPricePerHour"
            f" {lease.spec.max_price_per_hour}/h"
        )
    return ""


def _record_scale_down(
    plan: LeasePlan,
    history: list[LeaseHistoryEntry],
    placement: LeasePlacement,
    *,
    left: int,
    lease: ComputeLease,
    world: World,
) -> None:
    """Add the history entry and Normal Event of replicas a scale-down takes off a provider."""
    entry = scaled_down_entry(placement, left=left, wanted=lease.spec.replicas, now=world.now)
    history.append(entry)
    plan.events.append(LeaseEvent("Normal", SCALED_DOWN, entry.message or SCALED_DOWN))


def _decision_status(decision: Decision, now: datetime) -> SchedulingDecision:
    status = SchedulingDecision.model_validate(decision.to_status())
    return status.model_copy(update={"decided_at": now.replace(microsecond=0)})


def _record_carry(
    plan: LeasePlan,
    lease: ComputeLease,
    world: World,
    live: Sequence[LeasePlacement],
    gate_list: list[Gate],
    carry: lifecycle.JobCarry,
    pay: payment.LeasePayment,
) -> LeasePlan:
    """The step that only writes down a leaving Job placement's progress (lifecycle).

    Nothing moves yet: the status (which the executor writes last) first records the
    completions of the placements that are about to be re-placed or removed, so that the
    next step, which deletes them, can never lose that count nor, with a hub restart in
    between, count it twice.
    """
    _finish(plan, lease, world, live, gate_list, None, pay=pay, carry=carry.recorded())
    plan.recheck_after = min(plan.recheck_after or 1.0, 1.0)
    return plan


def _carried_events(
    lease: ComputeLease,
    deleted: Sequence[LeasePlacement],
    carry: lifecycle.JobCarry,
    shares: Mapping[str, JobSpec],
) -> list[LeaseEvent]:
    """One Event per deleted Job placement whose completions were carried over, saying how many.

    ``shares`` are the new placements' shares of what is left.
    """
    if lease.spec.job is None:
        return []
    runs = ", ".join(f"{p} runs {s.completions}" for p, s in sorted(shares.items()))
    events = []
    for old in deleted:
        done = carry.of(old)
        if not done:
            continue
        message = (
            f"{done} completion(s) done on {old.spec.provider} carried over"
            f" ({carry.total}/{lease.spec.job.completions} carried in all); "
            + (runs or "no new placement is needed for the rest")
        )
        events.append(LeaseEvent("Normal", "CompletionsCarried", message))
    return events


def _finish(
    plan: LeasePlan,
    lease: ComputeLease,
    world: World,
    after: Sequence[LeasePlacement],
    gate_list: list[Gate],
    decision: SchedulingDecision | None,
    *,
    history: Sequence[LeaseHistoryEntry] = (),
    token: int = 0,
    pay: payment.LeasePayment | None = None,
    nothing_fits: str | None = None,
    carry: lifecycle.JobCarry | None = None,
) -> LeasePlan:
    """Add the lease's status (when it changed) and the re-checks to ``plan``.

    ``history`` is appended to ``status.history``; ``token`` is the highest fencing token
    issued (``status.lastFencingToken`` never goes down); ``pay`` sets
    ``status.paymentSuspendedAt`` (``None`` keeps it); ``nothing_fits`` is why the missing
    replicas could not be placed (the ``Ready`` message of replicas kept on an Unreachable
    provider says so); ``carry`` is what a Job lease carries (``None``: what ``after`` leaves
    to carry, nothing leaving).
    """
    wanted = lifecycle.job_wanted(lease, after, carry)  # lifecycle: a Job near its end
    ready = readiness(
        lease,
        after,
        now=world.now,
        timeout=world.ready_timeout,
        unreachable=world.unreachable,  # failover: replicas the hub cannot observe
        nothing_fits=nothing_fits,
        wanted=wanted,
    )
    if pay is not None and pay.ready is not None:  # payment: suspended by the hub
        ready = replace(ready, gate=pay.ready)
    current = lease.status
    # endpoints: the placements' reports, checked (provider-written data)
    published = endpoints.lease_endpoints(
        lease, after, previous=current.endpoints if current else None
    )
    endpoint_gates = []
    if published.gate is not None:
        gate = published.gate
        endpoint_gates.append(Gate(ENDPOINTS_CONDITION, gate.ok, gate.reason, gate.message))
    desired = lease_status(
        lease,
        after,
        [*gate_list, ready.gate, *endpoint_gates],
        decision=decision,
        billing_account=world.account,
        now=world.now,
        unreachable=world.unreachable,
        wanted=wanted,
    )
    desired = lifecycle.running_status(  # lifecycle
        lease, after, desired, now=world.now, carry=carry
    )
    if pay is not None:  # payment
        desired = desired.model_copy(update={"payment_suspended_at": pay.suspended_at})
    last_token = max(token, (current.last_fencing_token or 0) if current else 0)
    conditions = desired.conditions
    if published.gate is None:  # the lease exposes nothing (any more)
        conditions = [c for c in conditions or () if c.type != ENDPOINTS_CONDITION] or None
    desired = desired.model_copy(
        update={
            "history": failover.with_history(current.history if current else None, history),
            "last_fencing_token": last_token or None,
            "endpoints": published.endpoints,
            "conditions": conditions,
        }
    )
    plan.events += [LeaseEvent(e.type, e.reason, e.message) for e in published.events]
    if status_changed(lease.status, desired):
        plan.status = desired
        previous = lease.status.conditions if lease.status else None
        old_ready = next((c for c in previous or () if c.type == "Ready"), None)
        late = ready.gate.reason not in (
            "ReplicasStarting",
            "NotPlaced",
            "AllReplicasReady",
            "PaymentSuspended",  # payment: its own Event
        )
        if (
            not ready.gate.ok
            and late
            and (old_ready is None or old_ready.reason != ready.gate.reason)
        ):
            plan.events.append(LeaseEvent("Warning", ready.gate.reason, ready.gate.message))
    # look again at the readiness timeout, the end of the term (lifecycle) or when a placement
    # becomes due for re-placement (failover), whichever is first
    waits = [
        lifecycle.recheck(ready.recheck_after, desired.expires_at, now=world.now),
        failover.recheck_after(lease, after, now=world.now, replace_after=world.replace_after),
    ]
    plan.recheck_after = min((w for w in waits if w is not None), default=None)
    return plan


def plan_lease(lease: ComputeLease, world: World) -> LeasePlan:
    """One step of a lease towards its spec (see the module docstring for the branches)."""
    plan = LeasePlan()
    finalizers = lease.metadata.finalizers or []
    live = [p for p in world.placements if p.metadata.deletion_timestamp is None]

    if lease.metadata.deletion_timestamp is not None:
        plan.delete = live
        plan.endings += [ending(p, "Completed") for p in live]  # the lease ended
        # bounded deletion: placements on Unreachable providers are deleted, not waited for
        waited = [p for p in world.placements if not failover.abandonable(p, world.unreachable)]
        if not waited and FINALIZER_HUB in finalizers:
            plan.remove_finalizer = True
        elif waited:
            _finish(plan, lease, world, waited, [], None)
            plan.recheck_after = None
        return plan
    if FINALIZER_HUB not in finalizers:
        plan.add_finalizer = True

    # --- lifecycle: the term passed or the Job finished: keep the record, delete everything
    end = lifecycle.lease_end(lease, live, now=world.now)
    if end is not None:
        desired_end = lifecycle.ended_status(lease, live, end, now=world.now)
        plan.status = desired_end if status_changed(lease.status, desired_end) else None
        if end.new:  # the record first: the next step (this write's event) deletes
            kind: Literal["Normal", "Warning"] = "Warning" if end.phase == "Failed" else "Normal"
            plan.events.append(LeaseEvent(kind, end.phase, end.message))
            plan.recheck_after = 1.0
            return plan
        plan.delete = live
        # A Job over its backoffLimit failed by its pods' exit codes, which the hub cannot
        # tell from the tenant's own code failing: it does not count against the provider.
        plan.endings = [ending(p, "Completed") for p in live]
        return plan
    # --- end lifecycle

    # --- payment: a lease whose account's escrow stayed short is planned as suspended
    pay = payment_of(lease, world)
    plan.events += _payment_events(lease, pay)
    lease = lifecycle.as_planned(lease, payment_suspended=pay.suspended)
    # --- end payment

    gate_list, blocked = gates(lease, world, pay)
    if blocked is not None:
        return _finish(plan, lease, world, live, gate_list, None, pay=pay)
    assert world.pool is not None  # the gates passed
    assert world.account is not None
    account = world.account
    request = lease_request(lease)
    wanted = lease.spec.replicas
    revisions = config_revisions(lease, world)

    # lifecycle: a resumed lease's suspended placements go back only where they still fit
    resume = lifecycle.resume_check(
        lifecycle.resuming(lease, live), request, pool_policy(world.pool), world.market
    )
    unfit = dict(resume.unfit or {})

    kept: list[LeasePlacement] = []
    stale: dict[str, tuple[LeasePlacement, str]] = {}
    for placement in live:
        why = _stale_reason(placement, lease, request) or unfit.get(placement.spec.provider, "")
        if why:
            stale[placement.spec.provider] = (placement, why)
        else:
            kept.append(placement)
    moving = failover.moves(
        lease,
        kept,
        unreachable=world.unreachable,
        now=world.now,
        replace_after=world.replace_after,
    )
    for provider, move in moving.items():
        stale[provider] = (move.placement, move.message)
    kept = [p for p in kept if p.spec.provider not in moving]
    tokens = itertools.count(failover.token_base(lease, world.placements) + 1)

    # lifecycle: a Job's progress on the placements that leave is written down before they go
    carry = lifecycle.job_carry(lease, live, [old for old, _ in stale.values()])
    if carry.unrecorded:
        return _record_carry(plan, lease, world, live, gate_list, carry, pay)

    targets = {p.spec.provider: p.spec.replicas for p in kept}
    left = 0  # lifecycle: a Job's completions left for new placements
    if lease.spec.job is not None:
        left = lifecycle.job_left(lease.spec.job, carry, kept)
        wanted = lifecycle.job_replicas(lease, kept_replicas=sum(targets.values()), left=left)
        request = replace(request, replicas=wanted)
    if sum(targets.values()) > wanted:
        targets = scale_down_counts(kept, wanted)
    missing = wanted - sum(targets.values())

    decision_status: SchedulingDecision | None = None
    chosen: dict[str, tuple[int, int]] = {}  # provider -> (new replicas, price)
    scheduled = Gate("Scheduled", True, "Placed", f"{wanted}/{wanted} replicas placed")
    if missing > 0 and not lease.spec.suspend:
        released = frozenset(placement_key(request.key, provider) for provider in stale)
        avoid = failover.avoided(lease, world.placements) | frozenset(moving)
        staying = frozenset(p for p, n in targets.items() if n)
        if lease.spec.job is None:
            avoid -= staying
        else:  # lifecycle: a running Job's completions cannot change: new providers only
            avoid |= staying | frozenset(stale)
        decision = world.market.decide(
            request,
            pool_policy(world.pool),
            already_placed={p: n for p, n in targets.items() if n},
            released=released,
            exclude=avoid,
        )
        decision_status = _decision_status(decision, world.now)
        if decision.chosen:
            plan.decision, plan.request = decision, request
            chosen = {c.provider: (c.replicas, c.price_per_hour) for c in decision.chosen}
            scheduled = Gate("Scheduled", True, "Placed", decision.message)
            plan.events.append(LeaseEvent("Normal", "Scheduled", decision.message))
        else:
            plan.waiting_for_capacity = True
            scheduled = Gate("Scheduled", False, "Unschedulable", decision.message)
            plan.events.append(LeaseEvent("Warning", "Unschedulable", decision.message))
    elif missing > 0 and pay.suspended:
        scheduled = Gate(
            "Scheduled", True, "PaymentSuspended", "suspended for payment: missing replicas wait"
        )
    elif missing > 0:
        scheduled = Gate("Scheduled", True, "Suspended", "suspended: missing replicas wait")
    gate_list.append(scheduled)

    # lifecycle: the term's end goes on every placement; a Job's placements that stay keep
    # their share, the new ones split the completions left
    expiry = lifecycle.expires_at(lease, placed=bool(live or chosen), now=world.now)
    new_replicas = {p: n for p, (n, _) in chosen.items() if p not in targets}
    shares = lifecycle.job_shares(lease.spec.job, new_replicas, completions=left)

    after: list[LeasePlacement] = []
    history: list[LeaseHistoryEntry] = []
    for placement in kept:
        provider = placement.spec.provider
        replicas = targets[provider] + chosen.pop(provider, (0, 0))[0]
        if replicas < placement.spec.replicas:  # scaled down: recorded like a move
            _record_scale_down(plan, history, placement, left=replicas, lease=lease, world=world)
        if replicas == 0:
            plan.delete.append(placement)
            plan.endings.append(ending(placement, "Completed"))  # scaled down
            continue
        desired = placement_spec(
            lease,
            provider=provider,
            replicas=replicas,
            price_per_hour=locked_price(placement),
            account=account,
            expires_at=expiry,
            job=placement.spec.job if lease.spec.job is not None else None,
            fencing_token=placement.spec.fencing_token or next(tokens),
            config_revisions=revisions,
        )
        if same_spec(placement.spec, desired):
            after.append(placement)
            continue
        updated = placement.model_copy(update={"spec": desired})
        plan.update.append(updated)
        after.append(updated)

    moved: list[str] = []
    for provider, (replicas, price) in sorted(chosen.items()):
        if provider in stale:
            old, why = stale.pop(provider)
            spec = placement_spec(
                lease,
                provider=provider,
                replicas=replicas,
                price_per_hour=price,
                account=account,
                expires_at=expiry,
                job=shares.get(provider),
                fencing_token=old.spec.fencing_token or next(tokens),
                config_revisions=revisions,
            )
            updated = old.model_copy(update={"spec": spec})
            plan.update.append(updated)
            after.append(updated)
            plan.events.append(
                LeaseEvent(
                    "Normal",
                    "Replaced",
                    f"placement on {provider} re-placed in place because {why}; price now"
                    f" {format_units(price)}/h (was {old.spec.price_per_hour}/h)",
                )
            )
            continue
        new = placement_object(
            lease,
            provider=provider,
            replicas=replicas,
            price_per_hour=price,
            account=account,
            expires_at=expiry,
            job=shares.get(provider),
            fencing_token=next(tokens),
            config_revisions=revisions,
        )
        plan.create.append(new)
        after.append(new)
        moved.append(provider)

    if plan.decision is not None:
        to = [c.provider for c in plan.decision.chosen]
        for provider, (old, why) in sorted(stale.items()):
            plan.delete.append(old)
            gone = moving.get(provider)
            if gone is not None:  # failover: superseded now that its replacement is written
                message = failover.event_message(gone, to)
                plan.endings.append(PlacementEnding(provider, "FailedOver", old.metadata.uid))
                entry = failover.history_entry(gone, to=to, now=world.now)
                history.append(entry.model_copy(update={"completions": carry.of(old)}))
                plan.events.append(LeaseEvent("Warning", gone.kind, message))
                gate_list.append(Gate(failover.RELOCATED, True, gone.kind, message))
            else:
                plan.endings.append(ending(old, "Completed"))  # replaced: the lease changed
                plan.events.append(
                    LeaseEvent(
                        "Normal",
                        "Replaced",
                        f"{old.spec.replicas} replica(s) moved from {provider} to"
                        f" {', '.join(moved) or 'other providers'} because {why}",
                    )
                )
        plan.events += _carried_events(lease, plan.delete, carry, shares)  # lifecycle: Job
    elif missing <= 0:
        plan.delete.extend(old for old, _ in stale.values())  # surplus: nothing to replace
        plan.endings += [ending(old, "Completed") for old, _ in stale.values()]
        for provider in sorted(stale):  # the surplus is what the scale-down removed
            _record_scale_down(plan, history, stale[provider][0], left=0, lease=lease, world=world)
        plan.events += _carried_events(lease, plan.delete, carry, shares)  # lifecycle: Job
    else:
        for _, (old, why) in sorted(stale.items()):
            # fail safe: it keeps running until a replacement exists; suspend still reaches it
            # (lifecycle: a suspended one that no longer fits stays suspended meanwhile)
            if old.spec.suspend != lease.spec.suspend and old.spec.provider not in unfit:
                spec = old.spec.model_copy(update={"suspend": lease.spec.suspend})
                old = old.model_copy(update={"spec": spec})
                plan.update.append(old)
            after.append(old)
            if not lease.spec.suspend:
                gate_list[-1] = Gate(
                    "Scheduled",
                    False,
                    "ReplacementPending",
                    f"placement on {old.spec.provider} must be re-placed because {why}, but: "
                    f"{gate_list[-1].message}",
                )
    # lifecycle: hold the capacity of the placements that resume where they were
    if resume.decision is not None:
        plan.decision = lifecycle.merge_decisions(plan.decision, resume.decision)
        plan.request = request
        plan.events.append(LeaseEvent("Normal", "Resumed", resume.decision.message))
    # config: copies next to every placement that asks for the current versions
    plan.copies = copy_writes(
        lease, world, [p for p in after if p.spec.config_revisions == revisions]
    )
    issued = [p.spec.fencing_token or 0 for p in (*plan.create, *plan.update)]
    token = max([failover.token_base(lease, world.placements), *issued])
    return _finish(
        plan,
        lease,
        world,
        after,
        gate_list,
        decision_status,
        history=history,
        token=token,
        pay=pay,
        nothing_fits=scheduled.message if plan.waiting_for_capacity else None,
        carry=carry,
    )


__all__ = [
    "CopyWrite",
    "LeaseEvent",
    "LeasePlan",
    "MarketReader",
    "PlacementEndKind",
    "PlacementEnding",
    "World",
    "config_gate",
    "config_revisions",
    "copy_writes",
    "ending",
    "gates",
    "payment_of",
    "plan_lease",
]
