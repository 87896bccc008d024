"""The hub's incremental market view: providers and holds in memory, fast decisions.

:func:`.schedule` recomputes everything from its arguments on every call: every provider's
effective free capacity from every reservation, every filter, every price. The hub instead
keeps one :class:`Market` per process and updates it per watch event:

* :meth:`Market.set_provider` / :meth:`Market.remove_provider` on every ``Provider`` event
  (stored once; setting a view drops the holds its report reflects, as
  :meth:`.Reservations.observe` does);
* :meth:`Market.hold` / :meth:`Market.release` / :meth:`Market.release_lease` for capacity
  held by placements the providers have not accounted for yet;
* :meth:`Market.decide` (pure) and :meth:`Market.commit` (holds the chosen placements).

Effective free capacity (report minus unreflected holds, clamped at zero) is kept per provider
as plain integers and updated only for the provider an event touches. What never changes
between reports -- which providers pass the pool's selector, readiness, cordon, regions,
allow-list and reputation, which gpu model and which replica price a lease shape gets on each
provider -- is cached per pool/lease shape in small bounded LRU caches, and dropped whenever a
provider is added, removed or changes one of those attributes. A provider with a
``Utilization`` price policy quotes from its free capacity (:mod:`.quote`), so any change of
its free capacity drops the lease-shape caches too (a market of static providers keeps them).
Per lease shape the cache also keeps every provider's free slots for that shape (and their
counts by shortage, and the BinPack/Spread orders), refreshed lazily from a bounded log of
free-capacity changes. A decision then refits only the providers changed since its shape was
last used, reads counts, ranks with integer keys only as far as the replicas need, and formats
reasons only for the at most ``MAX_REJECTED_SAMPLES`` quoted providers. Memory is
O(providers + holds) plus the bounded caches (O(providers) per cached shape).

It takes the same decisions as :func:`.schedule` given the same providers and the equivalent
:class:`.Reservations` ledger (a property test checks it on random markets).

A lease with persistent storage (``ReplicaResources.storage``) is decided by :func:`.schedule`
over the market's providers and holds instead (O(providers + holds) per decision).

Not thread-safe: the hub calls it from its event loop only.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import add, mod, mul, sub
from types import MappingProxyType
from typing import Final, TypeVar

from kommons.scheduler.decision import (
    MAX_REJECTED_SAMPLES,
    Decision,
    Placement,
    build_decision,
    pick_samples,
)
from kommons.scheduler.filters import (
    EXCLUDED_REASON,
    Candidate,
    FilterContext,
    Formatter,
    RejectionKind,
    classify,
    price_reason,
    publishing_reason,
    shortage_reason,
)
from kommons.scheduler.model import LeaseRequest, PoolPolicy, ProviderView, Resources, Strategy
from kommons.scheduler.money import format_price, replica_price
from kommons.scheduler.quote import MULTIPLIER_ONE, provider_quote
from kommons.scheduler.reservations import (
    Reservation,
    Reservations,
    is_reflected,
    placement_key,
)
from kommons.scheduler.schedule import schedule, spread
from kommons.scheduler.scoring import BALANCED_WEIGHTS, REPUTATION_SCALE
from kommons.scheduler.selector import LabelSelector

STATIC_CACHE_SIZE: Final = 64
"""Pool/lease filter combinations whose static filter outcome is cached."""

SHAPE_CACHE_SIZE: Final = 64
"""Lease shapes (per filter combination) whose prices are cached."""

CHANGE_LOG_SIZE: Final = 8192
"""Free-capacity changes remembered for lazily re-fitting cached shapes."""

_EMPTY: Final[Mapping[str, int]] = MappingProxyType({})
_FIT, _SHORT_GPU, _SHORT_CPU, _SHORT_MEMORY, _SHORT_PODS, _EXCLUDED, _PRICED_OUT = range(7)
_KIND_OF_CODE: Final = {
    _SHORT_GPU: RejectionKind.INSUFFICIENT_GPU,
    _SHORT_CPU: RejectionKind.INSUFFICIENT_CPU,
    _SHORT_MEMORY: RejectionKind.INSUFFICIENT_MEMORY,
    _SHORT_PODS: RejectionKind.INSUFFICIENT_PODS,
    _PRICED_OUT: RejectionKind.PRICE,
}
_CODE_OF_KIND: Final = {kind: code for code, kind in _KIND_OF_CODE.items()}
_mod = mod

_K = RejectionKind
_W_PRICE, _W_REPUTATION, _W_HEADROOM = (int(w * 10) for w in BALANCED_WEIGHTS)


class _Row:
    """One provider: its view, what the filters need of it, and its effective free capacity."""

    __slots__ = ("cpu", "gpus", "mem", "name", "negrep", "pods", "priced", "qrep", "view")

    def __init__(self, view: ProviderView) -> None:
        self.name = view.name
        self.view = view
        self.negrep = -view.reputation
        self.qrep = round(view.reputation * REPUTATION_SCALE)
        self.priced = sorted((p, m) for m, p in view.pricing.gpu_hour.items())
        self.cpu = self.mem = self.pods = 0
        self.gpus: dict[str, int] = {}


class _Held:
    """A provider's holds and their sums."""

    __slots__ = ("by_key", "cpu", "gpus", "mem", "pods")

    def __init__(self) -> None:
        self.by_key: dict[str, Reservation] = {}
        self.cpu = self.mem = self.pods = 0
        self.gpus: dict[str, int] = {}

    def add(self, r: Resources, sign: int) -> None:
        self.cpu += sign * r.cpu_milli
        self.mem += sign * r.memory_bytes
        self.pods += sign * r.pods
        for model, count in r.gpus.items():
            self.gpus[model] = self.gpus.get(model, 0) + sign * count


