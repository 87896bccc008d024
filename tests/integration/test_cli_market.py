"""``kommons lease|bill|provider|pool`` against the bed's hub, as the roles run them.

Behaviour matrix:

- a tenant (the hub kubeconfig here) lists its leases, describes and explains one placed on
  the bed (where, why, cost), reads the bill, and gets the objects with ``-o json``;
- an unknown lease is one ``error:`` line naming it, exit 1;
- a provider runs ``kommons provider status`` with its agent's own scoped hub kubeconfig: its
  phase, heartbeat and placements; the earnings line says epochs are not readable with those
  credentials (they are hub-only); another provider's status is refused in one line;
- a hub admin's ``kommons pool status`` lists the pool's providers and its leases.
"""

from __future__ import annotations

import json

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.stack import Stack
from tests.integration.conftest import POOL, kommons, lease_body, wait_lease

pytestmark = pytest.mark.bed


def test_the_roles_read_the_market(stack: Stack, hub: Kube, tenant: str) -> None:
    hub.create(r.COMPUTE_LEASES, lease_body("cli", tenant, replicas=2), tenant)
    running = wait_lease(
        hub,
        tenant,
        "cli",
        lambda lease: (lease.get("status") or {}).get("phase") == "Running",
        what="lease cli Running",
        timeout=120,
    )
    provider = running["status"]["placements"][0]["provider"]
    admin = stack.hub_kubeconfig

    listed = kommons("lease", "list", "-n", tenant, kubeconfig=admin)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PHASE", "READY", "PROVIDERS", "COST", "AGE"]
    assert row.split()[:4] == [tenant, "cli", "Running", "2/2"]

    explained = kommons("lease", "explain", "cli", "-n", tenant, kubeconfig=admin)
    assert explained.returncode == 0, explained.stderr
    assert f"{provider}: " in explained.stdout
    assert "Why: the last decision" in explained.stdout
    assert "Cost so far:" in explained.stdout

    as_json = kommons("lease", "describe", "cli", "-n", tenant, "-o", "json", kubeconfig=admin)
    assert json.loads(as_json.stdout)["status"]["phase"] == "Running"

    billed = kommons("bill", "-n", tenant, kubeconfig=admin)
    assert billed.returncode == 0, billed.stderr
    assert billed.stdout.splitlines()[-1].split()[0] == "TOTAL"

    unknown = kommons("lease", "explain", "nope", "-n", tenant, kubeconfig=admin)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == f"error: no ComputeLease nope in namespace {tenant}"
    assert unknown.stdout == ""

    own = stack.agent_kubeconfig(provider)
    status = kommons("provider", "status", provider, kubeconfig=own)
    assert status.returncode == 0, status.stderr
    assert f"Provider {provider}" in status.stdout
    assert "Phase: Ready" in status.stdout
    assert "lease " + tenant + "/cli" in status.stdout
    assert "not readable with these credentials" in status.stdout
    other = next(p for p in sorted(stack.provider_kubeconfigs) if p != provider)
    refused = kommons("provider", "status", other, kubeconfig=own)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ")
    assert refused.stderr.count("\n") == 1

    pool = kommons("pool", "status", POOL, kubeconfig=admin)
    assert pool.returncode == 0, pool.stderr
    assert f"Pool {POOL}" in pool.stdout
    assert f"  {provider} (" in pool.stdout
    assert "Running" in pool.stdout.splitlines()[-1]
