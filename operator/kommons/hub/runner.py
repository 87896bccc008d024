"""Run the hub operator until SIGINT/SIGTERM, as the elected leader when election is on.

With leader election (:mod:`kommons.hub.leader`) the order is:

1. **Stand by.** Try to acquire the Lease every retry period; nothing of kopf runs (no
   watches, no writes).
2. **Lead.** Once acquired, renew in the background and start the whole operator (indexes,
   workers, health loop) from a fresh list + watch.
3. **Lost.** If a renew does not succeed within the renew deadline, the process exits at
   once with :data:`EXIT_LOST_LEADERSHIP` (``os._exit``: no clean-up that could still write),
   so it can never act next to the new leader. Its supervisor restarts it as a standby.
4. **Stop.** On SIGTERM/SIGINT: stop kopf and the hub's workers, wait for the writes in
   flight (bounded), then release the Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import kopf

from kommons import __version__
from kommons.hub.chain_options import log_chain_mode
from kommons.hub.handlers import HubOptions, build_registry
from kommons.hub.leader import ElectionOptions, LeaderElector
from kommons.kube import connect
from kommons.metrics import HubMetrics, serve

log = logging.getLogger("kommons.hub")

EXIT_LOST_LEADERSHIP = 3
"""Exit status of a hub that lost its Lease (it must not act any more)."""


def _exit_lost(why: str) -> None:
    log.critical("leadership lost (%s): exiting now", why)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(EXIT_LOST_LEADERSHIP)


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_hub(options: HubOptions, election: ElectionOptions | None = None) -> None:
    """Run every hub handler against the hub cluster (cluster-wide).

    Args:
        options: How the hub runs.
        election: Leader election; ``None`` runs at once as the only replica.
    """
    log_chain_mode(options.chain)
    metrics = HubMetrics()
    if options.metrics_port:
        port = serve(metrics.registry, options.metrics_port, options.metrics_address)
        log.info("metrics on http://%s:%d/metrics", options.metrics_address, port)
    stop = asyncio.Event()
    _on_signals(stop)
    elector: LeaderElector | None = None
    keeper: asyncio.Task[None] | None = None
    name = "kommons-hub"
    if election is not None:
        name = f"kommons-hub@{election.identity}"
        # Its own connections: renews never queue behind the hub's writes.
        agent = f"{name}/{__version__}"
        elector_kube = connect(
            options.kubeconfig, field_manager=name, connections=2, user_agent=agent
        )
        elector = LeaderElector(elector_kube, election, on_lost=_exit_lost)
        log.info(
            "standby: %s campaigns for Lease %s/%s (duration %gs, renew deadline %gs, retry %gs)",
            election.identity,
            election.namespace,
            election.name,
            election.lease_duration,
            election.renew_deadline,
            election.retry_period,
        )
        if not await elector.acquire(stop):
            elector.close()
            log.info("stopped while standing by")
            return
        keeper = asyncio.create_task(elector.keep())  # before kopf: kopf leaves it alone
    try:
        metrics.leader.set(1)
        await _run_operator(options, stop, metrics, user_agent=f"{name}/{__version__}")
    finally:
        if elector is not None and keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await elector.release()
            elector.close()


async def _run_operator(
    options: HubOptions, stop: asyncio.Event, metrics: HubMetrics, *, user_agent: str
) -> None:
    # one connection per worker thread, plus the health loop and orphan clean-up
    kube = connect(
        options.kubeconfig,
        field_manager="kommons-hub",
        connections=options.workers + 4,
        user_agent=user_agent,
    )
    registry, hub = build_registry(options, kube, metrics=metrics)

    started = asyncio.Event()

    async def own_signals() -> None:
        # kopf installs its own SIGINT/SIGTERM handlers as it starts; once it has, take them
        # back, so a signal stops the hub's workers first (below), then kopf, without
        # kopf's 5 s wait for them.
        await started.wait()
        _on_signals(stop)

    log.info("hub starting against %s", kube.server)
    signals = asyncio.create_task(own_signals())
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            ready_flag=started,
        )
    )
    await asyncio.wait([operator, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    signals.cancel()
    try:
        for task in hub.tasks:  # the workers and the health loop: no new steps from now on
            task.cancel()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await operator
    finally:
        # Writes already handed to threads finish (each bounded by its request timeout),
        # so none lands after the Lease is released.
        await asyncio.to_thread(hub.threads.shutdown, wait=True, cancel_futures=True)
        _on_signals(stop)
        log.info("hub stopped")