@dataclass(slots=True)
class _Static:
    """Outcome of the filters that depend only on providers' static attributes (1-6)."""

    after: list[_Row]
    """Providers passing them, by name."""
    after_names: frozenset[str]
    counts: dict[RejectionKind, int]
    first: dict[RejectionKind, list[str]]
    """First rejected names by kind (at most MAX_REJECTED_SAMPLES, sorted)."""
    reasons: dict[str, str]
    """Their reasons, formatted when first quoted."""


@dataclass(slots=True)
class _Shape:
    """Outcome for one lease shape: reputation, gpu, price, and every provider's slots.

    ``slot``/``code`` are kept up to date lazily from the market's change log: a decision
    re-fits only the providers whose free capacity changed since the shape was last used.
    """

    static: _Static
    need: tuple[int, int, int, str | None]
    """(cpu_milli, memory_bytes, gpu_count, gpu_model) of one replica."""
    counts: dict[RejectionKind, int]
    late: dict[str, RejectionKind]
    """Providers rejected for reputation, publishing (public ports) or gpu."""
    late_names: dict[RejectionKind, list[str]]
    """Those names by kind, sorted."""
    rows: list[_Row]
    """Providers left, sorted by (price, -reputation, name) -- every strategy's tail -- so a
    price cap cuts a suffix (lease without gpu or with a gpu model)."""
    prices: list[int]
    """Replica price on each of ``rows`` (ascending)."""
    options: list[list[tuple[str, int]]]
    """Gpu lease without a model: (model, replica price) per provider of ``rows``, cheapest
    first; ``rows`` are then by name and ``prices``/``slot``/``code`` unused."""
    index: dict[str, int]
    """Position of each provider in ``rows``."""
    by_name: list[int]
    """Positions in ``rows`` ordered by provider name."""
    slot: list[int]
    """Replicas that fit on each of ``rows`` now."""
    code: list[int]
    """Why none fits (``_FIT`` when some do), one of the ``_SHORT_*`` codes."""
    totals: list[int]
    """Providers of ``rows`` by code."""
    members: list[set[int]]
    """Positions of ``rows`` by ``_SHORT_*`` code."""
    capacity: int
    """Sum of ``slot``."""
    ordered: dict[Strategy, list[int]]
    """BinPack and Spread keys (``slots * n + i`` and ``i - slots * n``) of the providers
    with slots, kept sorted once a decision of that strategy asked for them."""
    reasons: dict[str, str]
    """Static reasons already formatted (reputation)."""
    synced: int
    """Market change-log position ``slot``/``code`` reflect."""


def _fit(row: _Row, cpu: int, memory: int, gpus: int, model: str | None) -> tuple[int, int]:
    """Replicas of one shape that fit on a provider, and the first short dimension if none."""
    if gpus:
        slots = row.gpus.get(model, 0) // gpus if model is not None else 0
        if not slots:
            return 0, _SHORT_GPU
        fit = row.cpu // cpu
        if not fit:
            return 0, _SHORT_CPU
        slots = min(slots, fit)
    else:
        slots = row.cpu // cpu
        if not slots:
            return 0, _SHORT_CPU
    fit = row.mem // memory
    if not fit:
        return 0, _SHORT_MEMORY
    if not row.pods:
        return 0, _SHORT_PODS
    return min(slots, fit, row.pods), _FIT


def _tally(codes: list[int]) -> list[int]:
    """Count of each code below ``_EXCLUDED``."""
    counter = Counter(codes)
    return [counter[value] for value in range(_EXCLUDED)]


def _first_names(
    value: int,
    rows: list[_Row],
    by_name: list[int],
    code: list[int],
    members: list[set[int]],
    cut: int,
    skip: set[int],
) -> list[str]:
    """First names (sorted) of the providers rejected with ``value`` in one decision.

    Looks at the members of that code when they are few, otherwise walks the providers in
    name order until enough are found (they are then dense): O(sqrt(providers)) either way.
    """
    pool: Iterable[int]
    if value == _PRICED_OUT:
        pool = range(cut, len(rows))
        size = len(rows) - cut
    else:
        pool = members[value]
        size = len(pool)
    if size * size <= MAX_REJECTED_SAMPLES * len(rows):
        found = [i for i in pool if i not in skip and (value == _PRICED_OUT or i < cut)]
        return sorted(rows[i].name for i in found)[:MAX_REJECTED_SAMPLES]
    if value == _PRICED_OUT:
        walk = (i for i in by_name if i >= cut and i not in skip)
    else:
        walk = (i for i in by_name if code[i] == value and i < cut and i not in skip)
    return [rows[i].name for i in islice(walk, MAX_REJECTED_SAMPLES)]


