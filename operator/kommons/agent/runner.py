"""Run the agent: kopf handlers for the provider's LeasePlacements, plus heartbeat and reports.

Handlers stay thin: each parses the placement once (:func:`kommons.agent.plan.parse_placement`;
an unreadable one gets a ``Failed`` status, not a retry loop), asks :mod:`kommons.agent.plan`
what to apply and what the status is, and leaves the API calls to
:class:`~kommons.agent.provider_cluster.ProviderCluster` (the provider's side),
:class:`~kommons.agent.hub_link.HubLink` (the hub's side) and kopf's status patch. The status is
written only when it changed, or every :data:`~kommons.agent.plan.STATUS_REFRESH` at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from kommons import __version__
from kommons.agent import plan
from kommons.agent.config import AgentConfig
from kommons.agent.fencing import orphaned
from kommons.agent.hub_link import HubLink
from kommons.agent.inventory import (
    Amount,
    StorageOffer,
    inventory_needs_write,
    inventory_status,
)
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.workload import target_namespace
from kommons.api import LeasePlacement, LeasePlacementStatus
from kommons.api.provider import ProviderStatus
from kommons.api_names import GROUP, VERSION, provider_namespace
from kommons.kopf_settings import configure_settings
from kommons.kube import Forbidden, connect
from kommons.kube.login import connection_info
from kommons.lease_logs import answer as logs_answer
from kommons.lease_logs import request_of as logs_request_of
from kommons.metering import accounting
from kommons.metrics import AgentMetrics
from kommons.metrics import serve as serve_metrics
from kommons.quantity import to_bytes as memory_bytes
from kommons.quantity import to_millicores as cpu_milli

log = logging.getLogger("kommons.agent")
PLACEMENTS = (GROUP, VERSION, "leaseplacements")
SWEEP_SECONDS = 30.0
"""How often the agent removes workloads whose placement is gone from the hub (and at start)."""


@dataclass(frozen=True)
class AgentOptions:
    """Where the agent connects and what it declares."""

    provider: str
    hub_kubeconfig: Path | None
    kubeconfig: Path | None
    config: AgentConfig
    metering_report_seconds: float = 30.0
    """The metering checkpoint is written at least this often while a pod is ready (and on
    every pod transition)."""
    metrics_port: int = 0
    """Port of ``/metrics`` (``kommons agent --metrics-port``, 8080 there); 0: none (push-mode
    agents run inside the hub and are not exposed)."""
    metrics_address: str = "0.0.0.0"
    """Address ``/metrics`` listens on."""


def offer_amount(config: AgentConfig) -> Amount | None:
    """The provider's offer as an :class:`Amount` (``None`` when it offers everything)."""
    offer = config.offer
    if offer is None:
        return None
    big = 1 << 62
    return Amount(
        cpu_milli(offer.cpu) if offer.cpu else big,
        memory_bytes(offer.memory) if offer.memory else big,
        {"*": offer.gpus if offer.gpus is not None else big},
    )


def storage_offer(config: AgentConfig) -> dict[str, StorageOffer]:
    """The storage tiers the provider offers: class and capacity in bytes, by tier."""
    return {
        tier: StorageOffer(storage_class=t.storage_class_name, capacity=memory_bytes(t.capacity))
        for tier, t in (config.storage or {}).items()
    }


