"""Hollow agents: many providers' agents simulated from one process, without provider clusters.

Like kubemark's hollow nodes, a hollow provider does exactly what a real agent does *towards the
hub* and nothing towards a provider cluster (it has none):

- it is onboarded with the real :func:`kommons.hub.onboarding.onboard` (its namespace, RBAC and
  a scoped ServiceAccount token) and every write it makes uses **that token**: the API server
  enforces the same least privilege as for a real agent;
- it registers its declarations (prices) on its ``Provider``, renews its pre-created heartbeat
  ``Lease`` and reports inventory into ``Provider.status`` (``capacity``/``allocatable``/
  ``available`` including ``pods``, ``accountedLeases`` as ``namespace/name=replicas``,
  ``inventoryTime``, ``nodes`` ...) through the real agent's
  :class:`kommons.agent.hub_link.HubLink` and :mod:`kommons.agent.inventory` (checked every
  ``report_seconds``, written as the agent does: when it changed, or every 30 s);
  region and labels (``kommons.io/tier``, ``testbed.kommons.io/hollow``) are the hub admin's,
  given at onboarding;
- it "runs" the ``LeasePlacement`` s of its namespace on simulated nodes (first fit per replica
  on cpu, memory and the node's pod allowance, as kube-scheduler would) and writes their status
  after a configurable delay: ``Running`` with ``readyReplicas == replicas`` when the replicas
  fit, otherwise ``Pending``/``Degraded`` with ``PodsUnschedulable`` and kube-scheduler's kind
  of message ("0/2 nodes are available: 2 Too many pods.").

Watching placements: one watch per hollow provider (1,000 watches) would cost more than the
hub. The fleet therefore runs **one** list+watch of ``leaseplacements`` across namespaces with
the hub's admin credentials — reads only — and makes every *write* with the provider's own
token. The hub sees the same writes from the same identities as from real agents; only the
read path differs (a real agent watches its own namespace). Placements get no agent finalizer
(a real agent adds ``kommons.io/agent``), so deleting them does not wait for a hollow agent.

Work is done by a small thread pool driven by a timer heap; heartbeats and reports are spread
evenly over their interval. Everything stops after ``duration`` seconds at the latest, or on
SIGTERM/SIGINT. Run it with ``kommons-testbed hollow --providers N`` (or
``python -m kommons_testbed.hollow``) against a bed whose hub runs the Kommons CRDs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import heapq
import itertools
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import urllib3
import yaml
from kubernetes import watch

from kommons import __version__
from kommons.agent.config import AgentConfig
from kommons.agent.hub_link import HubLink, now_rfc3339
from kommons.agent.inventory import Amount, Inventory, inventory_needs_write, inventory_status
from kommons.agent.workload import target_namespace
from kommons.api.provider import Pricing, ProviderStatus
from kommons.api_names import GROUP, PROVIDER_NAMESPACE_PREFIX, VERSION, provider_namespace
from kommons.hub.onboarding import Onboarding, onboard
from kommons.kube import Kube, KubeError
from kommons.kube import resources as r
from kommons.quantity import to_bytes, to_millicores

JSON = dict[str, Any]
HOLLOW_LABEL = "testbed.kommons.io/hollow"
"""Label the hub admin gives a hollow provider at onboarding (pools may select or avoid it)."""
KUBERNETES_VERSION = "v1.36.3-hollow"
PAYOUT_ADDRESS = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")


# --------------------------------------------------------------------------- the simulated cluster


@dataclass(frozen=True)
class NodeShape:
    """Allocatable resources of one simulated node."""

    cpu_milli: int = 16_000
    memory_bytes: int = 64 << 30
    pods: int = 110


@dataclass
class PlacementState:
    """One placement as the hollow provider runs it."""

    name: str
    lease_key: str
    """``namespace/name`` of the lease (what ``accountedLeases`` lists)."""
    replicas: int
    cpu_milli: int
    memory_bytes: int
    generation: int | None
    changed_at: float
    """Monotonic time the spec was last seen to change (the ready delay counts from here)."""
    scheduled: int = 0
    """Replicas that fit on the nodes (the rest are Pending)."""
    unschedulable: str = ""
    """Why the other replicas do not fit, kube-scheduler style."""
    written: tuple[object, ...] | None = None
    """The last status written (to skip writes that would change nothing)."""


class HollowCluster:
    """Nodes and the placements bound to them: kube-scheduler's arithmetic, nothing more (pure).

    Replicas are bound first fit, placements in arrival order; a replica needs its cpu, its
    memory and one pod slot of the node. Replicas that do not fit stay Pending until capacity
    frees up (a placement deleted or scaled down).
    """

    def __init__(self, nodes: Sequence[NodeShape]) -> None:
        self.nodes = tuple(nodes)
        self.placements: dict[str, PlacementState] = {}

    def upsert(
        self,
        name: str,
        *,
        lease_key: str,
        replicas: int,
        cpu_milli: int,
        memory_bytes: int,
        generation: int | None,
        now: float,
    ) -> set[str]:
        """Add or update a placement; return the placements whose status must follow.

        That is this one when its spec changed, and any other whose bound replicas moved.
        """
        old = self.placements.get(name)
        if (
            old is not None
            and old.replicas == replicas
            and old.cpu_milli == cpu_milli
            and old.memory_bytes == memory_bytes
        ):
            old.generation = generation
            return set() if old.written is not None else {name}
        self.placements[name] = PlacementState(
            name=name,
            lease_key=lease_key,
            replicas=replicas,
            cpu_milli=cpu_milli,
            memory_bytes=memory_bytes,
            generation=generation,
            changed_at=now,
            written=old.written if old else None,
        )
        return self._bind() | {name}

    def remove(self, name: str) -> set[str]:
        """Forget a placement (deleted on the hub); return the others whose status moved."""
        if self.placements.pop(name, None) is None:
            return set()
        return self._bind()

    def _bind(self) -> set[str]:
        """Bind every replica again; return the placements whose bound count changed."""
        before = {name: p.scheduled for name, p in self.placements.items()}
        free = [[n.cpu_milli, n.memory_bytes, n.pods] for n in self.nodes]
        for p in self.placements.values():
            p.scheduled, p.unschedulable = 0, ""
            for _ in range(p.replicas):
                node = next(
                    (f for f in free if f[0] >= p.cpu_milli and f[1] >= p.memory_bytes and f[2]),
                    None,
                )
                if node is None:
                    p.unschedulable = self._why(free, p)
                    break
                node[0] -= p.cpu_milli
                node[1] -= p.memory_bytes
                node[2] -= 1
                p.scheduled += 1
        return {name for name, p in self.placements.items() if p.scheduled != before[name]}

    @staticmethod
    def _why(free: Sequence[Sequence[int]], p: PlacementState) -> str:
        counts: dict[str, int] = {}
        for cpu, memory, pods in free:
            for short, reason in (
                (cpu < p.cpu_milli, "Insufficient cpu"),
                (memory < p.memory_bytes, "Insufficient memory"),
                (pods < 1, "Too many pods"),
            ):
                if short:
                    counts[reason] = counts.get(reason, 0) + 1
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
        return f"0/{len(free)} nodes are available: {reasons}."

    # --- what the agent reports ------------------------------------------------------------

    def allocatable(self) -> Amount:
        """Sum of the nodes' allocatable resources and pod slots."""
        return Amount(
            sum(n.cpu_milli for n in self.nodes),
            sum(n.memory_bytes for n in self.nodes),
            pods=sum(n.pods for n in self.nodes),
        )

    def reserved(self) -> Amount:
        """What the placements hold: replicas × resources, one pod slot per replica."""
        return Amount(
            sum(p.cpu_milli * p.replicas for p in self.placements.values()),
            sum(p.memory_bytes * p.replicas for p in self.placements.values()),
            pods=sum(p.replicas for p in self.placements.values()),
        )

    def inventory(self) -> Inventory:
        """The agent's inventory: allocatable minus every placement's replicas, at least 0."""
        allocatable, reserved = self.allocatable(), self.reserved()
        return Inventory(
            capacity=allocatable,
            allocatable=allocatable,
            requested=Amount(),
            reserved=reserved,
            available=allocatable.minus(reserved),
            ready_nodes=len(self.nodes),
        )

    def accounted_leases(self) -> list[str]:
        """``namespace/name=replicas`` of each placement the available amount subtracts."""
        return sorted(f"{p.lease_key}={p.replicas}" for p in self.placements.values())

    def placement_status(self, name: str, *, now: float, ready_delay: float) -> JSON | None:
        """The status the agent would write for a placement now (``None`` if unknown)."""
        p = self.placements.get(name)
        if p is None:
            return None
        started = now >= p.changed_at + ready_delay
        ready = p.scheduled if started else 0
        pending = p.replicas - p.scheduled
        if p.replicas == 0:
            phase, reason, message = "Suspended", "Suspended", ""
        elif ready >= p.replicas:
            phase, reason, message = "Running", "AllReplicasReady", ""
        elif pending:
            phase = "Degraded" if ready else "Pending"
            reason = "PodsUnschedulable"
            message = f"{pending} pod(s) Pending: {p.unschedulable}"
        else:
            phase, reason, message = "Pending", "ContainersNotReady", "containers starting"
        return {
            "phase": phase,
            "replicas": p.replicas,
            "readyReplicas": ready,
            "namespace": target_namespace(name),
            "message": message or None,
            "observedGeneration": p.generation,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if phase in ("Running", "Suspended") else "False",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": now_rfc3339(),
                    "observedGeneration": p.generation,
                }
            ],
        }


