"""Every Prometheus metric Kommons exports: names, help, label sets (one place).

The hub and each agent expose ``/metrics`` (``--metrics-port``; ``0`` turns it off) from a
:class:`~prometheus_client.CollectorRegistry` of their own, built by :class:`HubMetrics` or
:class:`AgentMetrics`. Names follow Prometheus conventions: ``kommons_`` prefix, the unit as a
suffix (``_seconds``, ``_tokens``), ``_total`` on counters.

Labels are bounded (docs/operations.md lists every metric):

- ``phase``: the kind's phase enum; ``reason``: :class:`~kommons.scheduler.filters.RejectionKind`;
  ``result``/``step``/``outcome``: the few values named where the metric is defined;
- ``pool``: ProviderPools (created by the hub admin), ``provider``: Providers (onboarded by the
  hub admin), ``resource``: cpu/memory/pods/gpus — never a lease, pod or tenant label.

Gauges describing the market (leases by phase, providers, pools, epochs) are read from a
:class:`MarketSnapshot` the hub takes on its own loop every few seconds, so a scrape (on the
exposition thread) never walks the hub's dicts while they change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "LATENCY_BUCKETS",
    "AgentMetrics",
    "HubMetrics",
    "MarketSnapshot",
    "serve",
]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: from one API round trip to a failover's worst case."""
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
"""Seconds of one controller step (plan + writes)."""
GAS_BUCKETS = (30_000, 45_000, 60_000, 75_000, 100_000, 150_000, 250_000, 500_000, 1_000_000)
"""Gas used by one transaction."""


@dataclass(frozen=True)
class MarketSnapshot:
    """The market as the hub last saw it, for the gauges (taken on the hub's loop)."""

    leases: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(pool, phase) → leases. A lease without a phase yet counts as ``Pending``."""
    providers: Mapping[str, int] = field(default_factory=dict)
    """Phase → providers."""
    heartbeat_age: Mapping[str, float] = field(default_factory=dict)
    """Provider → seconds since the hub last saw its heartbeat change (heartbeating ones)."""
    pool_capacity: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(pool, resource) → allocatable of the pool's providers (cpu in cores, memory in bytes)."""
    pool_free: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(pool, resource) → free capacity of the pool's Ready, uncordoned providers."""
    epochs: Mapping[str, int] = field(default_factory=dict)
    """Phase → SettlementEpochs the hub remembers."""
    accounts: Mapping[str, int] = field(default_factory=dict)
    """Standing (Covered, Low, Suspended; ``Unknown`` before the payment guard's first
    round) → BillingAccounts."""


def _key(value: str | tuple[str, ...]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_SNAPSHOT_GAUGES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("kommons_leases", "ComputeLeases by pool and phase.", ("pool", "phase"), "leases"),
    ("kommons_providers", "Providers by phase.", ("phase",), "providers"),
    (
        "kommons_provider_heartbeat_age_seconds",
        "Seconds since the hub last saw the provider's heartbeat Lease renewed.",
        ("provider",),
        "heartbeat_age",
    ),
    (
        "kommons_pool_capacity",
        "Allocatable capacity of the pool's providers (cpu in cores, memory in bytes).",
        ("pool", "resource"),
        "pool_capacity",
    ),
    (
        "kommons_pool_free",
        "Free capacity of the pool's Ready, uncordoned providers (cpu in cores, memory in bytes).",
        ("pool", "resource"),
        "pool_free",
    ),
    (
        "kommons_settlement_epochs",
        "SettlementEpochs the hub remembers, by phase.",
        ("phase",),
        "epochs",
    ),
    (
        "kommons_billing_accounts",
        "BillingAccounts by standing (the payment guard's last verdict on their escrow).",
        ("standing",),
        "accounts",
    ),
)
"""(name, help, labels, :class:`MarketSnapshot` field) of every gauge read from the snapshot."""


