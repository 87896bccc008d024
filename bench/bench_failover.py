"""Failover on the real bed: time to run again elsewhere, and the heartbeat timeout's trade-off.

1. **Failover time.** A bed (hub + 3 provider clusters, no chain) and the Kommons stack with
   the hub's *default* ``--heartbeat-timeout`` (``HubOptions.heartbeat_timeout``, 20 s).
   ``--leases`` one-replica leases land on the cheapest provider; its kube-apiserver is
   stopped (its agent then withholds heartbeats) at t0. Reported per lease: t0 → the lease
   ``Running`` with no replica on that provider
   (p50/p99/max), and t0 → the hub marking the provider ``Unreachable`` (detection). The API
   server is started again and the time until every stale workload on it is removed
   (fencing) is reported. ``--rounds`` repeats this on whichever provider holds the leases.
2. **Detection vs false alarms.** For each heartbeat timeout in ``--timeouts``: the hub is
   restarted with it and one agent is frozen (SIGSTOP) at t0; reported: t0 → ``Unreachable``
   (detection). Then, with no leases, one agent is made slow: ``--stalls`` freezes (SIGSTOP /
   SIGCONT, seeded lengths, exponential with mean ``--stall-mean`` s, capped at 60 s) while
   ``--hogs`` busy processes load both cores; the heartbeat Lease's renewals are observed from
   the hub every 0.5 s, and for each timeout the number of gaps longer than it (a false
   ``Unreachable`` flip — and a failover — the hub would make) is counted.

Prints tables; asserts nothing about time. Stops the bed it started (``--keep`` keeps it).
Run: ``.venv/bin/python bench/bench_failover.py [--quick]`` (uses ``$KOMMONS_TESTBED_DIR`` or
``/tmp/kommons-bench-failover`` for its own bed; a running bed there is refused).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import lease_body, percentile, save_logs, say, setup_market, table

from kommons.api_names import LABEL_MANAGED_BY, LABEL_PLACEMENT, MANAGER, provider_namespace
from kommons.hub.handlers import HubOptions
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.stack import Stack, start_stack

TENANT = "bench-failover"
HEARTBEAT_LEASE = "kommons-agent"
DEFAULT_TIMEOUT = HubOptions(kubeconfig=None).heartbeat_timeout
"""The hub's default ``--heartbeat-timeout``: the failover rounds measure what users get."""


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _phase(hub: Kube, provider: str) -> str:
    body = hub.get_or_none(r.PROVIDERS, provider) or {}
    return str((body.get("status") or {}).get("phase") or "")