# --------------------------------------------------------------------------- options, stats


@dataclass(frozen=True)
class HollowOptions:
    """How many hollow providers, their hardware and their agents' rhythm."""

    providers: int = 100
    prefix: str = "hollow"
    nodes: int = 2
    node: NodeShape = NodeShape()
    heartbeat_seconds: float = 5.0
    report_seconds: float = 5.0
    ready_delay: float = 1.0
    """Seconds from a placement (or a change of its spec) to its replicas being Ready."""
    workers: int = 64
    """Threads making the writes. Mostly waiting on the API server; enough of them that one
    slow request does not hold back other providers' heartbeats (each real agent has its own
    connection)."""
    onboard_workers: int = 8
    duration: float = 3600.0
    """The fleet stops by itself after this many seconds."""
    token_seconds: int = 24 * 3600
    seed: int = 7
    stats_file: Path | None = None
    """Written every few seconds: counters of writes, errors and timer lag (JSON)."""

    def names(self) -> list[str]:
        """The hollow providers' names: ``hollow-0000`` ..."""
        width = max(4, len(str(self.providers - 1)))
        return [f"{self.prefix}-{i:0{width}d}" for i in range(self.providers)]


@dataclass
class Stats:
    """What the fleet did (thread-safe counters)."""

    started: float = field(default_factory=time.time)
    writes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    lag_max: float = 0.0
    """Largest delay between a timer's due time and its start (the fleet falling behind)."""
    lag_total: float = 0.0
    lag_count: int = 0
    watch_events: int = 0
    onboarded: int = 0
    onboard_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrote(self, kind: str) -> None:
        """Count one successful write."""
        with self._lock:
            self.writes[kind] = self.writes.get(kind, 0) + 1

    def failed(self, kind: str, error: Exception) -> None:
        """Count one failed write."""
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.last_error = f"{kind}: {error}"[:500]

    def lagged(self, seconds: float) -> None:
        """Record how late a timer started."""
        with self._lock:
            self.lag_max = max(self.lag_max, seconds)
            self.lag_total += seconds
            self.lag_count += 1

    def to_json(self) -> JSON:
        """A snapshot."""
        with self._lock:
            return {
                "time": time.time(),
                "started": self.started,
                "onboarded": self.onboarded,
                "onboardSeconds": round(self.onboard_seconds, 2),
                "writes": dict(self.writes),
                "writesTotal": sum(self.writes.values()),
                "errors": dict(self.errors),
                "lastError": self.last_error,
                "lagMaxSeconds": round(self.lag_max, 3),
                "lagMeanSeconds": round(self.lag_total / self.lag_count, 4)
                if self.lag_count
                else 0.0,
                "watchEvents": self.watch_events,
            }