class _SnapshotCollector(Collector):
    """Gauges read from the latest :class:`MarketSnapshot` (swapped whole, never mutated)."""

    def __init__(self, latest: Callable[[], MarketSnapshot]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        snap = self._latest()
        for name, help_text, labels, attribute in _SNAPSHOT_GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            values: Mapping[str | tuple[str, ...], float] = getattr(snap, attribute)
            for key, value in sorted(values.items()):
                family.add_metric(_key(key), value)
            yield family


class HubMetrics:
    """The hub's metrics, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.snapshot = MarketSnapshot()
        """Replaced whole by the hub; read by scrapes."""
        reg = self.registry
        self.leader = Gauge(
            "kommons_hub_leader",
            "1 while this hub replica holds the election Lease and acts, 0 while it stands by.",
            registry=reg,
        )
        self.reconcile_seconds = Histogram(
            "kommons_hub_reconcile_duration_seconds",
            "Duration of one step of a lease (plan, metering, writes).",
            buckets=STEP_BUCKETS,
            registry=reg,
        )
        self.reconcile_errors = Counter(
            "kommons_hub_reconcile_errors_total",
            "Lease steps that raised (the lease is retried).",
            registry=reg,
        )
        self.scheduling_latency = Histogram(
            "kommons_scheduling_latency_seconds",
            "From a lease's creation to the decision that placed all its replicas first.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.scheduling_attempts = Counter(
            "kommons_scheduling_attempts_total",
            "Scheduling decisions, by result (placed, unschedulable).",
            ["result"],
            registry=reg,
        )
        self.scheduling_rejections = Counter(
            "kommons_scheduling_rejections_total",
            "Providers a scheduling decision rejected, by the first filter they failed.",
            ["reason"],
            registry=reg,
        )
        self.failovers = Counter(
            "kommons_failovers_total",
            "Placements moved off a provider that became unreachable or never got ready.",
            registry=reg,
        )
        self.accrued_tokens = Counter(
            "kommons_metered_accrued_tokens_total",
            "Cost the hub added to leases from accepted ready time (token units).",
            registry=reg,
        )
        self.late_seconds = Counter(
            "kommons_metering_late_replica_seconds_total",
            "Replica-seconds reported for an epoch already sealed (not billed).",
            registry=reg,
        )
        self.settlement_transactions = Counter(
            "kommons_settlement_transactions_total",
            "Settlement transactions mined, by kind (commit, claim) and outcome (ok, reverted).",
            ["kind", "outcome"],
            registry=reg,
        )
        self.settlement_gas = Histogram(
            "kommons_settlement_gas_used",
            "Gas used by one mined settlement transaction, by kind (commit, claim).",
            ["kind"],
            buckets=GAS_BUCKETS,
            registry=reg,
        )
        self.epoch_settle_seconds = Histogram(
            "kommons_settlement_epoch_settle_seconds",
            "From an epoch's end to its Confirmed phase.",
            buckets=(*LATENCY_BUCKETS, 600.0, 1800.0, 3600.0),
            registry=reg,
        )
        self.chain_errors = Counter(
            "kommons_chain_rpc_errors_total",
            "Chain calls that failed (node unreachable, timeout, error reply), by loop"
            " (settlement, payment).",
            ["loop"],
            registry=reg,
        )
        reg.register(_SnapshotCollector(lambda: self.snapshot))


class AgentMetrics:
    """An agent's metrics, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.step_seconds = Histogram(
            "kommons_agent_step_duration_seconds",
            "Duration of one agent step, by step (apply, report, remove, heartbeat, inventory,"
            " sweep).",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=reg,
        )
        self.step_errors = Counter(
            "kommons_agent_step_errors_total",
            "Agent steps that raised (retried), by step (apply, report, remove, heartbeat,"
            " inventory, sweep).",
            ["step"],
            registry=reg,
        )
        self.checkpoints = Counter(
            "kommons_agent_metering_checkpoints_total",
            "Metering checkpoints written to placements' status.",
            registry=reg,
        )


def serve(registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> int:
    """Expose ``registry`` on ``http://address:port/metrics`` from a daemon thread.

    Returns the port bound (``port=0`` binds a free one; ``--metrics-port 0`` means no
    exposition, so the commands do not call this then).
    """
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return int(server.server_port)
