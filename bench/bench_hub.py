"""Hub end to end on the real bed, next to the real kube-scheduler on the same machine.

1. A bed (hub + 3 provider clusters, no chain), the Kommons stack (``kommons hub`` + 3 real
   ``kommons agent`` s) and ``--hollow`` hollow providers (``kommons_testbed.hollow``, separate
   process) in one LowestPrice pool that selects every provider.
2. A burst of ``--leases`` one-replica leases (100m cpu, 64Mi) created from ``--threads``
   threads. Watches stamp the arrival of each placement, of each placement's Ready status
   and of each lease's ``Running`` phase. Reported: leases/s placed, create→placement-written
   p50/p99, placement→Ready p50/p99, create→Running p50/p99, leases not Running after a
   bounded wait (stuck), providers holding more replicas than their pods allowance, hub RSS
   (peak and end, ``/proc/<pid>/status``) and the hub's CPU seconds.
3. The stack is stopped; on one provider cluster ``--nodes`` kwok nodes are added and
   ``--pods`` pods (100m, 64Mi, selecting those nodes) are created the same way. Reported:
   pods/s bound, create→bound p50/p99, create→Running p50/p99.
4. The ratio hub leases/s ÷ kube-scheduler pods/s.

Prints tables; asserts nothing about time. Stops the bed it started (``--keep`` keeps it).
Run: ``.venv/bin/python bench/bench_hub.py [--quick]`` (uses ``$KOMMONS_TESTBED_DIR`` or
``/tmp/kommons-bench-hub`` for its own bed; a running bed there is refused).
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
    burst,
    cpu_seconds,
    lease_body,
    load_average,
    ms,
    percentile,
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

from kommons.api_names import LABEL_LEASE_NAME, LABEL_LEASE_NAMESPACE
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed import nodes
from kommons_testbed.bed import Testbed
from kommons_testbed.config import load_hardware, provider_specs
from kommons_testbed.handles import NodeSpec, ProviderSpec
from kommons_testbed.hollow import read_stats
from kommons_testbed.kube import create_namespace, delete_namespace
from kommons_testbed.processes import spawn, stop
from kommons_testbed.stack import Stack

JSON = dict[str, Any]
TENANT = "bench-hub"
SCHED_NS = "bench-sched"
SCHED_LABEL = "kwok-bench"


def _per(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def _rate(count: int, start: float, stamps: list[float]) -> float | None:
    return count / (max(stamps) - start) if stamps and max(stamps) > start else None


# ----------------------------------------------------------------------------- the hub


class LeaseTrace:
    """Arrival times of placements, Ready placements and Running leases, from watches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.placed: dict[str, float] = {}
        """lease name → first placement seen."""
        self.placement_seen: dict[str, float] = {}
        """placement namespace/name → when first seen."""
        self.placement_ready: dict[str, float] = {}
        self.running: dict[str, float] = {}

    def on_placement(self, kind: str, obj: JSON, t: float) -> None:
        """A placement event: first seen, Ready."""
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if labels.get(LABEL_LEASE_NAMESPACE) != TENANT or kind == "DELETED":
            return
        key = f"{meta['namespace']}/{meta['name']}"
        lease = str(labels.get(LABEL_LEASE_NAME))
        status = obj.get("status") or {}
        replicas = int((obj.get("spec") or {}).get("replicas", 0))
        with self.lock:
            self.placed.setdefault(lease, t)
            self.placement_seen.setdefault(key, t)
            ready = int(status.get("readyReplicas") or 0)
            if replicas and ready >= replicas and status.get("phase") == "Running":
                self.placement_ready.setdefault(key, t)

    def on_lease(self, kind: str, obj: JSON, t: float) -> None:
        """A lease event: Running."""
        if (obj.get("status") or {}).get("phase") == "Running":
            with self.lock:
                self.running.setdefault(str(obj["metadata"]["name"]), t)