def _balanced(rows: list[_Row], prices: list[int], slot: list[int], cut: int) -> Iterator[int]:
    """Feasible positions in Balanced order, lazily (a threshold walk in price order).

    The Balanced key of position ``i`` (``scoring._balanced_costs`` up to a constant, times
    ``n``, plus the tail rank ``i``) is ``a*p_i - b*q_i - c*s_i + i`` with ``q`` the quantised
    reputation and ``s`` the slots. Positions are in ascending price, and ``q <= R`` and
    ``s <= most``, so no position from ``i`` on has a key below ``a*p_i - b*R - c*most``: a
    computed key under that bound is final and is yielded before looking further. Usually only
    the cheaper part of the providers is looked at.
    """
    n = len(rows)
    feasible = list(compress(range(cut), slot))
    if not feasible:
        return
    low, high = prices[feasible[0]], prices[feasible[-1]]
    span = high - low or 1
    most = max(islice(slot, cut))
    scale = REPUTATION_SCALE
    a = _W_PRICE * most * scale * n
    b = _W_REPUTATION * span * most * n
    c = _W_HEADROOM * span * scale * n
    slack = b * scale + c * most
    heap: list[int] = []
    for i in feasible:
        bound = a * prices[i] - slack
        while heap and heap[0] < bound:
            yield heapq.heappop(heap) % n
        heapq.heappush(heap, a * prices[i] - b * rows[i].qrep - c * slot[i] + i)
    while heap:
        yield heapq.heappop(heap) % n


def _selector_key(selector: LabelSelector | None) -> object:
    if selector is None:
        return None
    labels = tuple(sorted(selector.match_labels.items()))
    expressions = tuple(
        sorted(
            (r.key, r.operator.value, tuple(sorted(r.values))) for r in selector.match_expressions
        )
    )
    return labels, expressions


def _static_of(view: ProviderView) -> tuple[object, ...]:
    return (
        view.labels,
        view.region,
        view.ready,
        view.phase,
        view.cordoned,
        view.reputation,
        view.pricing,
        view.ceiling if view.pricing.dynamic else None,
        view.publish_mode,
    )


_V = TypeVar("_V")


def _lru_get(cache: dict[object, _V], key: object) -> _V | None:
    value = cache.pop(key, None)
    if value is not None:
        cache[key] = value
    return value


def _lru_put(cache: dict[object, _V], key: object, value: _V, size: int) -> None:
    if len(cache) >= size:
        del cache[next(iter(cache))]
    cache[key] = value