def _wait(check: Any, *, timeout: float, every: float = 0.5) -> float | None:
    """Seconds until ``check()`` holds, or ``None`` after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # the API may be busy or restarting: keep polling
            say(f"(still waiting: {exc})")
        time.sleep(every)
    return None


def _restart_hub(stack: Stack, *args: str) -> None:
    """Restart the hub and wait until *it* runs its health loop.

    A fresh hub writes every provider's ``lastHeartbeatTime`` on its first pass, so waiting
    for one at or after the restart proves the new hub is judging heartbeats (the old hub's
    ``Ready`` would pass at once).
    """
    stack.stop("hub")
    since = datetime.now(UTC)
    stack.start_hub(*args)
    stack.wait_providers_ready(timeout=180, since=since)


def _holder(hub: Kube) -> str | None:
    providers = {
        p["provider"]
        for lease in hub.list(r.COMPUTE_LEASES, TENANT)
        for p in (lease.get("status") or {}).get("placements") or ()
    }
    return providers.pop() if len(providers) == 1 else None


def _stale(kube: Kube) -> int:
    selector = f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_PLACEMENT}"
    return sum(
        1
        for ns in kube.list(r.NAMESPACES, label_selector=selector)
        if not ns["metadata"].get("deletionTimestamp")
    )


def failover_round(bed: Testbed, stack: Stack, hub: Kube, leases: int) -> dict[str, Any]:
    """Stop the API server of the provider holding every lease; time the move."""
    lost = _holder(hub)
    if lost is None:
        raise RuntimeError("the leases are not all on one provider")
    say(f"stopping {lost}'s kube-apiserver ({leases} leases there)")
    done: dict[str, float] = {}
    detected: list[float] = []
    t0 = time.monotonic()
    bed.stop_apiserver(lost)
    try:

        def moved() -> bool:
            if not detected and _phase(hub, lost) == "Unreachable":
                detected.append(time.monotonic() - t0)
            for lease in hub.list(r.COMPUTE_LEASES, TENANT):
                status = lease.get("status") or {}
                name = lease["metadata"]["name"]
                on = {p["provider"] for p in status.get("placements") or ()}
                if name not in done and status.get("phase") == "Running" and lost not in on:
                    done[name] = time.monotonic() - t0
            return len(done) >= leases

        _wait(moved, timeout=600, every=0.5)
    finally:
        back = time.monotonic()
        bed.start_apiserver(lost)
    lost_kube = connect(bed.providers[lost].kubeconfig, field_manager="bench")
    cleaned = _wait(lambda: _stale(lost_kube) == 0, timeout=300, every=0.5)
    fence = None if cleaned is None else time.monotonic() - back
    times = sorted(done.values())
    stack.wait_providers_ready(timeout=180)
    return {
        "provider": lost,
        "moved": len(times),
        "leases": leases,
        "detection": detected[0] if detected else None,
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "max": times[-1] if times else None,
        "fenced": fence,
    }


def bench_failover(bed: Testbed, stack: Stack, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 1 (see the module docstring)."""
    hub = stack.hub_kube()
    setup_market(hub, [TENANT])
    for i in range(args.leases):
        hub.create(r.COMPUTE_LEASES, lease_body(f"fo-{i:03d}", TENANT), TENANT)

    def running() -> bool:
        items = hub.list(r.COMPUTE_LEASES, TENANT)
        count = sum((x.get("status") or {}).get("phase") == "Running" for x in items)
        return bool(count == args.leases)

    if _wait(running, timeout=600) is None:
        raise RuntimeError("the leases did not all run")
    rounds = []
    for n in range(args.rounds):
        result = failover_round(bed, stack, hub, args.leases)
        say(f"round {n + 1}: {result}")
        rounds.append(result)
    for lease in hub.list(r.COMPUTE_LEASES, TENANT):
        hub.delete(r.COMPUTE_LEASES, lease["metadata"]["name"], TENANT)
    _wait(lambda: not hub.list(r.COMPUTE_LEASES, TENANT), timeout=300)
    return rounds