def pod_allowances(hub: Kube, bed: Testbed, hollow_nodes: int, hollow_pods: int) -> dict[str, int]:
    """Pods each provider's nodes allow: reported ``allocatable.pods``, else the bed's hardware."""
    specs = {s.name: s for s in provider_specs(load_hardware(), len(bed.providers))}
    out: dict[str, int] = {}
    for provider in hub.list(r.PROVIDERS):
        name = provider["metadata"]["name"]
        reported = ((provider.get("status") or {}).get("allocatable") or {}).get("pods")
        if reported is not None:
            out[name] = int(reported)
        elif name in specs:
            out[name] = sum(n.pods for n in specs[name].nodes)
        else:
            out[name] = hollow_nodes * hollow_pods
    return out


def bench_hub(bed: Testbed, args: argparse.Namespace) -> JSON:
    """Stack + hollow providers + a burst of leases; returns the figures."""
    say("starting the Kommons stack (hub + one real agent per provider cluster)")
    stack = start_hub_stack(bed, heartbeat_timeout=args.hub_heartbeat_timeout)
    hub = stack.hub_kube()
    hub_pid = stack.processes["hub"].pid
    stats_file = stack.dir / "hollow-stats.json"
    argv = [
        sys.executable,
        "-m",
        "kommons_testbed.hollow",
        "--providers",
        str(args.hollow),
        "--heartbeat-seconds",
        str(args.heartbeat_seconds),
        "--report-seconds",
        str(args.report_seconds),
        "--ready-delay",
        str(args.ready_delay),
        "--duration",
        str(args.max_seconds),
        "--stats-file",
        str(stats_file),
        "--hub-kubeconfig",
        str(bed.hub.kubeconfig),
    ]
    hollow = spawn("hollow", argv, stack.dir / "logs" / "hollow.log")
    bed.adopt(hollow)
    try:
        return _burst(bed, stack, hub, hub_pid, hollow.pid, stats_file, args)
    finally:
        stop(hollow, timeout=15)
        bed.disown("hollow")
        stack.down()


