"""Benchmark of the scheduler core: the incremental Market against the reference schedule().

For 100 / 1,000 / 5,000 providers carrying 10,000 existing holds (placements the providers
have not accounted for yet), runs the same stream of leases through

* ``Market.decide`` + ``Market.commit`` (what the hub does), and
* ``schedule(lease, providers, pool, ledger)`` + ``ledger.record`` (the previous path),

for every strategy (the lease decided 1,000 decisions earlier ends and its holds are
released, so the market stays in a steady state), and prints decisions per second of CPU time
(``time.process_time``) and of wall time, the ratio, and whether both took the same decisions
on the stream they share. Each cell runs for a time budget, so the slow path does fewer
decisions. It also prints the cost of the market's events (provider report, hold, release) and
the market's memory. It asserts nothing about time. Run::

    .venv/bin/python bench/bench_scheduler.py [--quick] [--sizes 100,1000,5000] [--holds 10000]
        [--dynamic 0.2]   # a share of providers with Utilization prices
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from kommons.scheduler import (
    LeaseRequest,
    Market,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Reservations,
    Resources,
    Strategy,
    placement_key,
    schedule,
)

GI = 1 << 30
MODELS = ("nvidia-a100", "nvidia-l4", "nvidia-h100")
REGIONS = ("eu-west", "eu-central", "us-east", "ap-south")
OBSERVED_AT = 10.0
"""Every provider's last report; holds are made after it, so none is reflected yet."""
LIVE = 1000
"""Leases of the stream that stay placed: the one decided LIVE decisions ago ends (its holds
are released), so the market neither fills up nor empties during a run."""


