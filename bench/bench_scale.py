"""The hub at the design's scale on this machine: 1,000 hollow providers, 10,000 leases.

1. A bed with ``--real-providers`` provider clusters (default 0: the hub cluster only, no
   chain), the hub (``kommons hub``, plus one real agent per real provider) and
   ``--providers`` hollow providers (``kommons_testbed.hollow`` in its own process: real
   onboarding, each provider writing with its own token; heartbeat and inventory report every
   ``--heartbeat-seconds``/``--report-seconds``, spread evenly).
2. ``--leases`` one-replica leases (100m, 64Mi) created from ``--threads`` threads across 10
   tenant namespaces; a bounded wait until they run (``--place-timeout``, or no progress for
   ``--stall`` seconds).
3. Steady state over ``--window`` seconds: hub RSS and CPU% (``/proc/<pid>/status`` and
   ``/proc/<pid>/stat``), the hub cluster's kube-apiserver and etcd CPU%, and writes/s to the
   hub API server from its ``/metrics`` (``apiserver_request_total`` of POST/PUT/PATCH/APPLY/
   DELETE, by resource), split into what the hollow agents wrote (their own counters) and the
   rest (the hub; the controller-manager's few writes included).

Prints tables, asserts nothing about time, reports how long each phase took. Heavy on 2 cores:
``--quick`` is 100 providers / 1,000 leases. Run:
``.venv/bin/python bench/bench_scale.py [--quick]`` (bed in ``$KOMMONS_TESTBED_DIR`` or
``/tmp/kommons-bench-scale``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Sampler,
    Watch,
    apiserver_writes,
    burst,
    cpu_seconds,
    lease_body,
    load_average,
    providers_ready,
    rss_mib,
    save_logs,
    say,
    setup_market,
    start_hub_stack,
    table,
    time_to_fraction,
    wait_until,
)

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.hollow import read_stats
from kommons_testbed.processes import spawn

JSON = dict[str, Any]
TENANTS = [f"bench-scale-{i}" for i in range(10)]


def run(bed: Testbed, args: argparse.Namespace) -> JSON:
    """The phases; returns the figures."""
    phases: dict[str, float] = {}
    t = time.monotonic()
    stack = start_hub_stack(bed, heartbeat_timeout=args.hub_heartbeat_timeout)
    hub: Kube = stack.hub_kube()
    hub_pid = stack.processes["hub"].pid
    stats_file = stack.dir / "hollow-stats.json"
    hollow = spawn(
        "hollow",
        [
            sys.executable,
            "-m",
            "kommons_testbed.hollow",
            "--providers",
            str(args.providers),
            "--heartbeat-seconds",
            str(args.heartbeat_seconds),
            "--report-seconds",
            str(args.report_seconds),
            "--ready-delay",
            str(args.ready_delay),
            "--workers",
            str(args.workers),
            "--duration",
            str(args.max_seconds),
            "--stats-file",
            str(stats_file),
            "--hub-kubeconfig",
            str(bed.hub.kubeconfig),
        ],
        stack.dir / "logs" / "hollow.log",
    )
    bed.adopt(hollow)
    total = args.providers + len(bed.providers)
    say(f"hub started; onboarding {args.providers} hollow providers")
    wait_until(
        lambda: read_stats(stats_file).get("onboarded", 0) >= args.providers,
        timeout=args.ready_timeout,
        every=2,
    )
    phases["onboard"] = time.monotonic() - t
    t = time.monotonic()
    wait_until(lambda: providers_ready(hub)[0] >= total, timeout=args.ready_timeout, every=3)
    ready, known = providers_ready(hub)
    phases["providersReady"] = time.monotonic() - t
    say(f"{ready}/{known} providers Ready after {phases['providersReady']:.0f}s more")

    setup_market(hub, TENANTS)
    running: dict[str, float] = {}
    lock = threading.Lock()

    def on_lease(kind: str, obj: JSON, at: float) -> None:
        if (obj.get("status") or {}).get("phase") == "Running":
            with lock:
                running.setdefault(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}", at)

    watch = Watch(hub, r.COMPUTE_LEASES, on_lease).start()
    names = [(TENANTS[i % len(TENANTS)], f"l-{i:05d}") for i in range(args.leases)]

    def create(i: int) -> None:
        ns, name = names[i]
        hub.create(r.COMPUTE_LEASES, lease_body(name, ns), ns)

    t = time.monotonic()
    with Sampler({"hub": hub_pid, "hollow": hollow.pid}) as sampler:
        say(f"creating {args.leases} leases from {args.threads} threads")
        created, took, errors = burst(create, args.leases, threads=args.threads)
        say(f"created {len(created)} in {took:.0f}s; waiting until they run")
        last, last_count = time.monotonic(), -1
        while time.monotonic() - t < args.place_timeout:
            with lock:
                count = len(running)
            if count >= len(created):
                break
            if count != last_count:
                last, last_count = time.monotonic(), count
                say(f"{count}/{len(created)} leases Running, hub RSS {rss_mib(hub_pid):.0f} MiB")
            elif time.monotonic() - last > args.stall:
                say(f"no lease became Running for {args.stall:.0f}s: stop waiting")
                break
            time.sleep(5)
        phases["leases"] = time.monotonic() - t
    with lock:
        stamps = sorted(running.values())
    start_of_burst = t
    to_running = [s - start_of_burst for s in stamps]

    say(f"steady state: measuring for {args.window:.0f}s")
    apiserver = bed.process("hub/kube-apiserver").pid
    etcd = bed.process("etcd").pid
    pids = {"hub": hub_pid, "hollow": hollow.pid, "apiserver": apiserver, "etcd": etcd}
    with lock:
        running_at_window = len(running)
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    writes0 = apiserver_writes(hub)
    hollow0 = read_stats(stats_file)
    rss0 = rss_mib(hub_pid)
    w0 = time.monotonic()
    time.sleep(args.window)
    window = time.monotonic() - w0
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    writes1 = apiserver_writes(hub)
    hollow1 = read_stats(stats_file)
    rss1 = rss_mib(hub_pid)
    watch.close()
    by_resource: dict[str, float] = {}
    for key, value in writes1.items():
        delta = value - writes0.get(key, 0.0)
        if delta > 0:
            name = f"{key[0]} {key[1]}"
            by_resource[name] = by_resource.get(name, 0.0) + delta / window
    hollow_window = float(hollow1.get("time", 0) - hollow0.get("time", 0)) or window
    hollow_rate = (hollow1.get("writesTotal", 0) - hollow0.get("writesTotal", 0)) / hollow_window
    total_rate = sum(by_resource.values())
    with lock:
        running_end = len(running)
    return {
        "providers": known,
        "providersReady": ready,
        "hollow": args.providers,
        "realProviders": len(bed.providers),
        "leases": args.leases,
        "created": len(created),
        "createSeconds": took,
        "createErrors": errors,
        "running": running_end,
        "runningAtWindowStart": running_at_window,
        "notRunning": len(created) - running_end,
        "runningPerSecond": len(to_running) / to_running[-1]
        if to_running and to_running[-1] > 0
        else None,
        "lastRunningAfter": to_running[-1] if to_running else None,
        "halfRunningAfter": time_to_fraction(to_running, 0.0, len(created), 0.5),
        "ninetyRunningAfter": time_to_fraction(to_running, 0.0, len(created), 0.9),
        "watchLists": watch.lists,
        "phases": phases,
        "hubRssPeakMiB": sampler.peak["hub"],
        "hubRssSteadyMiB": max(rss0, rss1),
        "hubCpuPercent": 100 * (cpu1["hub"] - cpu0["hub"]) / window,
        "hollowCpuPercent": 100 * (cpu1["hollow"] - cpu0["hollow"]) / window,
        "hollowRssMiB": rss_mib(hollow.pid),
        "apiserverCpuPercent": 100 * (cpu1["apiserver"] - cpu0["apiserver"]) / window,
        "etcdCpuPercent": 100 * (cpu1["etcd"] - cpu0["etcd"]) / window,
        "apiserverRssMiB": rss_mib(apiserver),
        "writesPerSecond": total_rate,
        "hollowWritesPerSecond": hollow_rate,
        "otherWritesPerSecond": total_rate - hollow_rate,
        "writesByResource": dict(sorted(by_resource.items(), key=lambda kv: -kv[1])),
        "hollowLagMaxSeconds": hollow1.get("lagMaxSeconds"),
        "hollowErrors": hollow1.get("errors"),
        "window": window,
        "loadAverage": load_average(),
    }


def report(d: JSON, elapsed: float) -> str:
    """The tables."""
    phases = d["phases"]

    def sec(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} s"

    main = table(
        f"Hub at scale: {d['hollow']} hollow + {d['realProviders']} real providers, "
        f"{d['leases']} leases",
        [
            ("providers Ready", f"{d['providersReady']}/{d['providers']}"),
            ("onboarding (real onboard(), tokens)", sec(phases.get("onboard"))),
            ("then until all Ready on the hub", sec(phases.get("providersReady"))),
            ("leases created", f"{d['created']} in {d['createSeconds']:.0f}s"),
            (
                "leases Running at window start / end",
                f"{d['runningAtWindowStart']} / {d['running']} ({d['notRunning']} not Running)",
            ),
            (
                "50% / 90% Running after; last Running after",
                f"{sec(d['halfRunningAfter'])} / {sec(d['ninetyRunningAfter'])}; "
                f"{sec(d['lastRunningAfter'])}",
            ),
            ("leases/s Running (burst start → last)", _num(d["runningPerSecond"])),
            (
                "hub RSS in the window / peak while placing",
                f"{d['hubRssSteadyMiB']:.0f} / {d['hubRssPeakMiB']:.0f} MiB (target < 300 MiB)",
            ),
            (f"hub CPU steady ({d['window']:.0f} s)", f"{d['hubCpuPercent']:.0f} % of a core"),
            (
                "hub kube-apiserver CPU / RSS",
                f"{d['apiserverCpuPercent']:.0f} % / {d['apiserverRssMiB']:.0f} MiB",
            ),
            ("etcd CPU", f"{d['etcdCpuPercent']:.0f} %"),
            (
                "hollow agents CPU / RSS",
                f"{d['hollowCpuPercent']:.0f} % / {d['hollowRssMiB']:.0f} MiB",
            ),
            ("writes/s to the hub API server", f"{d['writesPerSecond']:.1f}"),
            ("  by the hollow agents", f"{d['hollowWritesPerSecond']:.1f}"),
            ("  by the rest (hub, controller-manager)", f"{d['otherWritesPerSecond']:.1f}"),
            ("hollow max timer lag", f"{d['hollowLagMaxSeconds']} s"),
            ("machine load average (2 cores)", d["loadAverage"]),
            ("lease watch lists (>1 = restarts)", d["watchLists"]),
        ],
    )
    writes = table(
        "Writes/s by verb and resource (steady window)",
        [(k, f"{v:.1f}") for k, v in list(d["writesByResource"].items())[:12]],
    )
    return f"{main}\n\n{writes}\n\nwhole run: {elapsed:.0f}s"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def main() -> int:
    """Run and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 providers, 1,000 leases")
    parser.add_argument("--providers", type=int, default=1000, help="hollow providers")
    parser.add_argument("--real-providers", type=int, default=0, help="real provider clusters")
    parser.add_argument("--leases", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=128, help="hollow fleet threads")
    parser.add_argument("--heartbeat-seconds", type=float, default=10.0)
    parser.add_argument("--report-seconds", type=float, default=10.0)
    parser.add_argument("--hub-heartbeat-timeout", type=float, default=40.0)
    parser.add_argument("--ready-delay", type=float, default=1.0)
    parser.add_argument("--ready-timeout", type=float, default=900.0)
    parser.add_argument("--place-timeout", type=float, default=900.0)
    parser.add_argument("--stall", type=float, default=180.0)
    parser.add_argument("--window", type=float, default=60.0, help="steady-state window")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="hollow lifetime")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="leave the bed running")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.leases = 100, 1000
    directory = Path(os.environ.get("KOMMONS_TESTBED_DIR") or "/tmp/kommons-bench-scale")
    started = time.monotonic()
    say(f"starting a bed in {directory} ({args.real_providers} provider clusters, no chain)")
    bed = Testbed.up(directory, providers=args.real_providers, chain=False, progress=say)
    try:
        figures = run(bed, args)
    finally:
        save_logs(bed)
        if not args.keep:
            say("stopping the bed")
            bed.down()
    elapsed = time.monotonic() - started
    figures["seconds"] = elapsed
    print(report(figures, elapsed), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