def _burst(
    bed: Testbed,
    stack: Stack,
    hub: Kube,
    hub_pid: int,
    hollow_pid: int,
    stats_file: Path,
    args: argparse.Namespace,
) -> JSON:
    total = len(bed.providers) + args.hollow
    started = time.monotonic()
    ok = wait_until(lambda: providers_ready(hub)[0] >= total, timeout=args.ready_timeout, every=2)
    ready, known = providers_ready(hub)
    say(
        f"{ready}/{known} providers Ready ({'all' if ok else 'NOT all'}) in "
        f"{time.monotonic() - started:.0f}s; hollow: {read_stats(stats_file).get('writes')}"
    )
    setup_market(hub, [TENANT])
    trace = LeaseTrace()
    watches = [
        Watch(hub, r.LEASE_PLACEMENTS, trace.on_placement).start(),
        Watch(hub, r.COMPUTE_LEASES, trace.on_lease, namespace=TENANT).start(),
    ]
    names = [f"l-{i:05d}" for i in range(args.leases)]
    load_before = load_average()
    rss_before = rss_mib(hub_pid)
    cpu_before = cpu_seconds(hub_pid)
    with Sampler({"hub": hub_pid, "hollow": hollow_pid}) as sampler:
        t0 = time.monotonic()
        say(f"burst: {args.leases} leases from {args.threads} threads")

        def create(i: int) -> None:
            hub.create(r.COMPUTE_LEASES, lease_body(names[i], TENANT), TENANT)

        created, took, errors = burst(create, args.leases, threads=args.threads)
        say(
            f"created {len(created)} leases in {took:.1f}s ({len(created) / took:.0f}/s)"
            f"{f'; errors {errors}' if errors else ''}"
        )
        last_progress, last_count = time.monotonic(), -1
        deadline = t0 + args.wait
        while time.monotonic() < deadline:
            with trace.lock:
                count = len(trace.running) + len(trace.placed)
                done = len(trace.running)
            if done >= len(created):
                break
            if count != last_count:
                last_progress, last_count = time.monotonic(), count
            elif time.monotonic() - last_progress > args.stall:
                say(f"no progress for {args.stall:.0f}s: stop waiting")
                break
            time.sleep(1)
        waited = time.monotonic() - t0
    cpu_used = cpu_seconds(hub_pid) - cpu_before
    for w in watches:
        w.close()
    with trace.lock:
        placed = dict(trace.placed)
        running = dict(trace.running)
        seen = dict(trace.placement_seen)
        ready_at = dict(trace.placement_ready)
    index = {n: i for i, n in enumerate(names)}
    to_placed = [t - created[index[n]] for n, t in placed.items() if index[n] in created]
    to_running = [t - created[index[n]] for n, t in running.items() if index[n] in created]
    to_ready = [ready_at[k] - seen[k] for k in ready_at if k in seen]
    # who holds what, against each provider's pods allowance
    held: dict[str, int] = {}
    for p in hub.list(r.LEASE_PLACEMENTS, label_selector=f"{LABEL_LEASE_NAMESPACE}={TENANT}"):
        provider = p["spec"]["provider"]
        held[provider] = held.get(provider, 0) + int(p["spec"]["replicas"])
    allowance = pod_allowances(hub, bed, 2, 110)
    over = {p: (n, allowance.get(p, 0)) for p, n in held.items() if n > allowance.get(p, 0)}
    stats = read_stats(stats_file)
    return {
        "providers": known,
        "providersReady": ready,
        "leases": args.leases,
        "created": len(created),
        "createSeconds": took,
        "createErrors": errors,
        "placed": len(placed),
        "placedPerSecond": _rate(len(placed), t0, list(placed.values())),
        "placed50": time_to_fraction(list(placed.values()), t0, len(created), 0.5),
        "placed90": time_to_fraction(list(placed.values()), t0, len(created), 0.9),
        "placed100": time_to_fraction(list(placed.values()), t0, len(created), 1.0),
        "placedPerSecondTo90": _per(
            len(created) * 0.9, time_to_fraction(list(placed.values()), t0, len(created), 0.9)
        ),
        "createToPlacementP50": percentile(to_placed, 50),
        "createToPlacementP99": percentile(to_placed, 99),
        "placementToReadyP50": percentile(to_ready, 50),
        "placementToReadyP99": percentile(to_ready, 99),
        "createToRunningP50": percentile(to_running, 50),
        "createToRunningP99": percentile(to_running, 99),
        "running": len(running),
        "stuck": len(created) - len(running),
        "waitedSeconds": waited,
        "providersUsed": len(held),
        "maxReplicasOnOneProvider": max(held.values(), default=0),
        "overAllowance": over,
        "hubRssBeforeMiB": rss_before,
        "hubRssPeakMiB": sampler.peak["hub"],
        "hubRssEndMiB": rss_mib(hub_pid),
        "hubCpuSeconds": cpu_used,
        "hollowRssPeakMiB": sampler.peak["hollow"],
        "hollowLagMaxSeconds": stats.get("lagMaxSeconds"),
        "hollowErrors": stats.get("errors"),
        "loadAverage": f"{load_before} → {load_average()}",
        "watchLists": [w.lists for w in watches],
    }


# ----------------------------------------------------------------------------- kube-scheduler