# --------------------------------------------------------------------------- one hollow provider


class HollowProvider:
    """One provider's agent, hub side only, writing with the provider's own token."""

    def __init__(self, name: str, link: HubLink, cluster: HollowCluster) -> None:
        self.name = name
        self.link = link
        self.cluster = cluster
        self.namespace = provider_namespace(name)
        self.lock = threading.Lock()
        self.last_inventory: ProviderStatus | None = None

    @property
    def kube(self) -> Kube:
        """The provider's scoped hub client."""
        return self.link.hub

    def report(self) -> bool:
        """Report inventory as the real agent does; ``True`` when a write was made.

        The same pure functions decide: :func:`inventory_status` builds the report and
        :func:`inventory_needs_write` writes it only when it changed (``inventoryTime`` aside)
        or the last write is older than the agent's refresh (30 s).
        """
        with self.lock:
            inventory = self.cluster.inventory()
            leases = self.cluster.accounted_leases()
        now = datetime.now(UTC)
        status = inventory_status(
            inventory,
            leases,
            namespace=self.namespace,
            agent_version=__version__,
            kubernetes_version=KUBERNETES_VERSION,
            now=now,
        )
        if not inventory_needs_write(self.last_inventory, status, now=now):
            return False
        self.link.write_inventory(status)
        self.last_inventory = status
        return True

    def on_placement(self, event: str, body: Mapping[str, Any], now: float) -> set[str]:
        """Take a watch event of one of this provider's placements; return statuses now due."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        with self.lock:
            if event == "DELETED" or meta.get("deletionTimestamp"):
                return self.cluster.remove(name)
            spec = body.get("spec") or {}
            ref = spec.get("leaseRef") or {}
            res = spec.get("resources") or {}
            replicas = 0 if spec.get("suspend") else int(spec.get("replicas", 0))
            return self.cluster.upsert(
                name,
                lease_key=f"{ref.get('namespace')}/{ref.get('name')}",
                replicas=replicas,
                cpu_milli=to_millicores(res.get("cpu") or 0),
                memory_bytes=to_bytes(res.get("memory") or 0),
                generation=meta.get("generation"),
                now=now,
            )

    def write_placement_status(self, name: str, *, ready_delay: float) -> bool:
        """Write a placement's status if it changed since the last write; ``True`` if written."""
        with self.lock:
            status = self.cluster.placement_status(
                name, now=time.monotonic(), ready_delay=ready_delay
            )
            if status is None:
                return False
            key = (status["phase"], status["readyReplicas"], status["replicas"], status["message"])
            state = self.cluster.placements[name]
            if state.written == key:
                return False
        status["lastReportTime"] = now_rfc3339()
        self.kube.patch(
            r.LEASE_PLACEMENTS, name, {"status": status}, self.namespace, subresource="status"
        )
        with self.lock:
            current = self.cluster.placements.get(name)
            if current is not None:
                current.written = key
        return True


