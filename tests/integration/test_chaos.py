"""Chaos: a seeded churn of leases while the hub and agents are SIGKILLed, on the real bed.

Behaviour matrix (case -> expected):

- 200 leases (500 with ``KOMMONS_CHAOS_LEASES=500``) created over 20 rounds, scaled,
  suspended, resumed and deleted (seed :data:`SEED`), the hub and 1-2 agents SIGKILLed at
  random moments of every round and restarted 0.5-5 s later -> once everything runs again,
  within a generous deadline: 0 leases lost, 0 duplicate workloads, 0 orphaned provider
  namespaces, every lease in the state its spec asks (``kommons_testbed.convergence.check``);
  every tenant write was accepted.

Reproduce a failing run: ``kommons-testbed chaos --seed 20261201 --rounds 20 --leases 200``
(see docs/chaos.md); ``KOMMONS_CHAOS_SEED``/``_ROUNDS``/``_LEASES`` override the figures here.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable

import pytest

from kommons.kube import Kube
from kommons_testbed.chaos import ChaosRunner, expected_state, lease_states, make_plan, prepare
from kommons_testbed.convergence import wait_converged
from kommons_testbed.stack import Stack
from tests.integration.conftest import delete_namespace

pytestmark = pytest.mark.bed

SEED = int(os.environ.get("KOMMONS_CHAOS_SEED", "20261201"))
ROUNDS = int(os.environ.get("KOMMONS_CHAOS_ROUNDS", "20"))
LEASES = int(os.environ.get("KOMMONS_CHAOS_LEASES", "200"))
"""The issue asks for 500: it converges on a quiet 2-core machine but takes 20 min (docs/chaos.md
has the figures): ``KOMMONS_CHAOS_LEASES=500 KOMMONS_CHAOS_DEADLINE=1500``."""
CONVERGE_DEADLINE = float(os.environ.get("KOMMONS_CHAOS_DEADLINE", "900"))
"""Seconds the market may take to converge after the last round (generous: 2 shared cores)."""


def _say(text: str) -> None:
    sys.stderr.write(f"chaos: {text}\n")
    sys.stderr.flush()


@pytest.mark.timeout(3600)
def test_churn_with_kills_converges(
    hub: Kube, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    providers = tuple(sorted(stack.provider_kubeconfigs))
    plan = make_plan(seed=SEED, rounds=ROUNDS, leases=LEASES, providers=providers)
    expected = expected_state(plan)
    namespace = f"chaos-{uuid.uuid4().hex[:6]}"
    prepare(hub, namespace)
    _say(f"seed {SEED}: {ROUNDS} rounds, {LEASES} leases, {plan.kills} kills, ns {namespace}")

    try:
        runner = ChaosRunner(plan, hub=hub, stack=stack, namespace=namespace, progress=_say)
        figures = runner.run()
        assert figures.failed_ops == [], "tenant writes refused:\n" + "\n".join(figures.failed_ops)
        assert all(stack.alive(name) for name in stack.processes), "every process runs again"

        kubes = {name: provider_kube(name) for name in providers}
        report, converge = wait_converged(
            expected,
            hub,
            kubes,
            namespace,
            deadline=CONVERGE_DEADLINE,
            progress=_say,
            between=stack.restart_lost_hubs,
        )
        _say(
            f"churn {figures.seconds:.0f}s, {figures.ops} ops, {figures.kills} kills,"
            f" {len(figures.hub_restarts)} restarts after a lost Lease;"
            f" converged in {converge:.0f}s; end state {lease_states(expected)};"
            f" violations {report.counts}"
        )
        exited = [name for name in stack.processes if not stack.alive(name)]
        assert report.ok, (
            f"not converged after {converge:.0f}s (processes exited since: {exited or 'none'}):\n"
            f"{report.describe(limit=40)}"
        )
        assert report.counts == {"lost": 0, "duplicate": 0, "orphan": 0, "wrong-state": 0}
    finally:
        # Its leases would load the rest of the session; and the next test must not run while
        # the agents tear down a few hundred placements (their heartbeats fall behind).
        delete_namespace(hub, namespace, wait=900)