def bench_kube_scheduler(bed: Testbed, args: argparse.Namespace) -> JSON:
    """``--pods`` pods onto ``--nodes`` new kwok nodes of one provider cluster."""
    cluster = args.sched_cluster or list(bed.providers)[-1]
    api = bed.api_client(cluster)
    kube = connect(bed.providers[cluster].kubeconfig, field_manager="bench")
    spec = ProviderSpec(
        name=SCHED_LABEL,
        region="bench",
        nodes=tuple(
            NodeSpec(name=f"{SCHED_LABEL}-{i:03d}", cpu="16", memory="64Gi", pods=110)
            for i in range(args.nodes)
        ),
    )
    try:
        say(f"{cluster}: adding {args.nodes} kwok nodes")
        nodes.create_nodes(api, spec)
        nodes.wait_nodes_ready(api, spec, timeout=180)
        create_namespace(api, SCHED_NS)
        bound: dict[str, float] = {}
        running: dict[str, float] = {}
        lock = threading.Lock()

        def on_pod(kind: str, obj: JSON, t: float) -> None:
            name = str(obj["metadata"]["name"])
            with lock:
                if (obj.get("spec") or {}).get("nodeName"):
                    bound.setdefault(name, t)
                if (obj.get("status") or {}).get("phase") == "Running":
                    running.setdefault(name, t)

        watch = Watch(kube, r.PODS, on_pod, namespace=SCHED_NS).start()
        sched_pid = bed.process(f"{cluster}/kube-scheduler").pid
        cpu_before = cpu_seconds(sched_pid)
        names = [f"p-{i:05d}" for i in range(args.pods)]

        def create(i: int) -> None:
            kube.create(
                r.PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": names[i], "labels": {"app": "bench"}},
                    "spec": {
                        "nodeSelector": {nodes.PROVIDER_LABEL: SCHED_LABEL},
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "app",
                                "image": "registry.k8s.io/pause:3.10",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ],
                    },
                },
                SCHED_NS,
            )

        load_before = load_average()
        t0 = time.monotonic()
        say(f"burst: {args.pods} pods from {args.threads} threads")
        created, took, errors = burst(create, args.pods, threads=args.threads)
        wait_until(lambda: len(running) >= len(created), timeout=args.wait, every=0.5)
        watch.close()
        with lock:
            b, run = dict(bound), dict(running)
        index = {n: i for i, n in enumerate(names)}
        to_bound = [t - created[index[n]] for n, t in b.items() if index[n] in created]
        to_running = [t - created[index[n]] for n, t in run.items() if index[n] in created]
        return {
            "cluster": cluster,
            "nodes": args.nodes,
            "pods": args.pods,
            "created": len(created),
            "createSeconds": took,
            "createErrors": errors,
            "bound": len(b),
            "boundPerSecond": _rate(len(b), t0, list(b.values())),
            "bound50": time_to_fraction(list(b.values()), t0, len(created), 0.5),
            "bound90": time_to_fraction(list(b.values()), t0, len(created), 0.9),
            "bound100": time_to_fraction(list(b.values()), t0, len(created), 1.0),
            "watchLists": watch.lists,
            "createToBoundP50": percentile(to_bound, 50),
            "createToBoundP99": percentile(to_bound, 99),
            "createToRunningP50": percentile(to_running, 50),
            "createToRunningP99": percentile(to_running, 99),
            "running": len(run),
            "schedulerCpuSeconds": cpu_seconds(sched_pid) - cpu_before,
            "schedulerRssMiB": rss_mib(sched_pid),
            "loadAverage": f"{load_before} → {load_average()}",
        }
    finally:
        delete_namespace(api, SCHED_NS, wait=0)
        for node in spec.nodes:
            kube.delete(r.NODES, node.name)
        api.close()  # type: ignore[no-untyped-call]


# ----------------------------------------------------------------------------- main


def report(hub: JSON | None, sched: JSON | None, elapsed: float) -> str:
    """The tables."""
    out = []
    if hub:
        out.append(
            table(
                f"Hub end to end: {hub['leases']} leases, {hub['providers']} providers "
                f"({hub['providersReady']} Ready)",
                [
                    ("leases created", f"{hub['created']} in {hub['createSeconds']:.1f}s"),
                    ("leases placed", hub["placed"]),
                    (
                        "leases/s placed (all / first 90%)",
                        f"{_num(hub['placedPerSecond'])} / {_num(hub['placedPerSecondTo90'])}",
                    ),
                    ("50% / 90% / 100% placed after", _secs(hub, "placed")),
                    ("create→placement p50 / p99", _pair(hub, "createToPlacement")),
                    ("placement→Ready p50 / p99", _pair(hub, "placementToReady")),
                    ("create→Running p50 / p99", _pair(hub, "createToRunning")),
                    ("leases Running", hub["running"]),
                    (
                        "leases stuck (not Running)",
                        f"{hub['stuck']} after {hub['waitedSeconds']:.0f}s",
                    ),
                    ("providers used", hub["providersUsed"]),
                    ("max replicas on one provider", hub["maxReplicasOnOneProvider"]),
                    ("providers over pods allowance", _over(hub["overAllowance"])),
                    (
                        "hub RSS before / peak / end",
                        f"{hub['hubRssBeforeMiB']:.0f} / "
                        f"{hub['hubRssPeakMiB']:.0f} / {hub['hubRssEndMiB']:.0f} MiB",
                    ),
                    ("hub CPU during burst+wait", f"{hub['hubCpuSeconds']:.1f} s"),
                    (
                        "hollow agents: peak RSS, max timer lag",
                        f"{hub['hollowRssPeakMiB']:.0f} MiB, {hub['hollowLagMaxSeconds']} s",
                    ),
                    ("machine load average (2 cores)", hub["loadAverage"]),
                    ("watch lists: placements, leases (>1: restarts)", hub["watchLists"]),
                ],
            )
        )
    if sched:
        out.append(
            table(
                f"kube-scheduler on {sched['cluster']}: {sched['pods']} pods, "
                f"{sched['nodes']} kwok nodes",
                [
                    ("pods created", f"{sched['created']} in {sched['createSeconds']:.1f}s"),
                    ("pods bound", sched["bound"]),
                    ("pods/s bound", _num(sched["boundPerSecond"])),
                    ("50% / 90% / 100% bound after", _secs(sched, "bound")),
                    ("create→bound p50 / p99", _pair(sched, "createToBound")),
                    ("create→Running p50 / p99", _pair(sched, "createToRunning")),
                    ("kube-scheduler CPU", f"{sched['schedulerCpuSeconds']:.1f} s"),
                    ("machine load average (2 cores)", sched["loadAverage"]),
                ],
            )
        )
    if hub and sched and hub["placedPerSecond"] and sched["boundPerSecond"]:
        ratio = hub["placedPerSecond"] / sched["boundPerSecond"]
        p99 = (hub["createToPlacementP99"] or 0) / (sched["createToBoundP99"] or 1)
        out.append(
            table(
                "Ratio",
                [
                    ("hub leases/s ÷ kube-scheduler pods/s", f"{ratio:.2f}x"),
                    ("hub create→placement p99 ÷ create→bound p99", f"{p99:.1f}x"),
                ],
            )
        )
    out.append(f"whole run: {elapsed:.0f}s")
    return "\n\n".join(out)


