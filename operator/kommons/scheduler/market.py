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
provider is added, removed or changes one of those attributes. A decision then runs one tight
loop over the providers that can price the lease (capacity only), ranks just the feasible ones
with integer keys, and formats reasons only for the at most ``MAX_REJECTED_SAMPLES`` quoted
providers. Memory is O(providers + holds) plus the bounded caches.

It takes the same decisions as :func:`.schedule` given the same providers and the equivalent
:class:`.Reservations` ledger (a property test checks it on random markets).

Not thread-safe: the hub calls it from its event loop only.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import Final, TypeVar

from kommons.scheduler.decision import (
    MAX_REJECTED_SAMPLES,
    Decision,
    Placement,
    build_decision,
    pick_samples,
)
from kommons.scheduler.filters import Candidate, FilterContext, Formatter, RejectionKind, classify
from kommons.scheduler.model import LeaseRequest, PoolPolicy, ProviderView, Resources, Strategy
from kommons.scheduler.money import format_price, replica_price
from kommons.scheduler.reservations import Reservation, is_reflected, placement_key
from kommons.scheduler.schedule import spread
from kommons.scheduler.scoring import BALANCED_WEIGHTS, REPUTATION_SCALE
from kommons.scheduler.selector import LabelSelector

STATIC_CACHE_SIZE: Final = 64
"""Pool/lease filter combinations whose static filter outcome is cached."""

SHAPE_CACHE_SIZE: Final = 64
"""Lease shapes (per filter combination) whose prices are cached."""

_EMPTY: Final[Mapping[str, int]] = MappingProxyType({})
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


