"""One scheduling decision: filter, rank, allocate all missing replicas or none."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from kommons.scheduler.decision import (
    MAX_REJECTED_SAMPLES,
    Decision,
    Placement,
    build_decision,
    pick_samples,
)
from kommons.scheduler.filters import Candidate, FilterContext, Formatter, RejectionKind, classify
from kommons.scheduler.model import LeaseRequest, PoolPolicy, ProviderView, Strategy
from kommons.scheduler.money import format_price
from kommons.scheduler.reservations import Reservations
from kommons.scheduler.scoring import rank


def fill(ranked: Iterable[tuple[str, int]], wanted: int) -> dict[str, int]:
    """As many replicas as fit on the best provider, then the next, and so on.

    Args:
        ranked: ``(provider, slots)`` best first; read only as far as needed.
        wanted: Replicas to place.

    Returns:
        Replicas by provider, in rank order.
    """
    counts: dict[str, int] = {}
    if wanted == 0:
        return counts
    for name, slots in ranked:
        take = min(slots, wanted)
        counts[name] = take
        wanted -= take
        if wanted == 0:
            break
    return counts


def spread(
    ranked: Sequence[tuple[str, int]], wanted: int, already: Mapping[str, int]
) -> dict[str, int]:
    """One replica at a time to the provider holding fewest of this lease, rank breaking ties.

    Only the best ``wanted + len(already)`` providers can receive a replica (each of the
    first ``wanted`` providers holding none is served before any provider ranked below them),
    so callers may pass just that prefix of the ranking.

    Args:
        ranked: ``(provider, slots)`` best first; together they fit ``wanted``.
        wanted: Replicas to place.
        already: Replicas of this lease already on providers.

    Returns:
        Replicas by provider.
    """
    heap = [(already.get(name, 0), index) for index, (name, _) in enumerate(ranked)]
    heapq.heapify(heap)
    left = [slots for _, slots in ranked]
    counts: dict[str, int] = {}
    while wanted:
        held, index = heapq.heappop(heap)
        name = ranked[index][0]
        counts[name] = counts.get(name, 0) + 1
        left[index] -= 1
        wanted -= 1
        if left[index]:
            heapq.heappush(heap, (held + 1, index))
    return counts


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
    replica, nothing is placed. Rejections are counted by kind over all providers and at
    most ``MAX_REJECTED_SAMPLES`` of them are quoted (see :func:`.decision.pick_samples`).

    This is the reference implementation; :class:`.market.Market` decides the same
    incrementally and much faster.

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
    counts: dict[RejectionKind, int] = {}
    first: dict[RejectionKind, dict[str, str]] = {}
    for view in views:
        free = (
            reservations.effective_available(view) if reservations is not None else view.available
        )
        outcome = classify(view, free, ctx)
        if isinstance(outcome, Candidate):
            candidates.append(outcome)
            continue
        kind, reason = outcome
        counts[kind] = counts.get(kind, 0) + 1
        seen = first.setdefault(kind, {})
        if len(seen) < MAX_REJECTED_SAMPLES:
            seen[view.name] = reason

    wanted = max(0, lease.replicas - sum(already.values()))
    ranked = rank(candidates, pool.strategy)
    capacity = sum(c.slots for c in ranked)
    chosen: tuple[Placement, ...] = ()
    if 0 < wanted <= capacity:
        pairs = [(c.name, c.slots) for c in ranked]
        spreads = lease.spread or pool.strategy is Strategy.SPREAD
        placed = spread(pairs, wanted, already) if spreads else fill(pairs, wanted)
        chosen = tuple(
            Placement(c.name, placed[c.name], c.price, c.gpu_model, c.list_price, c.multiplier)
            for c in ranked
            if placed.get(c.name)
        )
    sampled = pick_samples({k: list(v) for k, v in first.items()}, counts)
    reasons = {name: reason for seen in first.values() for name, reason in seen.items()}
    return build_decision(
        lease=lease.key,
        wanted=wanted,
        considered=len(views),
        feasible=len(candidates),
        capacity=capacity,
        chosen=chosen,
        counts=counts,
        samples={name: reasons[name] for name in sampled},
        money=money,
    )