# --------------------------------------------------------------------------- the fleet


def _token(kubeconfig_text: str) -> str:
    config = yaml.safe_load(kubeconfig_text)
    return str(config["users"][0]["user"]["token"])


def agent_config(rnd: random.Random) -> AgentConfig:
    """A hollow provider's declaration: region in turn, prices random in a fixed range.

    cpu 0.022-0.045 per core-hour, memory 0.003-0.005 per GiB-hour: above the bed's cheapest
    real provider (prov-a, 0.02/0.003), so a LowestPrice burst fills the real ones first.
    """
    return AgentConfig(
        payout_address=PAYOUT_ADDRESS,
        pricing=Pricing.model_validate(
            {
                "cpuCoreHour": f"{rnd.randint(220, 450) / 10_000:.4f}",
                "memoryGiBHour": f"{rnd.randint(30, 50) / 10_000:.4f}",
            }
        ),
    )


def offboard(hub: Kube, provider: str) -> None:
    """Remove a (hollow) provider from the hub: its Provider, namespace and cluster RBAC."""
    hub.delete(r.PROVIDERS, provider)
    hub.delete(r.CLUSTER_ROLE_BINDINGS, f"kommons-provider-{provider}")
    hub.delete(r.CLUSTER_ROLES, f"kommons-provider-{provider}")
    hub.delete(r.NAMESPACES, provider_namespace(provider))


