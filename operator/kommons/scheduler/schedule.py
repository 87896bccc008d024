"""One scheduling decision: filter, rank, allocate all missing replicas or none."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Final

from kommons.scheduler.decision import Decision, Placement
from kommons.scheduler.filters import Candidate, FilterContext, Formatter, evaluate
from kommons.scheduler.model import LeaseRequest, PoolPolicy, ProviderView, Strategy
from kommons.scheduler.money import format_price
from kommons.scheduler.reservations import Reservations
from kommons.scheduler.scoring import rank

MESSAGE_REASONS: Final = 5
"""Rejection reasons quoted in a decision's one-line message (all are in ``rejected``)."""


def _fill(ranked: list[Candidate], wanted: int) -> dict[str, int]:
    """As many replicas as fit on the best provider, then the next, and so on."""
    counts: dict[str, int] = {}
    for candidate in ranked:
        if wanted == 0:
            break
        take = min(candidate.slots, wanted)
        counts[candidate.name] = take
        wanted -= take
    return counts


def _spread(ranked: list[Candidate], wanted: int, already: Mapping[str, int]) -> dict[str, int]:
    """One replica at a time to the provider holding fewest of this lease, rank breaking ties."""
    heap = [(already.get(c.name, 0), index) for index, c in enumerate(ranked)]
    heapq.heapify(heap)
    left = {c.name: c.slots for c in ranked}
    counts: dict[str, int] = {}
    while wanted:
        held, index = heapq.heappop(heap)
        name = ranked[index].name
        counts[name] = counts.get(name, 0) + 1
        left[name] -= 1
        wanted -= 1
        if left[name]:
            heapq.heappush(heap, (held + 1, index))
    return counts


def _reasons(rejected: Mapping[str, str]) -> str:
    quoted = [f"{name}: {reason}" for name, reason in list(rejected.items())[:MESSAGE_REASONS]]
    more = len(rejected) - len(quoted)
    return "; ".join(quoted) + (f"; and {more} more" if more else "")


def _message(
    *,
    wanted: int,
    placed: tuple[Placement, ...],
    considered: int,
    feasible: int,
    capacity: int,
    rejected: Mapping[str, str],
) -> str:
    ratio = f"{feasible}/{considered} providers feasible"
    if wanted == 0:
        return f"no replicas missing; {ratio}"
    if placed:
        where = ", ".join(f"{p.provider} ({p.replicas})" for p in placed)
        return f"placed {wanted} replica(s) on {where}; {ratio}"
    if feasible == 0:
        return f"{ratio}: {_reasons(rejected)}" if rejected else ratio
    message = f"{ratio} but they fit only {capacity} of {wanted} replica(s) (all or nothing)"
    return f"{message}; rejected: {_reasons(rejected)}" if rejected else message


def schedule(
    lease: LeaseRequest,
    providers: Iterable[ProviderView],
    pool: PoolPolicy,
    reservations: Reservations | None = None,
    *,
    exclude: frozenset[str] = frozenset(),
    already_placed: Mapping[str, int] | None = None,
    money: Formatter = format_price,
) -> Decision:
    """Decide where the missing replicas of a lease go.

    Pure: reads its arguments, mutates nothing (record the result with
    :meth:`.Reservations.record`). Providers are filtered in a fixed order (the first failing
    filter is the rejection reason), ranked by the pool's strategy, then replicas are
    allocated: without spread as many as fit on the best provider, then the next; with spread
    (``lease.spread`` or strategy ``Spread``) one at a time to the feasible provider holding
    the fewest replicas of this lease. If the feasible providers cannot hold every missing
    replica, nothing is placed.

    Args:
        lease: The lease.
        providers: Candidate providers (names unique), typically those of the lease's pool;
            their order does not matter.
        pool: The lease's pool.
        reservations: The hub's ledger; pending reservations reduce free capacity.
        exclude: Providers to avoid in this decision (e.g. one being failed over).
        already_placed: Replicas of this lease that stay where they are, by provider; only
            ``lease.replicas`` minus their sum are placed, and spread counts them.
        money: Formats base units in rejection reasons.

    Returns:
        The decision.

    Raises:
        ValueError: If two providers share a name or ``already_placed`` has a negative count.
    """
    already = dict(already_placed or {})
    if any(count < 0 for count in already.values()):
        raise ValueError(f"already_placed counts must be >= 0, got {already}")
    views = sorted(providers, key=lambda v: v.name)
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate provider names in {names}")

    ctx = FilterContext(lease=lease, pool=pool, exclude=frozenset(exclude), money=money)
    candidates: list[Candidate] = []
    rejected: dict[str, str] = {}
    for view in views:
        free = (
            reservations.effective_available(view) if reservations is not None else view.available
        )
        outcome = evaluate(view, free, ctx)
        if isinstance(outcome, Candidate):
            candidates.append(outcome)
        else:
            rejected[view.name] = outcome

    wanted = max(0, lease.replicas - sum(already.values()))
    ranked = rank(candidates, pool.strategy)
    capacity = sum(c.slots for c in ranked)
    chosen: tuple[Placement, ...] = ()
    if 0 < wanted <= capacity:
        spread = lease.spread or pool.strategy is Strategy.SPREAD
        counts = _spread(ranked, wanted, already) if spread else _fill(ranked, wanted)
        chosen = tuple(
            Placement(c.name, counts[c.name], c.price, c.gpu_model)
            for c in ranked
            if counts.get(c.name)
        )
    return Decision(
        lease=lease.key,
        wanted=wanted,
        considered=len(views),
        feasible=len(candidates),
        chosen=chosen,
        rejected=rejected,
        scheduled=wanted == 0 or bool(chosen),
        message=_message(
            wanted=wanted,
            placed=chosen,
            considered=len(views),
            feasible=len(candidates),
            capacity=capacity,
            rejected=rejected,
        ),
    )