@dataclass(slots=True)
class _Shape:
    """Static outcome for one lease shape: reputation, gpu model, price."""

    static: _Static
    counts: dict[RejectionKind, int]
    late: dict[str, RejectionKind]
    """Providers rejected for reputation or gpu."""
    late_names: dict[RejectionKind, list[str]]
    """Those names by kind, sorted."""
    rows: list[_Row]
    """Providers left; with a fixed gpu model (or none) sorted by (price, -reputation,
    name), so a price cap cuts a suffix; otherwise by name."""
    prices: list[int]
    """Replica price on each of ``rows`` (fixed model or no gpu)."""
    models: list[list[tuple[str, int]]]
    """Gpu model → replica price on each of ``rows``, cheapest first (lease without model)."""


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
        )
        entry = _lru_get(self._shapes, key)
        if entry is not None and entry.static is static:
            return entry
        counts = dict(static.counts)
        late: dict[str, RejectionKind] = {}
        late_names: dict[RejectionKind, list[str]] = {}
        kept: list[tuple[int, float, str, _Row]] = []
        models: list[list[tuple[str, int]]] = []

        def price(row: _Row, gpu_hour: int) -> int:
            pricing = row.view.pricing
            return replica_price(
                cpu_milli=need.cpu_milli,
                memory_bytes=need.memory_bytes,
                gpu_count=need.gpu_count,
                cpu_core_hour=pricing.cpu_core_hour,
                memory_gib_hour=pricing.memory_gib_hour,
                gpu_hour=gpu_hour,
            )

        for row in static.after:
            kind: RejectionKind | None = None
            gpu_hour = 0
            if row.view.reputation < pool.min_reputation:
                kind = _K.REPUTATION
            elif need.gpu_count:
                if need.gpu_model is None:
                    if not row.priced:
                        kind = _K.GPU
                elif need.gpu_model not in row.view.pricing.gpu_hour:
                    kind = _K.GPU
                else:
                    gpu_hour = row.view.pricing.gpu_hour[need.gpu_model]
            if kind is not None:
                late[row.name] = kind
                counts[kind] = counts.get(kind, 0) + 1
                late_names.setdefault(kind, []).append(row.name)
            elif need.gpu_count and need.gpu_model is None:
                kept.append((0, 0.0, row.name, row))
                models.append([(m, price(row, p)) for p, m in row.priced])
            else:
                kept.append((price(row, gpu_hour), row.negrep, row.name, row))
        if not (need.gpu_count and need.gpu_model is None):
            kept.sort(key=lambda item: item[:3])
        entry = _Shape(
            static=static,
            counts=counts,
            late=late,
            late_names=late_names,
            rows=[item[3] for item in kept],
            prices=[item[0] for item in kept],
            models=models,
        )
        _lru_put(self._shapes, key, entry, SHAPE_CACHE_SIZE)
        return entry

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
        wanted = max(0, lease.replicas - sum(already_placed.values()))
        shape = self._shape(lease, pool)
        need = lease.resources
        cap_price = lease.max_price_per_hour
        counts = dict(shape.counts)
        excluded = exclude & shape.static.after_names if exclude else frozenset()
        for name in sorted(excluded):
            kind = shape.late.get(name)
            if kind is not None:
                counts[kind] -= 1
            counts[_K.EXCLUDED] = counts.get(_K.EXCLUDED, 0) + 1

        rows = shape.rows
        prices = shape.prices
        models: list[str | None] | None = None
        cut = len(rows)
        if need.gpu_count and need.gpu_model is None:
            rows, prices, models, priced_out = self._resolve(shape, lease, excluded)
            cut = len(rows)
        else:
            if cap_price is not None:
                cut = bisect_right(prices, cap_price)
            # excluded providers left of the cut are skipped by _fit, right of it here
            priced_out = [row.name for row in rows[cut:] if row.name not in excluded]
        if priced_out:
            counts[_K.PRICE] = counts.get(_K.PRICE, 0) + len(priced_out)

        short: dict[RejectionKind, list[str]] = {}
        fi, fs, capacity = self._fit(rows, cut, lease, models, excluded, short)
        for kind, names in short.items():
            counts[kind] = counts.get(kind, 0) + len(names)

        chosen: tuple[Placement, ...] = ()
        if 0 < wanted <= capacity:
            chosen = self._allocate(
                lease, pool, wanted, already_placed, rows, prices, models, fi, fs
            )

        first: dict[RejectionKind, list[str]] = {}
        for kind, number in counts.items():
            if number <= 0:
                continue
            if kind in shape.static.counts:
                first[kind] = shape.static.first[kind]
            elif kind is _K.EXCLUDED:
                first[kind] = sorted(excluded)[:MAX_REJECTED_SAMPLES]
            elif kind in shape.late_names:
                names = shape.late_names[kind]
                first[kind] = list(
                    islice((n for n in names if n not in excluded), MAX_REJECTED_SAMPLES)
                )
            elif kind is _K.PRICE:
                first[kind] = heapq.nsmallest(MAX_REJECTED_SAMPLES, priced_out)
            else:
                first[kind] = heapq.nsmallest(MAX_REJECTED_SAMPLES, short[kind])
        samples: dict[str, str] = {}
        sampled = pick_samples(first, counts)
        if sampled:
            ctx = FilterContext(lease=lease, pool=pool, exclude=frozenset(exclude), money=money)
            for name in sampled:
                outcome = classify(self._rows[name].view, self.free(name), ctx)
                samples[name] = outcome.name if isinstance(outcome, Candidate) else outcome[1]
        return build_decision(
            lease=lease.key,
            wanted=wanted,
            considered=len(self._rows),
            feasible=len(fi),
            capacity=capacity,
            chosen=chosen,
            counts={kind: number for kind, number in counts.items() if number > 0},
            samples=samples,
        )

    def _resolve(
        self, shape: _Shape, lease: LeaseRequest, excluded: frozenset[str]
    ) -> tuple[list[_Row], list[int], list[str | None], list[str]]:
        """Gpu lease without a model: per provider the cheapest model with room, then price."""
        need = lease.resources.gpu_count
        cap_price = lease.max_price_per_hour
        kept: list[tuple[int, float, str, _Row, str]] = []
        priced_out: list[str] = []
        for row, options in zip(shape.rows, shape.models, strict=True):
            if row.name in excluded:
                continue
            model, price = options[0]
            for option, option_price in options:
                if row.gpus.get(option, 0) >= need:
                    model, price = option, option_price
                    break
            if cap_price is not None and price > cap_price:
                priced_out.append(row.name)
                continue
            kept.append((price, row.negrep, row.name, row, model))
        kept.sort(key=lambda item: item[:3])
        return (
            [item[3] for item in kept],
            [item[0] for item in kept],
            [item[4] for item in kept],
            priced_out,
        )

    @staticmethod
    def _fit(
        rows: list[_Row],
        cut: int,
        lease: LeaseRequest,
        models: list[str | None] | None,
        excluded: frozenset[str],
        short: dict[RejectionKind, list[str]],
    ) -> tuple[list[int], list[int], int]:
        """Slots of every priced provider; fills ``short`` with the names that have none.

        Returns:
            Indices (into ``rows``) of feasible providers, ascending; their slots; the sum.
        """
        need = lease.resources
        c, m, g = need.cpu_milli, need.memory_bytes, need.gpu_count
        no_gpu: list[str] = []
        no_cpu: list[str] = []
        no_mem: list[str] = []
        no_pods: list[str] = []
        fi: list[int] = []
        fs: list[int] = []
        capacity = 0
        if not g:
            for i in range(cut):
                row = rows[i]
                if excluded and row.name in excluded:
                    continue
                s = row.cpu // c
                if not s:
                    no_cpu.append(row.name)
                    continue
                t = row.mem // m
                if not t:
                    no_mem.append(row.name)
                    continue
                if t < s:
                    s = t
                t = row.pods
                if not t:
                    no_pods.append(row.name)
                    continue
                if t < s:
                    s = t
                fi.append(i)
                fs.append(s)
                capacity += s
        else:
            fixed = need.gpu_model
            for i in range(cut):
                row = rows[i]
                if excluded and row.name in excluded:
                    continue
                model = fixed if models is None else models[i]
                s = row.gpus.get(model, 0) // g if model is not None else 0
                if not s:
                    no_gpu.append(row.name)
                    continue
                t = row.cpu // c
                if not t:
                    no_cpu.append(row.name)
                    continue
                if t < s:
                    s = t
                t = row.mem // m
                if not t:
                    no_mem.append(row.name)
                    continue
                if t < s:
                    s = t
                t = row.pods
                if not t:
                    no_pods.append(row.name)
                    continue
                if t < s:
                    s = t
                fi.append(i)
                fs.append(s)
                capacity += s
        for kind, names in (
            (_K.INSUFFICIENT_GPU, no_gpu),
            (_K.INSUFFICIENT_CPU, no_cpu),
            (_K.INSUFFICIENT_MEMORY, no_mem),
            (_K.INSUFFICIENT_PODS, no_pods),
        ):
            if names:
                short[kind] = names
        return fi, fs, capacity

    @staticmethod
    def _allocate(
        lease: LeaseRequest,
        pool: PoolPolicy,
        wanted: int,
        already: Mapping[str, int],
        rows: list[_Row],
        prices: list[int],
        models: list[str | None] | None,
        fi: list[int],
        fs: list[int],
    ) -> tuple[Placement, ...]:
        """Rank the feasible providers (integer keys) and place ``wanted`` replicas.

        ``rows`` are sorted by (price, -reputation, name), every strategy's tail, so the
        index ``i`` of a row is its tail rank and ``key * n + i`` orders like the strategy's
        tuple key in :func:`.scoring.rank`.
        """
        strategy = pool.strategy
        n = len(rows)
        slots = dict(zip(fi, fs, strict=True))
        ranked: Iterator[int]
        if strategy is Strategy.LOWEST_PRICE:
            ranked = iter(fi)
        else:
            if strategy is Strategy.BIN_PACK:
                keys = [s * n + i for i, s in zip(fi, fs, strict=True)]
            elif strategy is Strategy.SPREAD:
                top = max(fs)
                keys = [(top - s) * n + i for i, s in zip(fi, fs, strict=True)]
            else:
                feasible_prices = [prices[i] for i in fi]
                low = min(feasible_prices)
                span = max(feasible_prices) - low or 1
                most = max(fs)
                scale = REPUTATION_SCALE
                a = _W_PRICE * most * scale
                b = _W_REPUTATION * span * most
                h = _W_HEADROOM * span * scale
                keys = [
                    (a * (p - low) + b * (scale - rows[i].qrep) + h * (most - s)) * n + i
                    for i, s, p in zip(fi, fs, feasible_prices, strict=True)
                ]
            heapq.heapify(keys)
            ranked = (heapq.heappop(keys) % n for _ in range(len(keys)))

        placed: dict[int, int] = {}
        if lease.spread or strategy is Strategy.SPREAD:
            prefix = list(islice(ranked, wanted + len(already)))
            counts = spread([(rows[i].name, slots[i]) for i in prefix], wanted, already)
            placed = {i: counts[rows[i].name] for i in prefix if rows[i].name in counts}
        else:
            left = wanted
            for i in ranked:
                take = min(slots[i], left)
                placed[i] = take
                left -= take
                if not left:
                    break
        fixed = lease.resources.gpu_model if lease.resources.gpu_count else None
        return tuple(
            Placement(rows[i].name, count, prices[i], fixed if models is None else models[i])
            for i, count in placed.items()
        )


__all__ = ["SHAPE_CACHE_SIZE", "STATIC_CACHE_SIZE", "Market"]