class Market:
    """The hub's in-memory market: providers, holds, effective free capacity, decisions."""

    def __init__(self, settle_seconds: float = 0.0) -> None:
        """Create an empty market.

        Args:
            settle_seconds: Minimum age a report must have over a hold to be trusted to
                include it (the rule of :mod:`.reservations`).
        """
        if settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, got {settle_seconds}")
        self.settle_seconds = settle_seconds
        self._rows: dict[str, _Row] = {}
        self._sorted: list[_Row] | None = None
        self._held: dict[str, _Held] = {}
        self._by_lease: dict[str, set[tuple[str, str]]] = {}
        self._statics: dict[object, _Static] = {}
        self._shapes: dict[object, _Shape] = {}
        self._log: list[str] = []
        self._log_base = 0

    # --- providers ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[ProviderView]:
        return (row.view for row in self._by_name())

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def get(self, name: str) -> ProviderView | None:
        """The provider's current view, or ``None``."""
        row = self._rows.get(name)
        return row.view if row is not None else None

    def set_provider(self, view: ProviderView) -> None:
        """Add or replace a provider (call on every ``Provider`` event).

        Holds the new report reflects are dropped (see :mod:`.reservations`). Changing the
        labels, region, readiness, cordon, reputation or prices drops the filter caches.
        """
        row = self._rows.get(view.name)
        if row is None:
            row = self._rows[view.name] = _Row(view)
            self._sorted = None
            self._invalidate()
        else:
            if _static_of(row.view) != _static_of(view):
                row = self._rows[view.name] = _Row(view)
                self._sorted = None
                self._invalidate()
            else:
                row.view = view
        held = self._held.get(view.name)
        if held is not None:
            for reservation in list(held.by_key.values()):
                if is_reflected(reservation, view, settle_seconds=self.settle_seconds):
                    self._drop(held, reservation)
            if not held.by_key:
                del self._held[view.name]
        self._refresh(row)

    def remove_provider(self, name: str) -> ProviderView | None:
        """Forget a provider (its holds stay until released). Returns its last view."""
        row = self._rows.pop(name, None)
        if row is None:
            return None
        self._sorted = None
        self._invalidate()
        return row.view

    def free(self, name: str) -> Resources:
        """Effective free capacity of a provider (nothing for an unknown provider)."""
        row = self._rows.get(name)
        if row is None:
            return Resources()
        return Resources(cpu_milli=row.cpu, memory_bytes=row.mem, gpus=row.gpus, pods=row.pods)

    # --- holds --------------------------------------------------------------------------

    def hold(self, *, key: str, provider: str, resources: Resources, at: float) -> Reservation:
        """Hold capacity on a provider under ``key``, REPLACING a hold of the same key.

        The hub re-holds a placement's whole size (e.g. when rebuilding after a restart or
        when a placement is resized). A hold the provider's current report already reflects
        is not kept.

        Args:
            key: Placement key, see :func:`.placement_key`.
            provider: Provider name (it need not be known yet).
            resources: Capacity to hold.
            at: Current hub time (same clock as ``ProviderView.observed_at``).

        Returns:
            The reservation.
        """
        reservation = Reservation(key=key, provider=provider, resources=resources, created_at=at)
        held = self._held.get(provider)
        if held is None:
            held = self._held[provider] = _Held()
        previous = held.by_key.get(key)
        if previous is not None:
            self._drop(held, previous)
        row = self._rows.get(provider)
        if row is None or not is_reflected(
            reservation, row.view, settle_seconds=self.settle_seconds
        ):
            held.by_key[key] = reservation
            held.add(resources, 1)
            self._by_lease.setdefault(key.rpartition("@")[0], set()).add((key, provider))
        if not held.by_key:
            del self._held[provider]
        if row is not None:
            self._refresh(row)
        return reservation

    def get_hold(self, key: str, provider: str) -> Reservation | None:
        """The hold ``key`` on ``provider``, if any."""
        held = self._held.get(provider)
        return held.by_key.get(key) if held is not None else None

    def holds(self, provider: str | None = None) -> Iterator[Reservation]:
        """Every hold (of one provider if given)."""
        if provider is not None:
            held = self._held.get(provider)
            return iter(tuple(held.by_key.values()) if held is not None else ())
        return (r for held in self._held.values() for r in tuple(held.by_key.values()))

    @property
    def hold_count(self) -> int:
        """Holds in the market."""
        return sum(len(held.by_key) for held in self._held.values())

    def release(self, key: str, provider: str) -> Reservation | None:
        """Drop a hold (placement accounted, failed or deleted). Returns it, if it existed."""
        held = self._held.get(provider)
        if held is None:
            return None
        reservation = held.by_key.get(key)
        if reservation is None:
            return None
        self._drop(held, reservation)
        if not held.by_key:
            del self._held[provider]
        row = self._rows.get(provider)
        if row is not None:
            self._refresh(row)
        return reservation

    def release_lease(self, lease_key: str) -> list[Reservation]:
        """Drop every hold of a lease (keys ``placement_key(lease_key, provider)``)."""
        dropped = []
        for key, provider in sorted(self._by_lease.get(lease_key, ())):
            reservation = self.release(key, provider)
            if reservation is not None:
                dropped.append(reservation)
        return dropped

    def commit(self, decision: Decision, lease: LeaseRequest, *, at: float) -> None:
        """Hold the placements of a decision, ADDING to a pending hold of the same key.

        Args:
            decision: A decision of :meth:`decide` for ``lease``.
            lease: The lease.
            at: Current hub time.

        Raises:
            ValueError: If the decision was made for another lease.
        """
        if decision.lease != lease.key:
            raise ValueError(f"decision for {decision.lease} committed for {lease.key}")
        for chosen in decision.chosen:
            key = placement_key(lease.key, chosen.provider)
            resources = lease.resources.as_resources(chosen.replicas, chosen.gpu_model)
            previous = self.get_hold(key, chosen.provider)
            if previous is not None:
                resources = previous.resources.plus(resources)
            self.hold(key=key, provider=chosen.provider, resources=resources, at=at)

    # --- internals ----------------------------------------------------------------------

    def _drop(self, held: _Held, reservation: Reservation) -> None:
        del held.by_key[reservation.key]
        held.add(reservation.resources, -1)
        lease = reservation.key.rpartition("@")[0]
        keys = self._by_lease.get(lease)
        if keys is not None:
            keys.discard((reservation.key, reservation.provider))
            if not keys:
                del self._by_lease[lease]

    def _refresh(self, row: _Row) -> None:
        if row.view.pricing.dynamic:
            before = (row.cpu, row.mem, row.gpus)
            self._refit(row)
            if (row.cpu, row.mem, row.gpus) != before:
                # its quotes follow its free capacity: the shapes' price orders are stale
                self._shapes.clear()
        else:
            self._refit(row)

    def _refit(self, row: _Row) -> None:
        log = self._log
        log.append(row.name)
        if len(log) > CHANGE_LOG_SIZE:
            half = len(log) // 2
            del log[:half]
            self._log_base += half
        available = row.view.available
        held = self._held.get(row.name)
        if held is None:
            row.cpu, row.mem, row.pods = (
                available.cpu_milli,
                available.memory_bytes,
                available.pods,
            )
            row.gpus = dict(available.gpus)
            return
        row.cpu = max(0, available.cpu_milli - held.cpu)
        row.mem = max(0, available.memory_bytes - held.mem)
        row.pods = max(0, available.pods - held.pods)
        row.gpus = {m: max(0, n - held.gpus.get(m, 0)) for m, n in available.gpus.items()}

    def _invalidate(self) -> None:
        self._statics.clear()
        self._shapes.clear()

    def _by_name(self) -> list[_Row]:
        if self._sorted is None:
            self._sorted = [self._rows[name] for name in sorted(self._rows)]
        return self._sorted

    def _static(self, lease: LeaseRequest, pool: PoolPolicy) -> tuple[object, _Static]:
        key = (_selector_key(pool.selector), pool.regions, lease.regions, lease.providers)
        entry = _lru_get(self._statics, key)
        if entry is not None:
            return key, entry
        selector = pool.selector
        after: list[_Row] = []
        counts: dict[RejectionKind, int] = {}
        first: dict[RejectionKind, list[str]] = {}
        for row in self._by_name():
            view = row.view
            kind: RejectionKind | None = None
            if selector is not None and not selector.matches(view.labels):
                kind = _K.NOT_SELECTED
            elif not view.ready:
                kind = _K.NOT_READY
            elif view.cordoned:
                kind = _K.CORDONED
            elif (pool.regions and view.region not in pool.regions) or (
                lease.regions and view.region not in lease.regions
            ):
                kind = _K.REGION
            elif lease.providers and view.name not in lease.providers:
                kind = _K.NOT_ALLOWED
            if kind is None:
                after.append(row)
                continue
            counts[kind] = counts.get(kind, 0) + 1
            names = first.setdefault(kind, [])
            if len(names) < MAX_REJECTED_SAMPLES:
                names.append(row.name)
        entry = _Static(
            after=after,
            after_names=frozenset(r.name for r in after),
            counts=counts,
            first=first,
            reasons={},
        )
        _lru_put(self._statics, key, entry, STATIC_CACHE_SIZE)
        return key, entry

    def _shape(self, lease: LeaseRequest, pool: PoolPolicy) -> _Shape:
        static_key, static = self._static(lease, pool)
        need = lease.resources
        key = (
            static_key,
            pool.min_reputation,
            need.cpu_milli,
            need.memory_bytes,
            need.gpu_count,
            need.gpu_model,
            lease.public_protocols,
        )
        entry = _lru_get(self._shapes, key)
        if entry is not None and entry.static is static:
            self._sync(entry)
            return entry
        counts = dict(static.counts)
        late: dict[str, RejectionKind] = {}
        late_names: dict[RejectionKind, list[str]] = {}
        kept: list[tuple[int, float, str, _Row]] = []
        options: list[list[tuple[str, int]]] = []
        any_model = bool(need.gpu_count) and need.gpu_model is None

        def price(row: _Row, model: str | None) -> int:
            pricing = row.view.pricing
            if not pricing.dynamic:
                return replica_price(
                    cpu_milli=need.cpu_milli,
                    memory_bytes=need.memory_bytes,
                    gpu_count=need.gpu_count,
                    cpu_core_hour=pricing.cpu_core_hour,
                    memory_gib_hour=pricing.memory_gib_hour,
                    gpu_hour=pricing.gpu_hour[model] if model is not None else 0,
                )
            return provider_quote(
                row.view, need, model, free_cpu=row.cpu, free_memory=row.mem, free_gpus=row.gpus
            ).price

        for row in static.after:
            kind: RejectionKind | None = None
            model: str | None = None
            if row.view.reputation < pool.min_reputation:
                kind = _K.REPUTATION
            elif publishing_reason(row.view.publish_mode, lease.public_protocols):
                kind = _K.PUBLISHING
            elif need.gpu_count:
                if need.gpu_model is None:
                    if not row.priced:
                        kind = _K.GPU
                elif need.gpu_model not in row.view.pricing.gpu_hour:
                    kind = _K.GPU
                else:
                    model = need.gpu_model
            if kind is not None:
                late[row.name] = kind
                counts[kind] = counts.get(kind, 0) + 1
                late_names.setdefault(kind, []).append(row.name)
            elif any_model:
                kept.append((0, 0.0, row.name, row))
                options.append([(m, price(row, m)) for _, m in row.priced])
            else:
                kept.append((price(row, model), row.negrep, row.name, row))
        if not any_model:
            kept.sort(key=lambda item: item[:3])
        rows = [item[3] for item in kept]
        entry = _Shape(
            static=static,
            need=(need.cpu_milli, need.memory_bytes, need.gpu_count, need.gpu_model),
            counts=counts,
            late=late,
            late_names=late_names,
            rows=rows,
            prices=[item[0] for item in kept],
            options=options,
            index={row.name: i for i, row in enumerate(rows)},
            by_name=sorted(range(len(rows)), key=lambda i: rows[i].name),
            slot=[],
            code=[],
            totals=[],
            members=[],
            capacity=0,
            ordered={},
            reasons={},
            synced=-1,
        )
        self._sync(entry)
        _lru_put(self._shapes, key, entry, SHAPE_CACHE_SIZE)
        return entry

    def _sync(self, shape: _Shape) -> None:
        """Re-fit the providers of ``shape`` whose free capacity changed since its last use."""
        if shape.options:
            return  # any-model gpu shapes are fitted per decision (_resolve)
        end = self._log_base + len(self._log)
        cpu, memory, gpus, model = shape.need
        rows = shape.rows
        # replaying a change costs a dict lookup, mostly a miss; refitting a provider more
        if shape.synced < self._log_base or end - shape.synced > 4 * len(rows):
            fitted = [_fit(row, cpu, memory, gpus, model) for row in rows]
            shape.slot = [slots for slots, _ in fitted]
            shape.code = [code for _, code in fitted]
            shape.capacity = sum(shape.slot)
            shape.totals = [shape.code.count(code) for code in range(_EXCLUDED)]
            shape.members = [set() for _ in range(_EXCLUDED)]
            for position, value in enumerate(shape.code):
                if value:
                    shape.members[value].add(position)
            shape.ordered = {}
            shape.synced = end
            return
        index, slot, codes = shape.index, shape.slot, shape.code
        totals, members = shape.totals, shape.members
        capacity = shape.capacity
        n = len(rows)
        bin_pack = shape.ordered.get(Strategy.BIN_PACK)
        spreading = shape.ordered.get(Strategy.SPREAD)
        for name in self._log[shape.synced - self._log_base :]:
            i = index.get(name)
            if i is None:
                continue
            row = rows[i]
            # _fit inlined: this loop runs for every change of every cached shape
            code = _FIT
            if gpus:
                fits = row.gpus.get(model, 0) // gpus if model is not None else 0
                if not fits:
                    code = _SHORT_GPU
                else:
                    more = row.cpu // cpu
                    if not more:
                        code = _SHORT_CPU
                    elif more < fits:
                        fits = more
            else:
                fits = row.cpu // cpu
                if not fits:
                    code = _SHORT_CPU
            if not code:
                more = row.mem // memory
                if not more:
                    code = _SHORT_MEMORY
                else:
                    if more < fits:
                        fits = more
                    more = row.pods
                    if not more:
                        code = _SHORT_PODS
                    elif more < fits:
                        fits = more
            if code:
                fits = 0
            was = slot[i]
            if fits != was:
                capacity += fits - was
                slot[i] = fits
                if bin_pack is not None:
                    if was:
                        del bin_pack[bisect_left(bin_pack, was * n + i)]
                    if fits:
                        insort(bin_pack, fits * n + i)
                if spreading is not None:
                    if was:
                        del spreading[bisect_left(spreading, i - was * n)]
                    if fits:
                        insort(spreading, i - fits * n)
            old = codes[i]
            if old != code:
                codes[i] = code
                totals[old] -= 1
                totals[code] += 1
                if old:
                    members[old].discard(i)
                if code:
                    members[code].add(i)
        shape.capacity = capacity
        shape.synced = end

    def _resolve(
        self, shape: _Shape, lease: LeaseRequest
    ) -> tuple[list[_Row], list[int], list[str], dict[str, int], list[int], list[int], list[int]]:
        """Gpu lease without a model: per provider the cheapest model with room, its price."""
        need = lease.resources
        kept: list[tuple[int, float, str, _Row, str]] = []
        for row, choices in zip(shape.rows, shape.options, strict=True):
            model, price = choices[0]
            for choice, choice_price in choices:
                if row.gpus.get(choice, 0) >= need.gpu_count:
                    model, price = choice, choice_price
                    break
            kept.append((price, row.negrep, row.name, row, model))
        kept.sort(key=lambda item: item[:3])
        rows = [item[3] for item in kept]
        models = [item[4] for item in kept]
        fitted = [
            _fit(row, need.cpu_milli, need.memory_bytes, need.gpu_count, model)
            for row, model in zip(rows, models, strict=True)
        ]
        return (
            rows,
            [item[0] for item in kept],
            models,
            {row.name: i for i, row in enumerate(rows)},
            sorted(range(len(rows)), key=lambda i: rows[i].name),
            [slots for slots, _ in fitted],
            [code for _, code in fitted],
        )

    # --- decisions ----------------------------------------------------------------------

    def decide(
        self,
        lease: LeaseRequest,
        pool: PoolPolicy,
        *,
        already_placed: Mapping[str, int] = _EMPTY,
        exclude: frozenset[str] = frozenset(),
        money: Formatter = format_price,
    ) -> Decision:
        """Decide where the missing replicas of a lease go, among all providers of the market.

        Same semantics and result as :func:`.schedule` over ``list(market)`` with the
        market's holds as reservations. Pure: the market's state is unchanged (call
        :meth:`commit` to hold the result).

        Args:
            lease: The lease.
            pool: The lease's pool (its selector picks the providers).
            already_placed: Replicas of this lease that stay where they are, by provider.
            exclude: Providers to avoid in this decision.
            money: Formats base units in rejection reasons.

        Returns:
            The decision.

        Raises:
            ValueError: If ``already_placed`` has a negative count.
        """
        if any(count < 0 for count in already_placed.values()):
            raise ValueError(f"already_placed counts must be >= 0, got {dict(already_placed)}")
        if lease.resources.storage:
            return self._decide_with_storage(lease, pool, already_placed, exclude, money)
        wanted = max(0, lease.replicas - sum(already_placed.values()))
        shape = self._shape(lease, pool)
        cap_price = lease.max_price_per_hour
        models: list[str] | None = None
        if shape.options:
            rows, prices, models, index, by_name, slot, code = self._resolve(shape, lease)
            totals = _tally(code)
            members: list[set[int]] = [set() for _ in range(_EXCLUDED)]
            for i, value in enumerate(code):
                if value:
                    members[value].add(i)
            capacity = sum(slot)
        else:
            rows, prices, index, by_name = shape.rows, shape.prices, shape.index, shape.by_name
            slot, code, totals, members = shape.slot, shape.code, shape.totals, shape.members
            capacity = shape.capacity
        n = len(rows)
        cut = n if cap_price is None else bisect_right(prices, cap_price)
        # providers by code among the priced ones (positions < cut)
        if cut == n:
            tally = totals[:]
        elif cut < n - cut:
            tally = _tally(code[:cut])
            capacity = sum(slot[:cut])
        else:
            beyond = _tally(code[cut:])
            tally = [a - b for a, b in zip(totals, beyond, strict=True)]
            capacity -= sum(slot[cut:])
        priced_out = n - cut

        counts = dict(shape.counts)
        excluded = exclude & shape.static.after_names if exclude else frozenset()
        skip: set[int] = set()
        for name in excluded:
            counts[_K.EXCLUDED] = counts.get(_K.EXCLUDED, 0) + 1
            late = shape.late.get(name)
            if late is not None:
                counts[late] -= 1
                continue
            i = index[name]
            skip.add(i)
            if i >= cut:
                priced_out -= 1
            else:
                tally[code[i]] -= 1
                capacity -= slot[i]
        feasible = tally[_FIT]
        for value in (_SHORT_GPU, _SHORT_CPU, _SHORT_MEMORY, _SHORT_PODS):
            if tally[value]:
                counts[_KIND_OF_CODE[value]] = tally[value]
        if priced_out:
            counts[_K.PRICE] = priced_out

        chosen: tuple[Placement, ...] = ()
        if 0 < wanted <= capacity:
            usable = slot
            if skip:
                usable = slot[:cut]
                for i in skip:
                    if i < cut:
                        usable[i] = 0
            ordered = None if shape.options else self._ordered(shape, pool.strategy)
            chosen = self._allocate(
                lease,
                pool,
                wanted,
                already_placed,
                rows,
                prices,
                models,
                usable,
                cut,
                ordered,
                skip,
            )

        counts = {kind: number for kind, number in counts.items() if number > 0}
        first: dict[RejectionKind, list[str]] = {}
        for kind in counts:
            if kind in shape.static.first:
                first[kind] = shape.static.first[kind]
            elif kind is _K.EXCLUDED:
                first[kind] = sorted(excluded)[:MAX_REJECTED_SAMPLES]
            elif kind in shape.late_names:
                names = shape.late_names[kind]
                first[kind] = list(
                    islice((x for x in names if x not in excluded), MAX_REJECTED_SAMPLES)
                )
            else:
                first[kind] = _first_names(
                    _CODE_OF_KIND[kind], rows, by_name, code, members, cut, skip
                )
        samples: dict[str, str] = {}
        picked = pick_samples(first, counts)
        if picked:
            kind_of = {name: kind for kind, names in first.items() for name in names}
            for name in picked:
                samples[name] = self._reason(
                    name, kind_of[name], shape, lease, pool, exclude, money, index, prices, models
                )
        return build_decision(
            lease=lease.key,
            wanted=wanted,
            considered=len(self._rows),
            feasible=feasible,
            capacity=capacity,
            chosen=chosen,
            counts=counts,
            samples=samples,
            money=money,
        )

    def _decide_with_storage(
        self,
        lease: LeaseRequest,
        pool: PoolPolicy,
        already_placed: Mapping[str, int],
        exclude: frozenset[str],
        money: Formatter,
    ) -> Decision:
        """A lease with persistent storage: :func:`.schedule` over the market and its holds.

        Storage leases are decided by the reference implementation (O(providers + holds) per
        decision): the incremental caches track cpu, memory, gpus and pods only.
        """
        ledger = Reservations(settle_seconds=self.settle_seconds)
        for held in self._held.values():
            for r in held.by_key.values():
                ledger.reserve(
                    key=r.key, provider=r.provider, resources=r.resources, at=r.created_at
                )
        return schedule(
            lease,
            [row.view for row in self._by_name()],
            pool,
            ledger,
            exclude=exclude,
            already_placed=already_placed,
            money=money,
        )

    @staticmethod
    def _ordered(shape: _Shape, strategy: Strategy) -> list[int] | None:
        """The maintained BinPack/Spread keys of a shape, built on first use."""
        if strategy is not Strategy.BIN_PACK and strategy is not Strategy.SPREAD:
            return None
        keys = shape.ordered.get(strategy)
        if keys is None:
            n = len(shape.rows)
            fitting = [(i, s) for i, s in enumerate(shape.slot) if s]
            if strategy is Strategy.BIN_PACK:
                keys = sorted(s * n + i for i, s in fitting)
            else:
                keys = sorted(i - s * n for i, s in fitting)
            shape.ordered[strategy] = keys
        return keys

    def _reason(
        self,
        name: str,
        kind: RejectionKind,
        shape: _Shape,
        lease: LeaseRequest,
        pool: PoolPolicy,
        exclude: frozenset[str],
        money: Formatter,
        index: dict[str, int],
        prices: list[int],
        models: list[str] | None,
    ) -> str:
        """Reason of one quoted rejection, formatted as :func:`.classify` does."""
        row = self._rows[name]
        if kind is _K.EXCLUDED:
            return EXCLUDED_REASON
        if kind is _K.PRICE and lease.max_price_per_hour is not None:
            return price_reason(prices[index[name]], lease.max_price_per_hour, money)
        if kind in _CODE_OF_KIND:
            model = lease.resources.gpu_model
            if models is not None:
                model = models[index[name]]
            have = {
                _K.INSUFFICIENT_GPU: row.gpus.get(model, 0) if model else 0,
                _K.INSUFFICIENT_CPU: row.cpu,
                _K.INSUFFICIENT_MEMORY: row.mem,
                _K.INSUFFICIENT_PODS: row.pods,
            }[kind]
            return shortage_reason(kind, have, lease, model)
        cache = shape.static.reasons if kind in shape.static.first else shape.reasons
        reason = cache.get(name)
        if reason is None:
            ctx = FilterContext(lease=lease, pool=pool, exclude=exclude, money=money)
            outcome = classify(row.view, self.free(name), ctx)
            reason = outcome.name if isinstance(outcome, Candidate) else outcome[1]
            if kind is not _K.GPU:  # the gpu reason lists free gpus: not static
                cache[name] = reason
        return reason

    @staticmethod
    def _allocate(
        lease: LeaseRequest,
        pool: PoolPolicy,
        wanted: int,
        already: Mapping[str, int],
        rows: list[_Row],
        prices: list[int],
        models: list[str] | None,
        slot: list[int],
        cut: int,
        ordered: list[int] | None = None,
        skip: set[int] | None = None,
    ) -> tuple[Placement, ...]:
        """Rank the feasible providers with integer keys and place ``wanted`` replicas.

        ``rows`` are sorted by (price, -reputation, name), every strategy's tail, so the
        position ``i`` of a row is its tail rank and ``key * n + i`` (``key`` an integer
        equal up to a constant to the strategy's own first key) orders exactly like the
        tuple keys of :func:`.scoring.rank`; ``i`` is recovered as ``key % n``. Feasible
        providers are the positions below ``cut`` with ``slot[i] > 0``. ``ordered`` are the
        maintained BinPack or Spread keys of all providers (positions in ``skip`` and from
        ``cut`` on are passed over); without them the keys are computed here.
        """
        strategy = pool.strategy
        n = len(rows)
        ranked: Iterator[int]
        if strategy is Strategy.LOWEST_PRICE:
            ranked = compress(range(cut), slot)
        elif ordered is not None and 2 * cut >= n:
            avoid = skip or set()
            ranked = (i for i in map(_mod, ordered, repeat(n)) if i < cut and i not in avoid)
        elif strategy is Strategy.BALANCED:
            ranked = _balanced(rows, prices, slot, cut)
        else:
            fi = list(compress(range(cut), slot))
            fs = list(filter(None, islice(slot, cut)))
            if strategy is Strategy.BIN_PACK:  # (slots, tail)
                keys = list(map(add, map(mul, fs, repeat(n)), fi))
            else:  # Spread: (-slots, tail)
                keys = list(map(sub, fi, map(mul, fs, repeat(n))))
            heapq.heapify(keys)
            ranked = (heapq.heappop(keys) % n for _ in range(len(keys)))

        placed: dict[int, int] = {}
        if lease.spread or strategy is Strategy.SPREAD:
            prefix = list(islice(ranked, wanted + len(already)))
            counts = spread([(rows[i].name, slot[i]) for i in prefix], wanted, already)
            placed = {i: counts[rows[i].name] for i in prefix if rows[i].name in counts}
        else:
            left = wanted
            for i in ranked:
                take = min(slot[i], left)
                placed[i] = take
                left -= take
                if not left:
                    break
        fixed = lease.resources.gpu_model if lease.resources.gpu_count else None
        chosen = []
        for i, count in placed.items():
            row = rows[i]
            model = fixed if models is None else models[i]
            listed, multiplier = prices[i], MULTIPLIER_ONE
            if row.view.pricing.dynamic:
                quoted = provider_quote(
                    row.view,
                    lease.resources,
                    model,
                    free_cpu=row.cpu,
                    free_memory=row.mem,
                    free_gpus=row.gpus,
                )
                listed, multiplier = quoted.list_price, quoted.multiplier
            chosen.append(Placement(row.name, count, prices[i], model, listed, multiplier))
        return tuple(chosen)


__all__ = ["SHAPE_CACHE_SIZE", "STATIC_CACHE_SIZE", "Market"]
