"""The market as the hub's gauges show it (pure): :func:`take` a :class:`MarketSnapshot`.

Runs on the hub's loop (the only place its caches change); the exposition thread only reads the
frozen result (:mod:`kommons.metrics`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from kommons.hub.market_view import MarketView
from kommons.hub.views import InvalidDeclaration, pool_policy, summary_resources
from kommons.metering.ledger import Epoch
from kommons.metrics import MarketSnapshot
from kommons.scheduler.model import Resources

PENDING = "Pending"
"""The phase a lease counts under before the hub first writes one."""
UNKNOWN = "Unknown"
"""The standing an account counts under before the payment guard first writes one."""


def _resources(amount: Resources) -> dict[str, float]:
    """``cpu`` in cores, ``memory`` in bytes, ``pods``, and ``gpus`` (all models)."""
    return {
        "cpu": amount.cpu_milli / 1000,
        "memory": float(amount.memory_bytes),
        "pods": float(amount.pods),
        "gpus": float(sum(amount.gpus.values())),
    }


def take(view: MarketView, epochs: Mapping[int, Epoch], *, now: float) -> MarketSnapshot:
    """What the gauges show now.

    Args:
        view: The hub's cache.
        epochs: The SettlementEpochs the hub remembers.
        now: The hub's monotonic clock (heartbeat ages are measured on it).
    """
    leases = Counter(
        (lease.spec.pool_ref.name, (lease.status.phase if lease.status else None) or PENDING)
        for lease in view.leases.values()
    )
    providers = Counter(str(view.health(name)[0]) for name in view.providers)
    ages = {
        name: max(0.0, now - beat.seen_at)
        for name, beat in view.heartbeats.items()
        if name in view.providers
    }
    capacity: dict[tuple[str, str], float] = {}
    free: dict[tuple[str, str], float] = {}
    for pool_name, pool in view.pools.items():
        policy = pool_policy(pool)
        for name, provider in view.providers.items():
            market = view.market.get(name)
            if market is None or not policy.admits(market.labels, market.region):
                continue
            try:
                allocatable = summary_resources(
                    provider.status.allocatable if provider.status else None, "allocatable"
                )
            except InvalidDeclaration:
                continue  # excluded from the market; its phase says why
            for resource, value in _resources(allocatable).items():
                capacity[pool_name, resource] = capacity.get((pool_name, resource), 0.0) + value
            usable = market.ready and not market.cordoned
            for resource, value in _resources(market.available).items():
                key = (pool_name, resource)
                free[key] = free.get(key, 0.0) + (value if usable else 0.0)
    return MarketSnapshot(
        leases=dict(leases),
        providers=dict(providers),
        heartbeat_age=ages,
        pool_capacity=capacity,
        pool_free=free,
        epochs=dict(Counter(str(epoch.phase) for epoch in epochs.values())),
        accounts=dict(
            Counter(
                str((account.status.standing if account.status else None) or UNKNOWN)
                for account in view.accounts.values()
            )
        ),
    )
