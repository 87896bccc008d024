"""Benchmark of the pure scheduler at the design's scale (1,000 providers, 10,000 leases).

Prints figures and ratios (cpu time as well as wall time, the machine may be shared);
asserts nothing about time. Run:
``.venv/bin/python bench/bench_scheduler.py [--providers N] [--leases N]``.
"""

from __future__ import annotations

import argparse
import random
import time

from kommons.scheduler import (
    LeaseRequest,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Reservations,
    Resources,
    Strategy,
    schedule,
)

GI = 1 << 30
MODELS = ("nvidia-a100", "nvidia-l4", "nvidia-h100")
REGIONS = ("eu-west", "eu-central", "us-east", "ap-south")


def make_providers(count: int, rnd: random.Random) -> list[ProviderView]:
    """Providers of mixed sizes, prices and gpu models."""
    views = []
    for i in range(count):
        model = rnd.choice(MODELS)
        views.append(
            ProviderView(
                name=f"prov-{i:05d}",
                region=rnd.choice(REGIONS),
                labels={"tier": rnd.choice(["gold", "silver"])},
                ready=rnd.random() > 0.05,
                cordoned=rnd.random() < 0.02,
                reputation=rnd.uniform(0.5, 1.0),
                available=Resources(
                    cpu_milli=rnd.randint(4, 128) * 1000,
                    memory_bytes=rnd.randint(16, 512) * GI,
                    gpus={model: rnd.randint(0, 8)},
                ),
                pricing=Pricing(
                    cpu_core_hour=rnd.randint(10_000, 40_000),
                    memory_gib_hour=rnd.randint(1_000, 5_000),
                    gpu_hour={model: rnd.randint(300_000, 3_000_000)},
                ),
            )
        )
    return views


def make_lease(i: int, rnd: random.Random) -> LeaseRequest:
    """A lease; one in five asks for a gpu."""
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
        max_price_per_hour=rnd.choice([None, 5_000_000]),
        spread=rnd.random() < 0.3,
    )


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--leases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    views = make_providers(args.providers, rnd)
    leases = [make_lease(i, rnd) for i in range(args.leases)]
    for strategy in Strategy:
        pool = PoolPolicy(strategy=strategy, min_reputation=0.6)
        ledger = Reservations()
        scheduled = placements = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for i, lease in enumerate(leases):
            decision = schedule(lease, views, pool, ledger)
            ledger.record(decision, lease, at=1.0 + i)
            scheduled += decision.scheduled
            placements += len(decision.chosen)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        print(
            f"{strategy.value:12} providers={len(views)} leases={len(leases)} "
            f"scheduled={scheduled} placements={placements} reservations={len(ledger)} "
            f"wall={elapsed:.2f}s cpu={cpu:.2f}s "
            f"cpu_per_decision={cpu / len(leases) * 1e3:.2f}ms "
            f"cpu_per_provider_check={cpu / len(leases) / len(views) * 1e6:.2f}us"
        )


if __name__ == "__main__":
    main()
