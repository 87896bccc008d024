"""Run the hub operator until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import kopf

from kommons.hub.handlers import HubOptions, build_registry
from kommons.kube import connect

log = logging.getLogger("kommons.hub")


async def run_hub(options: HubOptions) -> None:
    """Run every hub handler against the hub cluster (cluster-wide)."""
    # one connection per worker thread, plus the health loop and orphan clean-up
    kube = connect(options.kubeconfig, field_manager="kommons-hub", connections=options.workers + 4)
    registry, _ = build_registry(options, kube)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("hub starting against %s", kube.server)
    operator = asyncio.create_task(
        kopf.operator(registry=registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    await asyncio.wait([operator, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await operator