def make_providers(count: int, rnd: random.Random, dynamic: float = 0.0) -> list[ProviderView]:
    """Providers of 1-20 nodes (16 cores, 64Gi, 110 pods each), mixed prices and gpus.

    A share ``dynamic`` of them price by utilisation (``maxMultiplier`` 2, a ceiling of 1.5 ×
    their free capacity); with 0 the random stream is the same as before dynamic pricing.
    """
    views = []
    for i in range(count):
        model = rnd.choice(MODELS)
        nodes = rnd.randint(1, 20)
        region = rnd.choice(REGIONS)
        labels = {"tier": rnd.choice(["gold", "silver"])}
        ready, cordoned = rnd.random() > 0.05, rnd.random() < 0.02
        reputation = rnd.uniform(0.5, 1.0)
        available = Resources(
            cpu_milli=nodes * rnd.randint(4, 16) * 1000,
            memory_bytes=nodes * rnd.randint(16, 64) * GI,
            gpus={model: rnd.randint(0, 8)},
            pods=nodes * 110,
        )
        prices = (
            rnd.randint(10_000, 40_000),
            rnd.randint(1_000, 5_000),
            {model: rnd.randint(300_000, 3_000_000)},
        )
        utilization = bool(dynamic) and rnd.random() < dynamic
        views.append(
            ProviderView(
                name=f"prov-{i:05d}",
                region=region,
                labels=labels,
                ready=ready,
                cordoned=cordoned,
                reputation=reputation,
                available=available,
                ceiling=Resources(
                    cpu_milli=available.cpu_milli * 3 // 2,
                    memory_bytes=available.memory_bytes * 3 // 2,
                    gpus={model: available.gpus[model] * 3 // 2},
                )
                if utilization
                else Resources(),
                pricing=Pricing(
                    cpu_core_hour=prices[0],
                    memory_gib_hour=prices[1],
                    gpu_hour=prices[2],
                    max_multiplier=20_000 if utilization else 10_000,
                ),
                observed_at=OBSERVED_AT,
            )
        )
    return views


def make_lease(i: int, rnd: random.Random) -> LeaseRequest:
    """A lease of 1-4 replicas; one in five asks for a gpu, one in three spreads."""
    gpu = rnd.random() < 0.2
    return LeaseRequest(
        key=f"tenant-{i % 50}/lease-{i}",
        replicas=rnd.randint(1, 4),
        resources=ReplicaResources(
            cpu_milli=rnd.choice([250, 500, 1000, 2000]),
            memory_bytes=rnd.choice([1, 2, 4, 8]) * GI,
            gpu_count=1 if gpu else 0,
            gpu_model=rnd.choice(MODELS) if gpu else None,
        ),
        max_price_per_hour=rnd.choice([None, 5_000_000, 300_000]),
        spread=rnd.random() < 0.3,
    )


def make_holds(
    views: list[ProviderView], count: int, rnd: random.Random
) -> list[tuple[str, str, Resources]]:
    """``count`` existing one-replica placements (100m-1000m, 256Mi-1Gi) on random providers."""
    holds = []
    for i in range(count):
        view = rnd.choice(views)
        resources = Resources(
            cpu_milli=rnd.choice([100, 250, 500, 1000]),
            memory_bytes=rnd.choice([1, 2, 4]) * GI // 4,
            pods=1,
        )
        holds.append((placement_key(f"existing/l{i}", view.name), view.name, resources))
    return holds


@dataclass
class Cell:
    """Figures of one path for one size and strategy."""

    decisions: int
    cpu: float
    wall: float
    scheduled: int
    outcomes: list[tuple[object, ...]]

    @property
    def per_cpu_second(self) -> float:
        """Decisions per second of CPU time."""
        return self.decisions / self.cpu if self.cpu > 0 else float("inf")

    @property
    def per_wall_second(self) -> float:
        """Decisions per second of wall time."""
        return self.decisions / self.wall if self.wall > 0 else float("inf")


def run(
    step: Callable[[int], tuple[object, ...]], budget: float, most: int, warmup: int = 0
) -> tuple[Cell, float]:
    """Call ``step(i)`` for i = 0, 1, ...: ``warmup`` calls untimed, then timed ones.

    Timed calls go on until ``budget`` seconds of CPU or ``most`` calls in all.

    Returns:
        The timed figures (outcomes include the warm-up) and the warm-up's CPU seconds.
    """
    outcomes: list[tuple[object, ...]] = []
    gc.collect()
    cpu_start = time.process_time()
    while len(outcomes) < warmup:
        outcomes.append(step(len(outcomes)))
    warm = time.process_time() - cpu_start
    done = len(outcomes)
    start, cpu_start = time.perf_counter(), time.process_time()
    cpu = 0.0
    while len(outcomes) < most and (len(outcomes) < done + 3 or cpu < budget):
        outcomes.append(step(len(outcomes)))
        cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - start
    timed = outcomes[done:]
    scheduled = sum(1 for o in timed if o and o[0])
    return Cell(len(timed), cpu, wall, scheduled, outcomes), warm


def bench_size(
    size: int,
    holds_count: int,
    leases: list[LeaseRequest],
    budget: float,
    seed: int,
    warmup: int,
    dynamic: float = 0.0,
) -> list[tuple[str, Cell, Cell, int, float]]:
    """Both paths for every strategy at one size."""
    rnd = random.Random(seed + size)
    views = make_providers(size, rnd, dynamic)
    holds = make_holds(views, holds_count, rnd)
    rows = []
    for strategy in Strategy:
        pool = PoolPolicy(strategy=strategy, min_reputation=0.6)

        market = Market()
        for view in views:
            market.set_provider(view)
        for key, provider, resources in holds:
            market.hold(key=key, provider=provider, resources=resources, at=OBSERVED_AT + 1)

        def new(i: int, market: Market = market, pool: PoolPolicy = pool) -> tuple[object, ...]:
            lease = leases[i % len(leases)]
            decision = market.decide(lease, pool)
            market.commit(decision, lease, at=OBSERVED_AT + 2 + i)
            if i >= LIVE:
                market.release_lease(leases[(i - LIVE) % len(leases)].key)
            return (decision.scheduled, decision.chosen, decision.feasible, decision.message)

        ledger = Reservations()
        for key, provider, resources in holds:
            ledger.reserve(key=key, provider=provider, resources=resources, at=OBSERVED_AT + 1)

        def old(
            i: int, ledger: Reservations = ledger, pool: PoolPolicy = pool
        ) -> tuple[object, ...]:
            lease = leases[i % len(leases)]
            decision = schedule(lease, views, pool, ledger)
            ledger.record(decision, lease, at=OBSERVED_AT + 2 + i)
            if i >= LIVE:
                ledger.release_lease(leases[(i - LIVE) % len(leases)].key)
            return (decision.scheduled, decision.chosen, decision.feasible, decision.message)

        reference, _ = run(old, budget, len(leases))
        fast, warm = run(new, budget, len(leases), warmup)
        shared = min(len(reference.outcomes), len(fast.outcomes))
        agree = sum(1 for a, b in zip(reference.outcomes, fast.outcomes, strict=False) if a == b)
        rows.append((strategy.value, fast, reference, agree if shared else 0, warm))
    return rows


def event_costs(
    size: int,
    holds_count: int,
    seed: int,
    leases: list[LeaseRequest],
    warmup: int,
    dynamic: float = 0.0,
) -> dict[str, float]:
    """Microseconds of CPU per market event, and the market's memory, at one size.

    Memory is measured with the holds, and again after ``warmup`` decisions of the stream
    (every cache filled for its lease shapes).
    """
    rnd = random.Random(seed)
    views = make_providers(size, rnd, dynamic)
    holds = make_holds(views, holds_count, rnd)
    gc.collect()
    tracemalloc.start()
    sized = Market()
    for view in views:
        sized.set_provider(view)
    for key, provider, resources in holds:
        sized.hold(key=key, provider=provider, resources=resources, at=OBSERVED_AT + 1)
    memory = tracemalloc.get_traced_memory()[0]
    pool = PoolPolicy(strategy=Strategy.BIN_PACK, min_reputation=0.6)
    for i, lease in enumerate(leases[:warmup]):
        sized.commit(sized.decide(lease, pool), lease, at=OBSERVED_AT + 2 + i)
        if i >= LIVE:
            sized.release_lease(leases[i - LIVE].key)
    warm_memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del sized
    market = Market()
    for view in views:
        market.set_provider(view)
    cpu = time.process_time()
    for key, provider, resources in holds:
        market.hold(key=key, provider=provider, resources=resources, at=OBSERVED_AT + 1)
    hold_us = (time.process_time() - cpu) / len(holds) * 1e6
    # a report per provider: new free capacity, observed before the holds (reflects none)
    reports = [
        ProviderView(
            name=v.name,
            region=v.region,
            labels=v.labels,
            ready=v.ready,
            cordoned=v.cordoned,
            reputation=v.reputation,
            available=Resources(
                cpu_milli=v.available.cpu_milli - 100,
                memory_bytes=v.available.memory_bytes,
                gpus=v.available.gpus,
                pods=v.available.pods - 1,
            ),
            ceiling=v.ceiling,
            pricing=v.pricing,
            observed_at=OBSERVED_AT,
        )
        for v in views
    ]
    cpu = time.process_time()
    for report in reports:
        market.set_provider(report)
    report_us = (time.process_time() - cpu) / len(reports) * 1e6
    cpu = time.process_time()
    for key, provider, _ in holds:
        market.release(key, provider)
    release_us = (time.process_time() - cpu) / len(holds) * 1e6
    return {
        "report": report_us,
        "hold": hold_us,
        "release": release_us,
        "memory_mib": memory / (1 << 20),
        "warm_memory_mib": warm_memory / (1 << 20),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small time budget per cell")
    parser.add_argument("--sizes", default="100,1000,5000", help="providers, comma-separated")
    parser.add_argument("--holds", type=int, default=10_000, help="existing holds")
    parser.add_argument("--leases", type=int, default=20_000, help="most decisions per cell")
    parser.add_argument("--budget", type=float, default=None, help="CPU seconds per cell")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="market decisions before timing, to fill the caches of the stream's lease "
        "shapes (default 2000, 500 with --quick)",
    )
    parser.add_argument(
        "--dynamic",
        type=float,
        default=0.0,
        help="share of providers pricing by utilisation (pricing.policy Utilization), 0-1",
    )
    args = parser.parse_args()
    budget = args.budget if args.budget is not None else (0.3 if args.quick else 2.0)
    if args.warmup is None:
        args.warmup = 500 if args.quick else 2000
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rnd = random.Random(args.seed)
    leases = [make_lease(i, rnd) for i in range(args.leases)]

    print(
        f"scheduler core: {args.holds} existing holds, budget {budget}s CPU per cell, "
        f"decisions = decide + commit (+ release of the lease decided {LIVE} before); "
        f"market timed after {args.warmup} warm-up decisions (CPU seconds in 'warm-up'); "
        f"{args.dynamic:.0%} of providers price by utilisation"
    )
    header = (
        f"{'providers':>9} {'strategy':<12} {'market dec/s':>12} {'(wall)':>9} "
        f"{'schedule() dec/s':>16} {'(wall)':>9} {'ratio':>7} {'agree':>9} {'scheduled':>10} "
        f"{'warm-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        cells = bench_size(size, args.holds, leases, budget, args.seed, args.warmup, args.dynamic)
        for strategy, fast, ref, agree, warm in cells:
            shared = min(len(fast.outcomes), len(ref.outcomes))
            print(
                f"{size:>9} {strategy:<12} {fast.per_cpu_second:>12,.0f} "
                f"{fast.per_wall_second:>9,.0f} {ref.per_cpu_second:>16,.1f} "
                f"{ref.per_wall_second:>9,.1f} {fast.per_cpu_second / ref.per_cpu_second:>6,.0f}x "
                f"{agree:>4}/{shared:<4} {fast.scheduled / fast.decisions:>9.0%} "
                f"{warm:>7.2f}s"
            )
    print()
    print("market events (CPU per call) and memory (tracemalloc) with the holds:")
    for size in sizes:
        costs = event_costs(size, args.holds, args.seed, leases, args.warmup, args.dynamic)
        print(
            f"{size:>9} providers: report {costs['report']:.1f}us, hold {costs['hold']:.1f}us, "
            f"release {costs['release']:.1f}us, memory {costs['memory_mib']:.1f} MiB "
            f"({costs['warm_memory_mib']:.1f} MiB with the caches after {args.warmup} decisions)"
        )


if __name__ == "__main__":
    main()