def _hog(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class RenewWatch:
    """Polls one provider's heartbeat Lease from the hub; records when renewTime changed."""

    def __init__(self, hub: Kube, provider: str) -> None:
        self.hub, self.provider = hub, provider
        self.seen: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                body = self.hub.get(r.LEASES, HEARTBEAT_LEASE, provider_namespace(self.provider))
                renew = (body.get("spec") or {}).get("renewTime")
                if renew != last:
                    last = renew
                    self.seen.append(time.monotonic())
            except Exception as exc:
                say(f"(heartbeat poll: {exc})")
            self._stop.wait(0.5)

    def __enter__(self) -> RenewWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def gaps(self) -> list[float]:
        """Seconds between consecutive observed renewals."""
        return [b - a for a, b in zip(self.seen, self.seen[1:], strict=False)]


def bench_tradeoff(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2 (see the module docstring)."""
    hub = stack.hub_kube()
    victim = sorted(stack.provider_kubeconfigs)[-1]
    pid = stack.processes[f"agent-{victim}"].pid
    detection: dict[float, float | None] = {}
    for timeout in args.timeouts:
        _restart_hub(stack, "--heartbeat-timeout", str(timeout))
        say(f"timeout {timeout:.0f}s: freezing agent-{victim}")
        os.kill(pid, signal.SIGSTOP)
        try:
            detection[timeout] = _wait(
                lambda: _phase(hub, victim) == "Unreachable", timeout=timeout * 3 + 60, every=0.25
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        stack.wait_providers_ready(timeout=180)
    _restart_hub(stack)  # the bed's default for the rest

    rng = random.Random(args.seed)
    stalls = [min(60.0, rng.expovariate(1 / args.stall_mean)) for _ in range(args.stalls)]
    busy = sum(stalls) + 4 * len(stalls) + 10
    say(f"slow agent: {len(stalls)} stalls {[round(s, 1) for s in stalls]}, {args.hogs} hogs")
    hogs = [multiprocessing.Process(target=_hog, args=(busy,)) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    try:
        with RenewWatch(hub, victim) as watch:
            time.sleep(5)
            for stall in stalls:
                os.kill(pid, signal.SIGSTOP)
                time.sleep(stall)
                os.kill(pid, signal.SIGCONT)
                time.sleep(4)
    finally:
        os.kill(pid, signal.SIGCONT)
        for hog in hogs:
            hog.terminate()
            hog.join()
    gaps = watch.gaps()
    flips = {t: sum(1 for g in gaps if g > t) for t in args.timeouts}
    return {
        "victim": victim,
        "detection": detection,
        "flips": flips,
        "stalls": stalls,
        "gaps": len(gaps),
        "maxGap": max(gaps) if gaps else None,
        "p99Gap": percentile(gaps, 99),
    }


def report(rounds: list[dict[str, Any]], trade: dict[str, Any] | None, elapsed: float) -> str:
    """The tables."""
    out = []
    for n, res in enumerate(rounds, 1):
        out.append(
            table(
                f"failover round {n}: {res['leases']} one-replica leases, {res['provider']}'s"
                " kube-apiserver stopped, default --heartbeat-timeout"
                f" {DEFAULT_TIMEOUT:.0f} s",
                [
                    ("leases running elsewhere", f"{res['moved']}/{res['leases']}"),
                    ("detection (stop -> Unreachable)", _seconds(res["detection"])),
                    ("stop -> Running elsewhere p50", _seconds(res["p50"])),
                    ("stop -> Running elsewhere p99", _seconds(res["p99"])),
                    ("stop -> Running elsewhere max", _seconds(res["max"])),
                    ("API server restarted -> stale workloads removed", _seconds(res["fenced"])),
                ],
            )
        )
    if trade is not None:
        rows: list[tuple[str, object]] = []
        for timeout in sorted(trade["detection"]):
            rows.append(
                (
                    f"--heartbeat-timeout {timeout:.0f} s",
                    f"detection {_seconds(trade['detection'][timeout])}, false flips"
                    f" {trade['flips'][timeout]}/{len(trade['stalls'])} stalls",
                )
            )
        rows.append(("renewal gaps observed", trade["gaps"]))
        longest = f"{_seconds(trade['maxGap'])} / {_seconds(trade['p99Gap'])}"
        rows.append(("longest gap / p99 gap", longest))
        out.append(
            table(
                f"heartbeat timeout trade-off (agent {trade['victim']} frozen for detection;"
                f" slow agent: stalls {[round(s) for s in trade['stalls']]} s under load)",
                rows,
            )
        )
    out.append(f"total {elapsed:.0f} s")
    return "\n".join(out)


def main() -> int:
    """Run both parts and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 leases, 1 round, 2 timeouts")
    parser.add_argument("--leases", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeouts", type=float, nargs="+", default=[10.0, 20.0, 30.0, 40.0, 60.0])
    parser.add_argument("--stalls", type=int, default=12, help="agent freezes (slow agent)")
    parser.add_argument("--stall-mean", type=float, default=12.0, help="mean freeze seconds")
    parser.add_argument("--hogs", type=int, default=2, help="busy processes during the stalls")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--skip-tradeoff", action="store_true")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the bed running")
    args = parser.parse_args()
    if args.quick:
        args.leases, args.rounds, args.timeouts, args.stalls = 10, 1, [10.0, 30.0], 4
    directory = Path(os.environ.get("KOMMONS_TESTBED_DIR") or "/tmp/kommons-bench-failover")
    started = time.monotonic()
    say(f"starting a bed in {directory} (3 provider clusters, no chain)")
    bed = Testbed.up(directory, providers=3, chain=False, progress=say)
    rounds: list[dict[str, Any]] = []
    trade = None
    try:
        # the hub's defaults, except the lease-retry back-off the bed shortens
        stack = start_stack(
            bed, hub_args=("--heartbeat-timeout", f"{DEFAULT_TIMEOUT:g}"), ready_timeout=180
        )
        try:
            if not args.skip_failover:
                rounds = bench_failover(bed, stack, args)
            if not args.skip_tradeoff:
                trade = bench_tradeoff(stack, args)
        finally:
            stack.down()
    finally:
        save_logs(bed)
        if not args.keep:
            say("stopping the bed")
            bed.down()
    print(report(rounds, trade, time.monotonic() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
