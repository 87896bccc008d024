"""``kommons-testbed chaos``: print a churn's plan, or run it on the bed and check convergence.

Reproduces ``tests/integration/test_chaos.py`` (same seed, same plan) from the command line:
uses the running bed of ``--dir`` and its running stack (started if there is none, stopped
again at the end), a fresh tenant namespace, prints one line per round and the final check.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from pathlib import Path

from kommons.kube import connect
from kommons_testbed.bed import Testbed
from kommons_testbed.chaos import (
    ChaosRunner,
    expected_state,
    format_plan,
    lease_states,
    make_plan,
    prepare,
)
from kommons_testbed.convergence import wait_converged
from kommons_testbed.processes import BedError
from kommons_testbed.stack import Stack, start_stack
from kommons_testbed.state import load_state

Progress = Callable[[str], None]
DEFAULT_PROVIDERS = ("prov-a", "prov-b", "prov-c")


def run(directory: Path, args: argparse.Namespace, progress: Progress) -> int:
    """Print the plan; unless ``--plan-only``, run it on the bed; 0 when it converged."""
    state = load_state(directory)
    bed = Testbed(state) if state is not None else None
    providers = tuple(sorted(bed.providers)) if bed is not None else DEFAULT_PROVIDERS
    plan = make_plan(
        seed=args.seed,
        rounds=args.rounds,
        leases=args.leases,
        providers=providers,
        round_seconds=args.round_seconds,
    )
    progress(format_plan(plan))
    if args.plan_only:
        return 0
    if bed is None or bed.problems():
        raise BedError(f"no healthy bed in {directory}: run `make testbed-up` first")
    stack = Stack.load(bed.dir, bed)
    started_here = stack is None or not all(stack.alive(n) for n in stack.processes)
    if started_here:
        if stack is not None:
            stack.down()
        stack = start_stack(bed, progress=progress)
    assert stack is not None
    try:
        hub = stack.hub_kube()
        namespace = f"chaos-{uuid.uuid4().hex[:6]}"
        prepare(hub, namespace)
        progress(f"tenant namespace {namespace}")
        runner = ChaosRunner(plan, hub=hub, stack=stack, namespace=namespace, progress=progress)
        done = runner.run()
        for failed in done.failed_ops:
            progress(f"refused: {failed}")
        kubes = {
            name: connect(handle.kubeconfig, field_manager="kommons-chaos")
            for name, handle in bed.providers.items()
        }
        expected = expected_state(plan)
        report, took = wait_converged(
            expected,
            hub,
            kubes,
            namespace,
            deadline=args.deadline,
            progress=progress,
            between=stack.restart_lost_hubs,
        )
        progress(
            f"churn {done.seconds:.0f}s, {done.ops} ops, {done.kills} kills,"
            f" {len(done.hub_restarts)} restarts after a lost Lease; "
            f"{'converged' if report.ok else 'NOT converged'} after {took:.0f}s;"
            f" end state {lease_states(expected)}"
        )
        progress(report.describe(limit=40))
        return 0 if report.ok and not done.failed_ops else 1
    finally:
        if started_here:
            stack.down()
