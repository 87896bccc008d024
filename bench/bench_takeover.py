"""Leader takeover of the HA hub on the real bed: SIGKILL and SIGTERM of the active replica.

1. A bed (hub + 1 provider cluster, no chain; or ``--attach`` to a running one), the stack
   with two hub replicas ``hub-a``/``hub-b`` (``kommons hub`` defaults: lease 15 s, renew
   deadline 10 s, retry 2 s) and ``--leases`` suspended leases the new leader has to list.
2. ``--rounds`` times: SIGKILL the replica holding the Lease; at once create a one-replica
   probe lease. Stamped from the kill: the standby holds the Lease (polled every 50 ms), the
   probe's placement is written (the new leader acts), the probe is Running. The killed
   replica is restarted and stands by. The Lease step is the new leader's own
   ``acquireTime`` minus the time of the signal (one machine, one clock); the others are polled
   every 50 ms, each in its own thread.
3. The same with SIGTERM (the leader releases the Lease on its way out).

Prints p50/max per step; asserts nothing about time. Stops the bed it started.
Run: ``.venv/bin/python bench/bench_takeover.py [--quick] [--attach]`` (bed in
``$KOMMONS_TESTBED_DIR`` or ``/tmp/kommons-bench-takeover``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import (
    ACCOUNT,
    POOL,
    lease_body,
    load_average,
    ms,
    percentile,
    save_logs,
    say,
    setup_market,
    table,
)

from kommons.api_names import LABEL_LEASE_UID
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import HUB_LEASE, HUB_NAMESPACE, Stack, start_stack
from kommons_testbed.state import load_state

TENANT = "bench-takeover"
RUN = uuid.uuid4().hex[:6]
"""Suffix of this run's probe leases (an attached bed may hold an earlier run's)."""
JSON = dict[str, Any]
REPLICAS = ("hub-a", "hub-b")
STEPS = ("lease", "placement", "running")
LABELS = {
    "lease": "standby holds the Lease",
    "placement": "new leader wrote the probe's placement",
    "running": "probe lease Running",
}


def _leader(stack: Stack) -> str:
    holder: list[str | None] = [None]

    def elected() -> bool:
        holder[0] = stack.leader()
        return holder[0] in REPLICAS

    wait_for(elected, timeout=120, what="a hub replica to hold the Lease", every=0.2)
    return str(holder[0])


def _probe(hub: Kube, name: str) -> JSON:
    body = lease_body(name, TENANT)
    return hub.create(r.COMPUTE_LEASES, body, TENANT)


def _poll(
    check: Callable[[], float | None], step: str, seen: dict[str, float], deadline: float
) -> None:
    """Call ``check`` every 50 ms until it returns a time (stored under ``step``)."""
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the hub's API server is busy: keep polling
            say(f"({step}: poll failed: {exc})")
            value = None
        if value is not None:
            seen[step] = value
            return
        time.sleep(0.05)


def one_round(
    stack: Stack, hub: Kube, runs: dict[str, int], *, how: str, index: int, limit: float
) -> dict[str, float]:
    """Stop the leader (``kill`` or ``stop``), create a probe; seconds to each step."""
    leader = _leader(stack)
    standby = next(n for n in REPLICAS if n != leader)
    stack.wait_standing_by(standby, after_runs=runs.get(standby, 0))
    started_wall = datetime.now(UTC)
    started = time.monotonic()
    if how == "kill":
        stack.kill(leader)
    else:
        stack.stop(leader)
    stopped = time.monotonic() - started
    probe = _probe(hub, f"probe-{how}-{index}-{RUN}")
    uid, name = probe["metadata"]["uid"], probe["metadata"]["name"]

    def lease_taken() -> float | None:
        spec = hub.get(r.LEASES, HUB_LEASE, HUB_NAMESPACE).get("spec") or {}
        if spec.get("holderIdentity") != standby or not spec.get("acquireTime"):
            return None
        # the new leader's own stamp (same machine, same clock): no polling delay in it
        acquired = datetime.fromisoformat(str(spec["acquireTime"]).replace("Z", "+00:00"))
        return (acquired - started_wall).total_seconds()

    def placed() -> float | None:
        found = hub.list(r.LEASE_PLACEMENTS, label_selector=f"{LABEL_LEASE_UID}={uid}")
        return time.monotonic() - started if found else None

    def running() -> float | None:
        status = hub.get(r.COMPUTE_LEASES, name, TENANT).get("status") or {}
        return time.monotonic() - started if status.get("phase") == "Running" else None

    seen: dict[str, float] = {}
    pollers = [
        threading.Thread(target=_poll, args=(check, step, seen, started + limit))
        for step, check in (("lease", lease_taken), ("placement", placed), ("running", running))
    ]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    say(
        f"{how} {leader} ({stopped:.1f}s to stop): "
        + ", ".join(f"{k} {seen[k]:.1f}s" for k in STEPS if k in seen)
    )
    runs[leader] = len(stack.hub_runs(leader))
    stack.start_hub(name=leader)  # back as the standby (waited for in the next round)
    return seen


def run(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """The rounds on a running stack; the figures."""
    hub = stack.hub_kube()
    setup_market(hub, [TENANT])
    for i in range(args.leases):
        body = lease_body(f"idle-{i}", TENANT)
        body["spec"]["suspend"] = True
        hub.apply(r.COMPUTE_LEASES, body)
    say(f"{args.leases} suspended leases for the new leader to list; pool {POOL}")
    results: dict[str, Any] = {}
    runs: dict[str, int] = {}
    """Replica → its runs before its latest restart (to wait for the new run to stand by)."""
    for how in ("kill", "stop"):
        rounds = [
            one_round(stack, hub, runs, how=how, index=i, limit=args.limit)
            for i in range(args.rounds)
        ]
        results[how] = {step: [r_[step] for r_ in rounds if step in r_] for step in STEPS} | {
            "rounds": len(rounds)
        }
    return results


def cleanup(stack: Stack) -> None:
    """Remove what the bench created on an attached bed (its account bills every tenant)."""
    hub = stack.hub_kube()
    hub.delete(r.NAMESPACES, TENANT)  # the hub finalizes the leases and their placements
    wait_for(
        lambda: hub.get_or_none(r.NAMESPACES, TENANT) is None,
        timeout=300,
        what=f"namespace {TENANT} to be gone",
        every=1.0,
    )
    hub.delete(r.PROVIDER_POOLS, POOL)
    hub.delete(r.BILLING_ACCOUNTS, ACCOUNT)


def report(results: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    """The tables."""
    out = []
    for how, title in (("kill", "SIGKILL of the leader"), ("stop", "SIGTERM of the leader")):
        rows: list[tuple[str, object]] = [("rounds", results[how]["rounds"])]
        for step in STEPS:
            values = results[how][step]
            rows.append(
                (
                    f"{LABELS[step]}: p50 / max (n)",
                    f"{ms(percentile(values, 50))} / {ms(max(values) if values else None)}"
                    f" ({len(values)})",
                )
            )
        out.append(table(f"{title} (from the signal)", rows))
    out.append(
        table(
            "setting",
            [
                ("election", "lease 15 s, renew deadline 10 s, retry 2 s (defaults)"),
                ("suspended leases listed by the new leader", args.leases),
                ("load average (1 min) at the end", load_average()),
                ("bench wall time", f"{seconds:.0f} s"),
            ],
        )
    )
    return "\n\n".join(out)


def main() -> int:
    """Start (or attach to) a bed, run the rounds, print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds each, 20 leases")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per signal (default 5)")
    parser.add_argument("--leases", type=int, default=200, help="suspended leases (default 200)")
    parser.add_argument("--limit", type=float, default=120.0, help="max seconds per round")
    parser.add_argument("--attach", action="store_true", help="use the running bed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.leases = 2, 20
    directory = Path(os.environ.get("KOMMONS_TESTBED_DIR") or "/tmp/kommons-bench-takeover")
    started = time.monotonic()
    if args.attach:
        state = load_state(directory)
        if state is None:
            raise SystemExit(f"no bed in {directory} to attach to")
        bed = Testbed(state)
    else:
        say(f"starting a bed in {directory} (1 provider cluster, no chain)")
        bed = Testbed.up(directory, providers=1, chain=False, progress=say)
    existing = Stack.load(bed.dir, bed)
    if existing is not None:
        existing.down()
    stack = None
    try:
        stack = start_stack(bed, progress=say, hub_replicas=2, ready_timeout=180)
        results = run(stack, args)
    finally:
        if stack is not None:
            if args.attach:
                say(f"removing namespace {TENANT}, pool {POOL} and account {ACCOUNT}")
                try:
                    cleanup(stack)
                except Exception as exc:  # keep going: the stack must stop anyway
                    say(f"clean-up incomplete: {exc}")
            stack.down()
        save_logs(bed)
        if not args.attach:
            say("stopping the bed")
            bed.down()
    elapsed = time.monotonic() - started
    print(report(results, args, elapsed), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results | {"seconds": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