class Agent:
    """One provider's agent.

    Between handler calls it keeps only its clients, the last inventory report it wrote (to
    skip writing an unchanged one) and the ``kommons logs`` requests it answered.
    """

    def __init__(
        self,
        options: AgentOptions,
        *,
        hub: HubLink | None = None,
        cluster: ProviderCluster | None = None,
    ) -> None:
        self.options = options
        if hub is None:
            kube = connect(
                options.hub_kubeconfig, field_manager=f"kommons-agent-{options.provider}"
            )
            hub = HubLink(kube, options.provider, options.config)
        self.hub = hub
        if cluster is None:
            cluster = ProviderCluster(connect(options.kubeconfig, field_manager="kommons-agent"))
        self.cluster = cluster
        self.offer = offer_amount(options.config)
        self.refresh = plan.STATUS_REFRESH
        self.last_inventory: ProviderStatus | None = None
        """The last inventory report written (in memory only: a restart writes at once)."""
        self.logs_answered: dict[str, str] = {}
        """Placement name → the nonce of the last ``kommons logs`` request it answered."""
        self.metrics = AgentMetrics()
        """What ``/metrics`` shows (served by :func:`run_agent` when a port is set)."""
        self.config_applied: dict[str, frozenset[str]] = {}
        """Placement name → the ``Kind/name`` of the ConfigMaps and Secrets last applied for it
        (bounded by the placements; dropped on removal)."""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step of the agent and count it as an error if it raises.

        Steps: ``apply``, ``report``, ``remove``, ``heartbeat``, ``inventory``, ``sweep``.
        """
        with self.metrics.step_seconds.labels(step=name).time():
            try:
                yield
            except Exception:
                self.metrics.step_errors.labels(step=name).inc()
                raise

    # --- placements (called from kopf handlers, in worker threads) -------------------------

    def _parse(self, body: kopf.Body, patch: kopf.Patch) -> LeasePlacement | None:
        """The typed placement, or ``None`` after reporting why it cannot be read."""
        try:
            placement = plan.parse_placement(body)
            plan.check_storage(placement, self.options.config.storage_classes())
            return placement
        except plan.InvalidPlacement as exc:
            previous = plan.previous_status(body)
            now = datetime.now(UTC)
            status = plan.invalid_status(
                exc, generation=plan.generation_of(body), previous=previous, now=now
            )
            if plan.needs_write(previous, status, now=now, refresh=self.refresh):
                log.error("%s; nothing applied", exc)
                patch.status.update(plan.status_patch(status))
            return None

    def apply_placement(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Materialise a placement on the provider cluster and report its status."""
        placement = self._parse(body, patch)
        if placement is None or plan.being_deleted(placement):
            return
        self._materialise(placement)
        spec = placement.spec
        log.info(
            "materialised placement %s (lease %s/%s, %d replicas) in namespace %s",
            placement.metadata.name,
            spec.lease_ref.namespace,
            spec.lease_ref.name,
            spec.replicas,
            target_namespace(plan.placement_name(placement)),
        )
        self._report(placement, body, patch)

    def _prune_claims(self, placement: LeasePlacement) -> None:
        """Delete the claims of replicas a placement with storage scaled away (not suspended)."""
        if not placement.spec.storage or placement.spec.suspend:
            return
        name = plan.placement_name(placement)
        surplus = plan.surplus_claims(placement, self.cluster.claims(name))
        if surplus:
            self.cluster.delete_claims(name, surplus)
            log.info("placement %s: deleted the claims of removed replicas: %s", name, surplus)

    def _materialise(self, placement: LeasePlacement) -> None:
        """Apply a placement's objects, then delete what it no longer needs.

        Its ConfigMaps and Secrets come from the hub's copies: while a copy is missing or of
        another version than the placement asks (the hub writes them right after the
        placement), nothing is applied and kopf retries shortly. A Service refused by a quota
        whose new limits the provider's quota controller has not counted yet (NodePorts raised
        with a public port) is tried again in seconds. Then go: the endpoint objects it no
        longer needs, the objects made from copies it no longer lists (while it lists some, or
        listed some since the agent started: a placement that never took config along costs
        no request; one whose last entry was dropped while the agent was down keeps the
        orphaned objects, unreferenced, until its namespace goes), and the claims of replicas
        it scaled away.
        """
        name = plan.placement_name(placement)
        keys = sorted(placement.spec.config_revisions or {})
        copies = self.hub.config_copies(name, keys) if keys else {}
        problems = plan.config_problems(placement, copies)
        if problems:
            raise kopf.TemporaryError(
                f"placement {name}: waiting for its config: " + "; ".join(problems), delay=2
            )
        config = self.options.config
        manifests = plan.desired_manifests(
            placement,
            runtime_class=config.runtime_class_name,
            storage_classes=config.storage_classes(),
            publish=config.expose,
            copies=copies,
        )
        try:
            self.cluster.apply(manifests)
        except Forbidden as exc:
            if "quota" not in exc.message:
                raise
            raise kopf.TemporaryError(f"waiting for the quota to count: {exc}", delay=3) from exc
        self.cluster.remove_endpoint_objects(name, plan.undesired_endpoint_objects(manifests))
        if keys or self.config_applied.get(name):  # a placement without config costs nothing
            kept = [m for m in manifests if m["kind"] in ("Secret", "ConfigMap")]
            for gone in self.cluster.prune_config(name, kept):
                log.info("placement %s: removed %s, no longer taken along", name, gone)
        self.config_applied[name] = frozenset(keys)
        self._prune_claims(placement)

    def report_placement(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Report a placement's status when it changed (or is due for a refresh).

        A placement being deleted is left to :meth:`remove_placement`: re-applying its missing
        workload would bring back the namespace the deletion waits for.
        """
        placement = self._parse(body, patch)
        if placement is not None and not plan.being_deleted(placement):
            self._report(placement, body, patch)
            self.answer_logs(placement, body)

    def answer_logs(self, placement: LeasePlacement, body: kopf.Body) -> None:
        """Answer a new ``kommons logs`` request on the placement (kommons.lease_logs).

        Once per nonce while the agent runs (a restarted agent answers the same request again,
        which changes nothing); a failure is logged and retried at the next report.
        """
        request = logs_request_of(body.get("metadata") or {})
        name = plan.placement_name(placement)
        if request is None or self.logs_answered.get(name) == request.nonce:
            return
        try:
            logs = self.cluster.logs(name, tail_lines=request.tail_lines)
            answer = logs_answer(name, self.hub.namespace, self.options.provider, request, logs)
            self.hub.write_logs_answer(answer)
        except Exception as exc:  # the report must go on; the next one tries again
            log.warning("answering the logs request of placement %s failed: %s", name, exc)
            return
        self.logs_answered[name] = request.nonce
        log.info("answered the logs request %s of placement %s", request.nonce, name)

    def _report(self, placement: LeasePlacement, body: kopf.Body, patch: kopf.Patch) -> None:
        name = plan.placement_name(placement)
        wanted = plan.wanted_replicas(placement)
        job = placement.spec.job is not None
        stateful = bool(placement.spec.storage) and not job
        workload = self.cluster.observe(name, wanted=wanted, job=job, stateful=stateful)
        if not workload.exists:
            # The body may be stale (a timer's copy of a placement deleted since): only a
            # placement still live on the hub gets its workload back, or it would be orphaned.
            if not self.hub.placement_live(name, placement.metadata.uid):
                log.info("placement %s is gone or deleting on the hub; not re-applying", name)
                return
            log.warning("workload of placement %s is missing; materialising it again", name)
            self._materialise(placement)
            workload = self.cluster.observe(name, wanted=wanted, job=job, stateful=stateful)
        previous = plan.previous_status(body)
        now = datetime.now(UTC)
        status = plan.placement_status(placement, workload, previous=previous, now=now)
        status = self._endpoints(placement, status, now)
        status = self._metered(name, status, previous, now)
        if not plan.needs_write(previous, status, now=now, refresh=self.refresh):
            return
        reason = plan.ready_condition_reason(status)
        if reason != plan.ready_condition_reason(previous):
            log.info(
                "placement %s: %s %d/%d ready, %s: %s",
                name,
                status.phase,
                workload.ready_replicas,
                wanted,
                reason,
                status.message,
            )
        patch.status.update(plan.status_patch(status))

    def _endpoints(
        self, placement: LeasePlacement, status: LeasePlacementStatus, now: datetime
    ) -> LeasePlacementStatus:
        """``status`` with the placement's endpoints (read only when it exposes ports)."""
        publish = self.options.config.expose
        objects = (
            self.cluster.endpoint_objects(plan.placement_name(placement))
            if placement.spec.expose
            else {}
        )
        observed = plan.observe_endpoints(placement, objects, publish=publish)
        return plan.with_endpoints(
            status, observed, generation=placement.metadata.generation, now=now
        )

    def _metered(
        self,
        name: str,
        status: LeasePlacementStatus,
        previous: LeasePlacementStatus | None,
        now: datetime,
    ) -> LeasePlacementStatus:
        """``status`` with the metering checkpoint advanced from the pods, when it is due.

        Advanced from the checkpoint last written (the body's), so a restart computes the same.
        """
        before = previous.metering if previous else None
        samples = accounting.sample_pods(self.cluster.pods(name))
        metering, changed = accounting.advance(before, samples, now=now)
        report = self.options.metering_report_seconds
        if not accounting.due(before, changed=changed, now=now, report_seconds=report):
            return status
        self.metrics.checkpoints.inc()
        return status.model_copy(update={"metering": metering})

    def final_metering(self, body: kopf.Body) -> None:
        """Before a placement's workload goes: write its checkpoint with every interval closed.

        Pods still Ready are closed now (the hub clips at the placement's deletion); pods
        already gone end when last seen. Written only while some interval is open.
        """
        name = str(body["metadata"]["name"])
        previous = plan.previous_status(body)
        before = previous.metering if previous else None
        if not accounting.any_open(before):
            return
        now = datetime.now(UTC)
        pods = self.cluster.pods(name)
        metering, _ = accounting.advance(before, accounting.sample_pods(pods), now=now)
        metering = accounting.close_all(metering, now=now)
        self.hub.write_metering(name, metering)
        log.info("placement %s: final metering written (%ds ready)", name, metering.ready_seconds)

    def remove_placement(self, body: kopf.Body) -> None:
        """Remove a placement's objects; retry until its namespace is gone.

        Reads only the name, so even a placement the agent cannot parse is cleaned up. The
        final metering checkpoint is written first.
        """
        name = str(body["metadata"]["name"])
        try:
            self.final_metering(body)
            gone = self.cluster.remove(name)
        except Exception as exc:  # the provider cluster is unreachable: try again soon
            raise kopf.TemporaryError(f"removing placement {name}: {exc}", delay=3) from exc
        if not gone:
            raise kopf.TemporaryError(f"waiting for namespace of placement {name} to go", delay=1)
        self.config_applied.pop(name, None)
        log.info("removed placement %s from the provider cluster", name)

    # --- periodic work --------------------------------------------------------------------

    def heartbeat_once(self) -> None:
        """Renew the heartbeat Lease, only while the provider cluster answers.

        A heartbeat says "this provider can run workloads": an agent whose own API server is
        down stops heartbeating, so the hub fails its replicas over (docs/failover.md).
        """
        try:
            self.cluster.version()
        except Exception as exc:
            log.warning("provider cluster unreachable, heartbeat withheld: %s", exc)
            return
        self.hub.heartbeat(duration_seconds=int(self.options.config.heartbeat_seconds * 3))

    def sweep_once(self) -> list[str]:
        """Remove workload namespaces whose placement the hub no longer has (fencing).

        Namespaces are listed before placements, so one made for a new placement is never
        taken for an orphan. Returns the namespaces removed.
        """
        namespaces = self.cluster.workload_namespaces()
        gone = orphaned(namespaces, self.hub.placements())
        for name in gone:
            log.warning("removing workload namespace %s: its placement is gone from the hub", name)
            self.cluster.remove_namespace(name)
        return gone

    def report_once(self) -> None:
        """Report inventory to the hub when it changed (or is due for a refresh)."""
        inventory, leases = self.cluster.inventory(
            self.offer, storage=storage_offer(self.options.config)
        )
        now = datetime.now(UTC)
        status = inventory_status(
            inventory,
            leases,
            namespace=self.hub.namespace,
            agent_version=__version__,
            kubernetes_version=self.cluster.version(),
            now=now,
        )
        if inventory_needs_write(self.last_inventory, status, now=now):
            self.hub.write_inventory(status)
            self.last_inventory = status


async def _every(agent: Agent, seconds: float, what: str, work: Any) -> None:
    """Run ``work`` in a thread every ``seconds`` as step ``what``; log failures and go on."""

    def step() -> None:
        with agent.step(what):
            work()

    while True:
        try:
            await asyncio.to_thread(step)
        except Exception:  # a failed beat must not stop the next one
            log.exception("%s failed; retrying in %.0fs", what, seconds)
        await asyncio.sleep(seconds)


Login = Callable[[], kopf.ConnectionInfo]
"""Where kopf gets its hub credentials (called again when they expire or are refused)."""


def build_registry(
    agent: Agent, *, login: Login | None = None, embedded: bool = False
) -> kopf.OperatorRegistry:
    """The kopf handlers of one agent.

    Args:
        agent: The agent whose methods the handlers call.
        login: The hub credentials; default: ``agent.options.hub_kubeconfig``.
        embedded: The agent runs inside another program (the hub, push mode): kopf must never
            kill the process when this agent stops.
    """
    registry = kopf.OperatorRegistry()
    hub_kubeconfig = agent.options.hub_kubeconfig
    report_seconds = agent.options.config.report_seconds

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, role="agent")
        # The agent's RBAC reaches one namespace: no cluster-wide scans of namespaces or CRDs.
        settings.scanning.disabled = True
        if embedded:
            settings.process.ultimate_exiting_timeout = None

    @kopf.on.login(registry=registry)
    def login_handler(**_: Any) -> kopf.ConnectionInfo:
        return login() if login is not None else connection_info(hub_kubeconfig)

    @kopf.on.resume(*PLACEMENTS, registry=registry)
    @kopf.on.create(*PLACEMENTS, registry=registry)
    @kopf.on.update(*PLACEMENTS, field="spec", registry=registry)
    def materialise(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        with agent.step("apply"):
            agent.apply_placement(body, patch)

    @kopf.timer(*PLACEMENTS, interval=report_seconds, registry=registry)
    def report(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        with agent.step("report"):
            agent.report_placement(body, patch)

    @kopf.on.delete(*PLACEMENTS, registry=registry)
    def remove(body: kopf.Body, **_: Any) -> None:
        with agent.step("remove"):
            agent.remove_placement(body)

    return registry


async def serve(
    agent: Agent,
    stop: asyncio.Event,
    *,
    login: Login | None = None,
    register: bool = True,
    embedded: bool = False,
) -> None:
    """The agent loop, the same in both modes, until ``stop`` is set.

    Register (pull mode: write the agent's declarations), heartbeat, then run the placement
    handlers (kopf, watching only the provider's hub namespace) and the periodic heartbeat and
    inventory report. Pull mode runs it as ``kommons agent`` (:func:`run_agent`); push mode
    runs it inside the hub, in a thread of its own (:mod:`kommons.hub.push`).
    """
    if register:
        await asyncio.to_thread(agent.hub.register)
        log.info("registered provider %s on the hub", agent.options.provider)
    await asyncio.to_thread(agent.heartbeat_once)
    registry = build_registry(agent, login=login, embedded=embedded)
    config = agent.options.config
    tasks = [
        asyncio.create_task(
            _every(agent, config.heartbeat_seconds, "heartbeat", agent.heartbeat_once)
        ),
        asyncio.create_task(_every(agent, config.report_seconds, "inventory", agent.report_once)),
        asyncio.create_task(_every(agent, SWEEP_SECONDS, "sweep", agent.sweep_once)),
    ]
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            namespaces=[provider_namespace(agent.options.provider)],
            standalone=True,
            stop_flag=stop,
        )
    )
    await asyncio.wait([operator, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    stop.set()
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await operator


async def run_agent(options: AgentOptions) -> None:
    """Pull mode: register, then run the agent loop until SIGINT/SIGTERM."""
    agent = Agent(options)
    if options.metrics_port:
        port = serve_metrics(agent.metrics.registry, options.metrics_port, options.metrics_address)
        log.info("metrics on http://%s:%d/metrics", options.metrics_address, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(agent, stop)
