"""The whole life of a lease, pure: its term, suspend and resume, run-to-completion, its end.

:func:`kommons.hub.plan.plan_lease` calls these at three points (each hook is marked
``lifecycle`` there):

- **End** (:func:`lease_end`). A lease whose term passed (``status.expiresAt``), whose Job
  completed on every provider, or whose Job failed on one, *ends*: first its record is written
  (phase ``Expired``, ``Succeeded`` or ``Failed``, a history entry, an Event), then, in the next
  step, every placement is deleted (each with a :class:`~kommons.hub.plan.PlacementEnding`).
  In that order, a lost status write can never leave a finished Job without placements, which
  would look like a lease to place again. An ended lease stays ended (:func:`ended`): the hub
  never places it again; create a new lease.
- **Resume** (:func:`resume_check`). A placement suspended while its lease no longer is goes
  back to its provider when that provider still has room for it (one decision per provider,
  held like any decision), and is re-placed elsewhere otherwise.
- **Payment** (:func:`as_planned`). A lease the hub suspends for payment
  (``status.paymentSuspendedAt``, :mod:`kommons.hub.payment`) is planned as if its tenant had
  suspended it; it resumes the same way.
- **Status** (:func:`running_status`). ``expiresAt``, the Job counters, and the time of the
  next re-check (the readiness timeout or the end of the term, whichever comes first).
- **Job progress** (:func:`job_carry`, :func:`job_left`, :func:`job_replicas`). A Job
  placement that leaves before its Job finished (failover, re-placement, resume elsewhere)
  has its completions written into the lease's status first (``carrying``), and only then is
  it replaced: the new placements run the completions left, the placements that stay keep
  their share, and ``succeeded`` keeps counting what was carried (``carriedCompletions``).

The term: ``expiresAt = startedAt + duration``. A lease none of whose replicas has started yet
has a provisional ``expiresAt`` counted from its first placement, so a lease that never
starts does not hold capacity past its term either; it moves to ``startedAt + duration`` when
the replicas start. Suspended time counts (a term is wall-clock time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from kommons.api import (
    HISTORY_LIMIT,
    CarriedCompletions,
    ComputeLease,
    ComputeLeaseStatus,
    JobSpec,
    LeaseHistoryEntry,
    LeasePlacement,
    get_condition,
    parse_duration,
    ready_summary,
    set_condition,
)
from kommons.scheduler import Decision, LeaseRequest, Placement, PoolPolicy, placement_key

EndPhase = Literal["Expired", "Succeeded", "Failed"]
"""The phases a lease ends in."""
JOB_COMPLETE = "JobComplete"
"""Ready reason of a Job placement whose Job completed (agent side)."""
INVALID_PLACEMENT = "InvalidPlacement"
"""Ready reason of a placement the agent could not read: the hub's doing, not the Job's."""


class ResumeReader(Protocol):
    """The part of the market view a resume check consults."""

    def decide(
        self,
        lease: LeaseRequest,
        pool: PoolPolicy,
        *,
        already_placed: Mapping[str, int],
        released: frozenset[str],
    ) -> Decision:
        """Where ``lease``'s missing replicas would go (see :class:`~kommons.hub.plan.World`)."""
        ...


# --------------------------------------------------------------------------------------
# The term
# --------------------------------------------------------------------------------------


def expires_at(lease: ComputeLease, *, placed: bool, now: datetime) -> datetime | None:
    """When the lease's term ends (``None``: no ``duration``, or nothing placed yet).

    ``startedAt + duration`` once the replicas started; before, the provisional end already
    recorded, or ``now + duration`` when the lease is placed for the first time.
    """
    if lease.spec.duration is None:
        return None
    term = parse_duration(lease.spec.duration)
    status = lease.status
    if status is not None and status.started_at is not None:
        return status.started_at + term
    if status is not None and status.expires_at is not None:
        return status.expires_at
    return now.replace(microsecond=0) + term if placed else None


def recheck(ready_after: float | None, expires: datetime | None, *, now: datetime) -> float | None:
    """Seconds until the hub must look at the lease again: readiness timeout or term end."""
    candidates = [ready_after] if ready_after is not None else []
    if expires is not None:
        candidates.append(max(0.0, (expires - now).total_seconds()))
    return min(candidates) if candidates else None


# --------------------------------------------------------------------------------------
# Job-style leases
# --------------------------------------------------------------------------------------


