"""Run the agent: kopf handlers for the provider's LeasePlacements, plus heartbeat and reports.

Handlers stay thin; the work is in :class:`~kommons.agent.provider_cluster.ProviderCluster`
(the provider's side) and :class:`~kommons.agent.hub_link.HubLink` (the hub's side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from kommons.agent.config import AgentConfig
from kommons.agent.hub_link import HubLink, now_rfc3339
from kommons.agent.inventory import Amount
from kommons.agent.provider_cluster import ProviderCluster
from kommons.agent.workload import PlacementWork, target_namespace
from kommons.api_names import GROUP, VERSION, provider_namespace
from kommons.kopf_settings import configure_settings
from kommons.kube import connect
from kommons.kube.login import connection_info
from kommons.quantity import to_bytes as memory_bytes
from kommons.quantity import to_millicores as cpu_milli

log = logging.getLogger("kommons.agent")
PLACEMENTS = (GROUP, VERSION, "leaseplacements")


@dataclass(frozen=True)
class AgentOptions:
    """Where the agent connects and what it declares."""

    provider: str
    hub_kubeconfig: Path | None
    kubeconfig: Path | None
    config: AgentConfig


def placement_work(body: kopf.Body | dict[str, Any], runtime_class: str | None) -> PlacementWork:
    """Read what the agent needs from a ``LeasePlacement``."""
    spec = body.get("spec") or {}
    lease = spec.get("leaseRef") or {}
    resources = spec.get("resources") or {}
    gpu = resources.get("gpu") or {}
    return PlacementWork(
        name=str(body["metadata"]["name"]),
        lease_namespace=str(lease.get("namespace", "")),
        lease_name=str(lease.get("name", "")),
        lease_uid=str(lease.get("uid", "")),
        replicas=int(spec.get("replicas", 0)),
        cpu=str(resources.get("cpu", "0")),
        memory=str(resources.get("memory", "0")),
        gpu_count=int(gpu.get("count", 0)),
        gpu_model=gpu.get("model"),
        template=dict(spec.get("template") or {}),
        suspend=bool(spec.get("suspend", False)),
        runtime_class=runtime_class,
    )


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


class Agent:
    """One provider's agent: the state it needs between handler calls is only its clients."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        hub = connect(options.hub_kubeconfig, field_manager=f"kommons-agent-{options.provider}")
        self.hub = HubLink(hub, options.provider, options.config)
        self.cluster = ProviderCluster(connect(options.kubeconfig, field_manager="kommons-agent"))
        self.offer = offer_amount(options.config)

    # --- placements (called from kopf handlers, in worker threads) -------------------------

    def apply_placement(self, body: kopf.Body, patch: kopf.Patch) -> None:
        """Materialise a placement on the provider cluster and report that it did."""
        work = placement_work(body, self.options.config.runtime_class_name)
        namespace = self.cluster.materialise(work)
        log.info(
            "materialised placement %s (lease %s/%s, %d replicas) in namespace %s",
            work.name,
            work.lease_namespace,
            work.lease_name,
            work.replicas,
            namespace,
        )
        self.report_placement(body, patch, force=True)

    def report_placement(self, body: kopf.Body, patch: kopf.Patch, *, force: bool = False) -> None:
        """Copy the workload's readiness into the placement's status when it changed."""
        name = str(body["metadata"]["name"])
        state = self.cluster.workload_state(name)
        if not state.exists:
            log.warning("workload of placement %s is missing; materialising it again", name)
            self.cluster.materialise(placement_work(body, self.options.config.runtime_class_name))
            state = self.cluster.workload_state(name)
        wanted = 0 if (body.get("spec") or {}).get("suspend") else int(body["spec"]["replicas"])
        if wanted == 0:
            phase = "Suspended"
        elif state.ready_replicas >= wanted:
            phase = "Running"
        elif state.ready_replicas > 0:
            phase = "Degraded"
        else:
            phase = "Pending"
        current = body.get("status") or {}
        new = {
            "phase": phase,
            "replicas": state.replicas,
            "readyReplicas": state.ready_replicas,
            "namespace": target_namespace(name),
            "message": state.message or None,
            "observedGeneration": body["metadata"].get("generation"),
        }
        changed = any(current.get(k) != v for k, v in new.items())
        if changed or force:
            for key, value in new.items():
                patch.status[key] = value
            patch.status["lastReportTime"] = now_rfc3339()

    def remove_placement(self, body: kopf.Body) -> None:
        """Remove a placement's objects; retry until its namespace is gone."""
        name = str(body["metadata"]["name"])
        if not self.cluster.remove(name):
            raise kopf.TemporaryError(f"waiting for namespace of placement {name} to go", delay=1)
        log.info("removed placement %s from the provider cluster", name)

    # --- periodic work --------------------------------------------------------------------

    def heartbeat_once(self) -> None:
        """Renew the heartbeat Lease."""
        self.hub.heartbeat(duration_seconds=int(self.options.config.heartbeat_seconds * 3))

    def report_once(self) -> None:
        """Report inventory to the hub."""
        inventory, leases = self.cluster.inventory(self.offer)
        self.hub.report(inventory, leases, self.cluster.version())


async def _every(seconds: float, what: str, work: Any) -> None:
    """Run ``work`` in a thread every ``seconds``; log failures and go on (never crash)."""
    while True:
        try:
            await asyncio.to_thread(work)
        except Exception:  # a failed beat must not stop the next one
            log.exception("%s failed; retrying in %.0fs", what, seconds)
        await asyncio.sleep(seconds)


def build_registry(agent: Agent) -> kopf.OperatorRegistry:
    """The kopf handlers of one agent."""
    registry = kopf.OperatorRegistry()
    hub_kubeconfig = agent.options.hub_kubeconfig
    report_seconds = agent.options.config.report_seconds

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings, role="agent")
        # The agent's RBAC reaches one namespace: no cluster-wide scans of namespaces or CRDs.
        settings.scanning.disabled = True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(hub_kubeconfig)

    @kopf.on.resume(*PLACEMENTS, registry=registry)
    @kopf.on.create(*PLACEMENTS, registry=registry)
    @kopf.on.update(*PLACEMENTS, field="spec", registry=registry)
    def materialise(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        agent.apply_placement(body, patch)

    @kopf.timer(*PLACEMENTS, interval=report_seconds, registry=registry)
    def report(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        agent.report_placement(body, patch)

    @kopf.on.delete(*PLACEMENTS, registry=registry)
    def remove(body: kopf.Body, **_: Any) -> None:
        agent.remove_placement(body)

    return registry


async def run_agent(options: AgentOptions) -> None:
    """Register, then run handlers and periodic work until SIGINT/SIGTERM."""
    agent = Agent(options)
    await asyncio.to_thread(agent.hub.register)
    log.info("registered provider %s on the hub", options.provider)
    await asyncio.to_thread(agent.heartbeat_once)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    registry = build_registry(agent)
    config = options.config
    tasks = [
        asyncio.create_task(_every(config.heartbeat_seconds, "heartbeat", agent.heartbeat_once)),
        asyncio.create_task(_every(config.report_seconds, "inventory report", agent.report_once)),
    ]
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            namespaces=[provider_namespace(options.provider)],
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