def _secs(data: JSON, key: str) -> str:
    return " / ".join(
        "n/a" if data[f"{key}{p}"] is None else f"{data[f'{key}{p}']:.1f} s" for p in (50, 90, 100)
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _pair(data: JSON, key: str) -> str:
    return f"{ms(data[key + 'P50'])} / {ms(data[key + 'P99'])}"


def _over(over: dict[str, tuple[int, int]]) -> str:
    if not over:
        return "0"
    worst = ", ".join(f"{p} {n}/{a}" for p, (n, a) in sorted(over.items())[:5])
    return f"{len(over)} ({worst})"


def main() -> int:
    """Run both benchmarks and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="20 hollow providers, 200 leases/pods, 20 nodes"
    )
    parser.add_argument("--hollow", type=int, default=100, help="hollow providers (default 100)")
    parser.add_argument("--leases", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100, help="kwok nodes for kube-scheduler")
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16, help="creating threads")
    parser.add_argument("--ready-delay", type=float, default=1.0, help="hollow pods start time")
    parser.add_argument("--heartbeat-seconds", type=float, default=5.0, help="hollow agents")
    parser.add_argument("--report-seconds", type=float, default=5.0, help="hollow agents")
    parser.add_argument("--hub-heartbeat-timeout", type=float, default=40.0)
    parser.add_argument("--wait", type=float, default=600.0, help="max wait after a burst")
    parser.add_argument("--stall", type=float, default=120.0, help="stop waiting after no progress")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="hollow fleet lifetime")
    parser.add_argument("--sched-cluster", default=None, help="provider cluster (default last)")
    parser.add_argument("--skip-hub", action="store_true")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="leave the bed running")
    args = parser.parse_args()
    if args.quick:
        args.hollow, args.leases, args.nodes, args.pods = 20, 200, 20, 200
    directory = Path(os.environ.get("KOMMONS_TESTBED_DIR") or "/tmp/kommons-bench-hub")
    started = time.monotonic()
    say(f"starting a bed in {directory} (3 provider clusters, no chain)")
    bed = Testbed.up(directory, providers=3, chain=False, progress=say)
    hub = sched = None
    try:
        if not args.skip_hub:
            hub = bench_hub(bed, args)
        if not args.skip_scheduler:
            sched = bench_kube_scheduler(bed, args)
    finally:
        save_logs(bed)
        if not args.keep:
            say("stopping the bed")
            bed.down()
    elapsed = time.monotonic() - started
    print(report(hub, sched, elapsed), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"hub": hub, "kubeScheduler": sched, "seconds": elapsed}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