class Fleet:
    """Many hollow providers in one process: a timer heap feeding a small thread pool."""

    def __init__(self, hub: Kube, options: HollowOptions) -> None:
        self.hub = hub
        self.options = options
        self.stats = Stats()
        self.providers: dict[str, HollowProvider] = {}
        self.stop = threading.Event()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="hollow")
        # One HTTP connection pool for every provider's client: tokens are per request.
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=options.workers + 4,
            cert_reqs="CERT_REQUIRED",
            ca_certs=hub.api_client.configuration.ssl_ca_cert,
        )

    # --- onboarding ---------------------------------------------------------------------

    def _client(self, provider: str, token: str) -> Kube:
        base = self.hub.api_client.configuration
        config = kubernetes.client.Configuration()
        config.host = base.host
        config.ssl_ca_cert = base.ssl_ca_cert
        config.verify_ssl = True
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        api = kubernetes.client.ApiClient(config)
        api.user_agent = f"kommons-hollow-agent/{provider}"
        api.rest_client.pool_manager = self._http
        return Kube(api, field_manager=f"kommons-agent-{provider}")

    def onboard(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Onboard every hollow provider (real ``onboard()``), register it, heartbeat once."""
        started = time.monotonic()
        rnd = random.Random(self.options.seed)
        names = self.options.names()
        configs = {name: agent_config(rnd) for name in names}
        regions = {name: REGIONS[i % len(REGIONS)] for i, name in enumerate(names)}
        shape = [self.options.node] * self.options.nodes

        def one(name: str) -> HollowProvider:
            config = configs[name]
            text = onboard(
                self.hub,
                Onboarding(
                    provider=name,
                    region=regions[name],
                    payout_address=PAYOUT_ADDRESS,
                    labels={"kommons.io/tier": "community", HOLLOW_LABEL: "true"},
                ),
                token_seconds=self.options.token_seconds,
            )
            link = HubLink(self._client(name, _token(text)), name, config)
            link.register()
            link.heartbeat(duration_seconds=int(self.options.heartbeat_seconds * 3))
            provider = HollowProvider(name, link, HollowCluster(shape))
            provider.report()
            return provider

        with ThreadPoolExecutor(max_workers=self.options.onboard_workers) as pool:
            for provider in pool.map(one, configs):
                self.providers[provider.name] = provider
                self.stats.onboarded += 1
                if self.stats.onboarded % 100 == 0:
                    progress(f"onboarded {self.stats.onboarded}/{len(configs)} hollow providers")
                if self.stop.is_set():
                    break
        self.stats.onboard_seconds = time.monotonic() - started
        progress(
            f"onboarded {len(self.providers)} hollow providers in {self.stats.onboard_seconds:.1f}s"
        )

    # --- timers -------------------------------------------------------------------------

    def at(self, due: float, work: Callable[[], None]) -> None:
        """Run ``work`` in the pool at monotonic time ``due``."""
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), work))
            self._cond.notify()

    def _every(
        self, kind: str, seconds: float, offset: float, work: Callable[[], bool | None]
    ) -> None:
        """Run ``work`` every ``seconds``; a write is counted unless it returns ``False``."""

        def run(due: float) -> None:
            self.stats.lagged(max(0.0, time.monotonic() - due))
            try:
                if work() is not False:
                    self.stats.wrote(kind)
            except Exception as exc:  # a failed beat must not stop the next one
                self.stats.failed(kind, exc)
            following = due + seconds
            if following < time.monotonic():  # fell behind: skip, as a real agent would
                following = time.monotonic() + seconds
            self.at(following, lambda: run(following))

        first = time.monotonic() + offset
        self.at(first, lambda: run(first))

    def _clock(self) -> None:
        while not self.stop.is_set():
            with self._cond:
                now = time.monotonic()
                if not self._heap or self._heap[0][0] > now:
                    timeout = min(0.5, self._heap[0][0] - now) if self._heap else 0.5
                    self._cond.wait(timeout)
                    continue
                _, _, work = heapq.heappop(self._heap)
            if not self.stop.is_set():
                self._pool.submit(work)

    # --- placements -----------------------------------------------------------------------

    def _flush(self, provider: HollowProvider, name: str) -> None:
        try:
            if provider.write_placement_status(name, ready_delay=self.options.ready_delay):
                self.stats.wrote("placementStatus")
        except KubeError as exc:
            if exc.status != 404:  # gone meanwhile: nothing to report
                self.stats.failed("placementStatus", exc)
                self.at(time.monotonic() + 1.0, lambda: self._flush(provider, name))
        except Exception as exc:  # keep the fleet going; retry later
            self.stats.failed("placementStatus", exc)
            self.at(time.monotonic() + 1.0, lambda: self._flush(provider, name))

    def handle(self, event: str, body: Mapping[str, Any]) -> None:
        """One watch event of a placement anywhere on the hub."""
        self.stats.watch_events += 1
        meta = body.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        provider = self.providers.get(namespace.removeprefix(PROVIDER_NAMESPACE_PREFIX))
        if provider is None or not namespace.startswith(PROVIDER_NAMESPACE_PREFIX):
            return
        now = time.monotonic()
        for name in provider.on_placement(event, body, now):
            self.at(now + self.options.ready_delay, functools.partial(self._flush, provider, name))

    def _watch(self) -> None:
        api = kubernetes.client.CustomObjectsApi(self.hub.api_client)
        version = ""
        while not self.stop.is_set():
            try:
                if not version:
                    listed = cast(
                        JSON, api.list_cluster_custom_object(GROUP, VERSION, "leaseplacements")
                    )
                    for item in listed.get("items", []):
                        self.handle("ADDED", item)
                    version = str(listed["metadata"]["resourceVersion"])
                stream = watch.Watch()  # type: ignore[no-untyped-call]
                events: Iterable[JSON] = stream.stream(  # type: ignore[no-untyped-call]
                    api.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    "leaseplacements",
                    resource_version=version,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                )
                for event in events:
                    if self.stop.is_set():
                        stream.stop()  # type: ignore[no-untyped-call]
                        break
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        version = ""  # expired: list again
                        break
                    version = str(obj["metadata"]["resourceVersion"])
                    if kind != "BOOKMARK":
                        self.handle(kind, obj)
            except kubernetes.client.ApiException as exc:
                if exc.status == 410:
                    version = ""
                else:
                    self.stats.failed("watch", exc)
                    self.stop.wait(1.0)
            except Exception as exc:  # network hiccup: keep watching
                self.stats.failed("watch", exc)
                self.stop.wait(1.0)

    # --- running ------------------------------------------------------------------------

    def _write_stats(self) -> None:
        path = self.options.stats_file
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stats.to_json(), indent=1))
        tmp.replace(path)

    def run(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Onboard, then heartbeat/report/run placements until stopped or ``duration`` ends."""
        deadline = time.monotonic() + self.options.duration
        clock = threading.Thread(target=self._clock, name="hollow-clock", daemon=True)
        clock.start()
        try:
            self.onboard(progress)
            count = max(1, len(self.providers))
            o = self.options
            beat = int(o.heartbeat_seconds * 3)
            for i, provider in enumerate(self.providers.values()):
                self._every(
                    "heartbeat",
                    o.heartbeat_seconds,
                    o.heartbeat_seconds * i / count,
                    functools.partial(provider.link.heartbeat, duration_seconds=beat),
                )
                self._every(
                    "report", o.report_seconds, o.report_seconds * i / count, provider.report
                )
            watcher = threading.Thread(target=self._watch, name="hollow-watch", daemon=True)
            watcher.start()
            progress(f"hollow fleet of {len(self.providers)} providers running")
            while not self.stop.is_set() and time.monotonic() < deadline:
                self._write_stats()
                self.stop.wait(min(2.0, max(0.0, deadline - time.monotonic())))
        finally:
            self.stop.set()
            with self._cond:
                self._cond.notify_all()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._write_stats()
            progress(f"hollow fleet stopped: {json.dumps(self.stats.to_json())}")


# --------------------------------------------------------------------------- command line


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Options of ``kommons-testbed hollow`` (also ``python -m kommons_testbed.hollow``)."""
    parser = parser or argparse.ArgumentParser(prog="kommons-testbed hollow", description=__doc__)
    d = HollowOptions()
    parser.add_argument("--providers", type=int, default=d.providers)
    parser.add_argument("--prefix", default=d.prefix, help="provider names: PREFIX-0000 ...")
    parser.add_argument("--nodes", type=int, default=d.nodes, help="simulated nodes each")
    parser.add_argument("--node-cpu", default="16")
    parser.add_argument("--node-memory", default="64Gi")
    parser.add_argument("--node-pods", type=int, default=d.node.pods)
    parser.add_argument("--heartbeat-seconds", type=float, default=d.heartbeat_seconds)
    parser.add_argument(
        "--report-seconds",
        type=float,
        default=d.report_seconds,
        help="how often inventory is checked (written on change or every 30 s, as the agent)",
    )
    parser.add_argument("--ready-delay", type=float, default=d.ready_delay)
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--duration", type=float, default=d.duration, help="stop after S seconds")
    parser.add_argument("--stats-file", type=Path, default=None)
    parser.add_argument(
        "--hub-kubeconfig",
        type=Path,
        default=None,
        help="admin kubeconfig of the hub (default: the bed's hub.kubeconfig)",
    )
    return parser


def options_from(args: argparse.Namespace) -> HollowOptions:
    """:class:`HollowOptions` from parsed arguments."""
    return HollowOptions(
        providers=args.providers,
        prefix=args.prefix,
        nodes=args.nodes,
        node=NodeShape(
            cpu_milli=to_millicores(args.node_cpu),
            memory_bytes=to_bytes(args.node_memory),
            pods=args.node_pods,
        ),
        heartbeat_seconds=args.heartbeat_seconds,
        report_seconds=args.report_seconds,
        ready_delay=args.ready_delay,
        workers=args.workers,
        duration=args.duration,
        stats_file=args.stats_file,
    )


def run_from_args(args: argparse.Namespace, bed_dir: Path | None = None) -> int:
    """Run a fleet until SIGTERM/SIGINT or ``--duration``."""
    from kommons.kube import connect
    from kommons_testbed.bed import Testbed

    kubeconfig = args.hub_kubeconfig or Testbed.load(bed_dir).hub.kubeconfig
    fleet = Fleet(connect(kubeconfig, field_manager="kommons-hollow"), options_from(args))

    def _stop(signum: int, frame: object) -> None:
        fleet.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)

    def say(text: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)

    fleet.run(say)
    return 0


def read_stats(path: Path) -> JSON:
    """The last stats a fleet wrote (``{}`` before the first write)."""
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(path.read_text()))
    return {}


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m kommons_testbed.hollow``."""
    return run_from_args(build_parser().parse_args(list(argv) if argv is not None else None))


if __name__ == "__main__":
    sys.exit(main())