def job_shares(
    job: JobSpec | None, replicas: Mapping[str, int], *, completions: int | None = None
) -> dict[str, JobSpec]:
    """Each provider's share of a Job lease's completions, in proportion to its replicas.

    ``completions`` is what is split: the Job's by default, or what is left of it for the new
    placements of a lease whose other placements keep their shares (:func:`job_left`). It is
    at least the replicas (admission keeps ``completions >= replicas``, and the plan asks for
    no more replicas than completions are left), so every provider's share is at least its
    replicas (its parallelism); the remainder goes to the providers with most replicas first
    (then by name). Providers with no replicas get nothing.
    """
    if job is None:
        return {}
    total_completions = job.completions if completions is None else completions
    live = {p: n for p, n in replicas.items() if n > 0}
    total = sum(live.values())
    if total == 0 or total_completions <= 0:
        return {}
    shares = {p: total_completions * n // total for p, n in live.items()}
    left = total_completions - sum(shares.values())
    for provider in sorted(live, key=lambda p: (-live[p], p)):
        if left <= 0:
            break
        shares[provider] += 1
        left -= 1
    return {
        p: JobSpec(completions=max(n, live[p]), backoff_limit=job.backoff_limit)
        for p, n in shares.items()
    }


def _ready_reason(placement: LeasePlacement) -> tuple[str, str]:
    status = placement.status
    condition = get_condition(status.conditions if status else None, "Ready")
    if condition is None:
        return "", (status.message or "") if status else ""
    return condition.reason, condition.message


def job_failed(placement: LeasePlacement) -> bool:
    """A Job placement whose Job failed on its provider (e.g. ``BackoffLimitExceeded``)."""
    status = placement.status
    return (
        placement.spec.job is not None
        and status is not None
        and status.phase == "Failed"
        and _ready_reason(placement)[0] != INVALID_PLACEMENT
    )


def job_succeeded(placement: LeasePlacement) -> bool:
    """A Job placement whose Job completed on its provider."""
    status = placement.status
    return placement.spec.job is not None and status is not None and status.phase == "Succeeded"


def job_done(placement: LeasePlacement) -> int:
    """Pods a Job placement's provider reports succeeded, at most the completions it was asked.

    The count is the provider's claim: never more than its share is believed.
    """
    status = placement.status
    asked = placement.spec.job.completions if placement.spec.job is not None else 0
    return min(asked, (status.succeeded or 0) if status is not None else 0)


@dataclass(frozen=True)
class JobCarry:
    """The completions of a Job lease achieved by placements that no longer run it.

    The hub keeps them in the lease's status, which only it writes: ``carriedCompletions``
    (placements already deleted) and ``carrying`` (placements that leave: their count is
    recorded there *before* they are deleted, so a hub that stops in between neither loses
    it nor counts it twice). A placement with a ``carrying`` record counts by its record,
    never by its own report as well.
    """

    folded: int = 0
    """Completions of placements already deleted (``status.carriedCompletions``)."""
    carrying: tuple[CarriedCompletions, ...] = ()
    """Records of live placements that leave in this step or wait for their replacement."""
    unrecorded: tuple[CarriedCompletions, ...] = ()
    """Leaving placements whose progress is not recorded yet (or only a lower count): the
    status must say so before they may go."""

    @property
    def total(self) -> int:
        """Every completion carried: deleted placements' and those of the leaving ones."""
        return self.folded + sum(c.completions for c in self.carrying)

    def uids(self) -> frozenset[str]:
        """Placements that count by their record."""
        return frozenset(c.placement_uid for c in self.carrying)

    def of(self, placement: LeasePlacement) -> int | None:
        """The completions recorded for a leaving placement (``None``: no record)."""
        uid = placement.metadata.uid
        return next((c.completions for c in self.carrying if c.placement_uid == uid), None)

    def recorded(self) -> JobCarry:
        """The carry once the status holds the records still missing."""
        fresh = {c.placement_uid: c for c in self.unrecorded}
        kept = [c for c in self.carrying if c.placement_uid not in fresh]
        ordered = sorted([*kept, *fresh.values()], key=lambda c: (c.provider, c.placement_uid))
        return JobCarry(self.folded, tuple(ordered))


def job_carry(
    lease: ComputeLease,
    live: Sequence[LeasePlacement],
    leaving: Sequence[LeasePlacement] = (),
) -> JobCarry:
    """What a Job lease carries, given its live placements and those that leave now.

    A record of a placement that is no longer live (deleted, or being deleted) is folded into
    the total; a record of a live placement that no longer leaves (its provider came back) is
    dropped: the placement's own count is its progress again. A leaving placement whose
    report shows more completions than its record needs a (new) record first.

    Args:
        lease: The lease as served (its status holds what was carried so far).
        live: Its live placements.
        leaving: Live placements the plan re-places or removes in this step.
    """
    status = lease.status
    if lease.spec.job is None:
        return JobCarry()
    if status is None:
        return JobCarry(unrecorded=_records(leaving, {}))
    live_uids = {p.metadata.uid for p in live}
    leaving_uids = {p.metadata.uid for p in leaving}
    folded = status.carried_completions or 0
    carrying: list[CarriedCompletions] = []
    for record in status.carrying or ():
        if record.placement_uid not in live_uids:
            folded += record.completions
        elif record.placement_uid in leaving_uids:
            carrying.append(record)
    known = {c.placement_uid: c.completions for c in carrying}
    return JobCarry(folded, tuple(carrying), _records(leaving, known))


def _records(
    leaving: Sequence[LeasePlacement], known: Mapping[str, int]
) -> tuple[CarriedCompletions, ...]:
    """Records for the leaving placements that did more than ``known`` says (uid → count)."""
    out = []
    for placement in sorted(leaving, key=lambda p: p.spec.provider):
        uid = placement.metadata.uid
        done = job_done(placement)
        if uid is None or placement.spec.job is None or done <= known.get(uid, 0):
            continue
        out.append(
            CarriedCompletions(
                placement_uid=uid, provider=placement.spec.provider, completions=done
            )
        )
    return tuple(out)


def job_counts(
    placements: Sequence[LeasePlacement], carry: JobCarry | None = None
) -> tuple[int, int]:
    """Pods that succeeded and failed for a Job lease.

    Succeeded: the carried completions plus each other placement's count (at most its
    share, :func:`job_done`); failed: the failed pods of ``placements``.
    """
    carry = carry or JobCarry()
    by_record = carry.uids()
    own = sum(job_done(p) for p in placements if p.metadata.uid not in by_record)
    failed = sum((p.status.failed or 0) if p.status else 0 for p in placements)
    return carry.total + own, failed


def job_left(job: JobSpec, carry: JobCarry, kept: Sequence[LeasePlacement]) -> int:
    """Completions left for new placements: neither carried nor asked of a kept placement.

    Placements that stay keep their share (a Job's ``completions`` cannot change once it
    runs), so only what no one is running or has run goes to new placements.
    """
    asked = sum(p.spec.job.completions for p in kept if p.spec.job is not None)
    return max(0, job.completions - carry.total - asked)


def job_wanted(
    lease: ComputeLease, placements: Sequence[LeasePlacement], carry: JobCarry | None = None
) -> int:
    """Replicas a lease needs now, for its readiness (``spec.replicas`` unless a Job ends).

    For a Job lease whose completions left are fewer than its replicas: the replicas placed
    plus the completions no placement runs yet. A Job lease placed with fewer replicas because
    few completions are left (the plan asks no more, :func:`job_replicas`) is complete with
    them: it is not shown short of replicas. A Job lease missing replicas for want of capacity
    still is (its completions are left).
    """
    if lease.spec.job is None:
        return lease.spec.replicas
    carry = carry if carry is not None else job_carry(lease, placements)
    left = job_left(lease.spec.job, carry, placements)
    placed = sum(p.spec.replicas for p in placements)
    return job_replicas(lease, kept_replicas=placed, left=left)


def job_replicas(lease: ComputeLease, *, kept_replicas: int, left: int) -> int:
    """Replicas a Job lease needs now: ``spec.replicas``, fewer when fewer completions are left.

    A new placement runs at most one pod per completion left, so replicas beyond that would
    reserve capacity no pod uses (the rule admission applies to ``completions >= replicas``).
    """
    return min(lease.spec.replicas, kept_replicas + left)


# --------------------------------------------------------------------------------------
# The end of a lease
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class End:
    """Why a lease ends (or ended), and how the hub tells it."""

    phase: EndPhase
    reason: str
    """CamelCase reason: TermEnded, JobComplete, BackoffLimitExceeded ..."""
    message: str
    new: bool
    """The lease ends in this step (``False``: it ended before; only leftovers go)."""
    failed_provider: str | None = None
    """The provider whose Job failed (its placement ends ``Failed``)."""


def ended(lease: ComputeLease) -> bool:
    """Whether the lease reached its end before: ``Expired``, ``Succeeded``, or a Job ``Failed``.

    A long-running lease shown ``Failed`` (a tenant-caused reason) has not ended: a template
    fix recovers it.
    """
    phase = lease.status.phase if lease.status else None
    return phase in ("Expired", "Succeeded") or (phase == "Failed" and lease.spec.job is not None)


def lease_end(
    lease: ComputeLease, placements: Sequence[LeasePlacement], *, now: datetime
) -> End | None:
    """Whether the lease ends in this step, or ended before; ``None`` while it runs on.

    Args:
        lease: The lease as served.
        placements: Its live placements.
        now: The hub's clock.
    """
    status = lease.status
    if ended(lease):
        assert status is not None
        assert status.phase in ("Expired", "Succeeded", "Failed")
        ready = get_condition(status.conditions, "Ready")
        last = next((h for h in reversed(status.history or ()) if h.type == status.phase), None)
        return End(
            status.phase,
            ready.reason if ready else status.phase,
            ready.message if ready else "",
            new=False,
            failed_provider=last.provider if last is not None else None,
        )
    placed = bool(placements)
    expires = expires_at(lease, placed=placed, now=now)
    if expires is not None and now >= expires:
        return End(
            "Expired",
            "TermEnded",
            f"the lease term ({lease.spec.duration}) ended at {expires.isoformat()}; its"
            " workload was removed",
            new=True,
        )
    if lease.spec.job is None or not placed:
        return None
    for placement in sorted(placements, key=lambda p: p.spec.provider):
        if job_failed(placement):
            reason, message = _ready_reason(placement)
            return End(
                "Failed",
                reason or "JobFailed",
                f"the Job failed on {placement.spec.provider}: {message or 'no message'}",
                new=True,
                failed_provider=placement.spec.provider,
            )
    carry = job_carry(lease, placements)
    succeeded, _ = job_counts(placements, carry)
    every_part_done = sum(p.spec.replicas for p in placements) >= lease.spec.replicas and all(
        job_succeeded(p) for p in placements
    )
    if succeeded >= lease.spec.job.completions or every_part_done:
        carried = f" ({carry.total} carried from earlier placements)" if carry.total else ""
        return End(
            "Succeeded",
            JOB_COMPLETE,
            f"the Job completed: {succeeded} pod(s) succeeded{carried}, the last on"
            f" {', '.join(sorted(p.spec.provider for p in placements))}",
            new=True,
        )
    return None


def with_history(
    history: Sequence[LeaseHistoryEntry] | None, entry: LeaseHistoryEntry
) -> list[LeaseHistoryEntry]:
    """``history`` plus ``entry``, keeping the newest :data:`~kommons.api.HISTORY_LIMIT`."""
    return [*(history or ()), entry][-HISTORY_LIMIT:]


def ended_status(
    lease: ComputeLease, placements: Sequence[LeasePlacement], end: End, *, now: datetime
) -> ComputeLeaseStatus:
    """The status of a lease that ends (or ended): its record, with no placement left.

    ``Ready`` is False with the end's reason; the Job counters and ``expiresAt`` are kept; a
    history entry is added when the lease ends in this step.
    """
    current = lease.status or ComputeLeaseStatus()
    now = now.replace(microsecond=0)
    generation = lease.metadata.generation
    conditions = set_condition(
        current.conditions,
        type_="Ready",
        status="False",
        reason=end.reason,
        message=end.message,
        observed_generation=generation,
        now=now,
    )
    succeeded, failed = current.succeeded, current.failed
    carried = current.carried_completions
    history = current.history
    if end.new:
        if lease.spec.job is not None:
            carry = job_carry(lease, placements)
            succeeded, failed = job_counts(placements, carry)
            carried = carry.folded or None
        entry = LeaseHistoryEntry(
            time=now,
            type=end.phase,
            provider=end.failed_provider,
            replicas=sum(p.spec.replicas for p in placements),
            reason=end.reason,
            message=end.message,
        )
        history = with_history(history, entry)
    return current.model_copy(
        update={
            "phase": end.phase,
            "replicas": 0,
            "ready_replicas": 0,
            "ready": ready_summary(0, lease.spec.replicas),
            "providers": "",
            "placements": [],
            "endpoints": None,  # nothing runs any more
            "succeeded": succeeded,
            "failed": failed,
            "carried_completions": carried,
            "carrying": None,  # nothing leaves any more: every record is folded or dropped
            "observed_generation": generation,
            "history": history,
            "conditions": conditions,
        }
    )


# --------------------------------------------------------------------------------------
# While the lease runs
# --------------------------------------------------------------------------------------


def running_status(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    status: ComputeLeaseStatus,
    *,
    now: datetime,
    carry: JobCarry | None = None,
) -> ComputeLeaseStatus:
    """``status`` with the lifecycle's fields: ``expiresAt`` and, for a Job, its counters.

    ``carry`` is what the Job carries after this step (``carriedCompletions``, ``carrying``);
    ``None`` carries what the lease's live ``placements`` leave to carry, nothing leaving.
    """
    update: dict[str, object] = {
        "expires_at": expires_at(lease, placed=bool(placements), now=now),
    }
    if lease.spec.job is not None:
        carry = carry if carry is not None else job_carry(lease, placements)
        succeeded, failed = job_counts(placements, carry)
        update |= {
            "succeeded": succeeded,
            "failed": failed,
            "carried_completions": carry.folded or None,
            "carrying": list(carry.carrying) or None,
        }
    return status.model_copy(update=update)


# --------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------


def as_planned(lease: ComputeLease, *, payment_suspended: bool) -> ComputeLease:
    """The lease as the hub plans it: suspended also while the hub suspends it for payment.

    The payment guard (:mod:`kommons.hub.payment`) never writes the tenant's ``spec.suspend``;
    it records ``status.paymentSuspendedAt`` instead, and the hub plans such a lease exactly
    like a suspended one (placements scaled to zero, their capacity released, phase
    ``Suspended``). Clearing the marker resumes it like ``suspend: false`` would.
    """
    if not payment_suspended or lease.spec.suspend:
        return lease
    return lease.model_copy(update={"spec": lease.spec.model_copy(update={"suspend": True})})


def resuming(lease: ComputeLease, placements: Sequence[LeasePlacement]) -> list[LeasePlacement]:
    """Placements still suspended although their lease is not (anymore)."""
    if lease.spec.suspend:
        return []
    return [p for p in placements if p.spec.suspend]


@dataclass(frozen=True)
class Resume:
    """Which suspended placements go back to their providers, and which must move."""

    decision: Decision | None
    """One decision holding the capacity of every placement that goes back."""
    back: tuple[str, ...] = ()
    """Providers that take their placement back."""
    unfit: Mapping[str, str] | None = None
    """Provider → why its suspended placement cannot go back (it is re-placed)."""


def resume_check(
    placements: Sequence[LeasePlacement],
    request: LeaseRequest,
    pool: PoolPolicy,
    market: ResumeReader,
) -> Resume:
    """Whether each resuming placement still fits its provider, as the market stands now.

    A suspended placement holds no capacity, so others may have taken its room meanwhile. One
    decision per placement, restricted to its provider and its replicas (the lease's regions,
    price cap and the pool still apply), counting as free what the provider's last report
    still reserves for this very placement (the agent may not have shrunk its quota yet); the
    chosen ones are merged into one decision for the hub to hold.
    """
    chosen: list[Placement] = []
    back: list[str] = []
    unfit: dict[str, str] = {}
    first: Decision | None = None
    for placement in sorted(placements, key=lambda p: p.spec.provider):
        provider = placement.spec.provider
        if request.providers and provider not in request.providers:
            unfit[provider] = f"{provider} is no longer in spec.placement.providers"
            continue
        alone = replace(
            request, replicas=placement.spec.replicas, providers=frozenset({provider}), spread=False
        )
        # what the provider's report still counts for this placement is its own room
        own = frozenset({placement_key(request.key, provider)})
        decision = market.decide(alone, pool, already_placed={}, released=own)
        if decision.chosen:
            first = first or decision
            chosen.extend(decision.chosen)
            back.append(provider)
        else:
            why = decision.rejected.get(provider) or decision.message
            unfit[provider] = f"{provider} no longer has room for it ({why})"
    merged = None
    if first is not None:
        merged = replace(
            first,
            wanted=sum(c.replicas for c in chosen),
            chosen=tuple(chosen),
            message=f"resumed on {', '.join(back)}",
        )
    return Resume(merged, tuple(back), unfit)


def merge_decisions(a: Decision | None, b: Decision | None) -> Decision | None:
    """One decision holding the capacity of both (``b``'s chosen added to ``a``'s)."""
    if a is None or b is None:
        return a or b
    return replace(a, wanted=a.wanted + b.wanted, chosen=(*a.chosen, *b.chosen))


__all__ = [
    "JOB_COMPLETE",
    "End",
    "EndPhase",
    "JobCarry",
    "Resume",
    "ResumeReader",
    "as_planned",
    "ended",
    "ended_status",
    "expires_at",
    "job_carry",
    "job_counts",
    "job_done",
    "job_failed",
    "job_left",
    "job_replicas",
    "job_shares",
    "job_succeeded",
    "lease_end",
    "merge_decisions",
    "recheck",
    "resume_check",
    "resuming",
    "running_status",
    "with_history",
]
