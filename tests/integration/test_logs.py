"""``kommons logs``: a lease's logs relayed from its providers through the hub, on the bed.

kwok plays each node's kubelet on the bed, so ``pods/log`` on a provider serves
``hack/testbed/kwok-pod.log`` for every simulated container.

Behaviour matrix:

- a tenant with only the ``kommons-tenant`` role (a ServiceAccount token: no provider
  credentials, nothing outside its namespace) runs ``kommons logs`` on a lease with replicas on
  two providers -> one section per provider/pod/container with the simulated log's last lines
  (``--tail``), exit 0, nothing on stderr; the agents' answers are gone from the hub after;
- ``-o json`` -> ``{"status": "complete", "logs": {...}}``;
- one of the providers' agents stopped -> the others' logs, and stderr names the silent provider;
- an unknown lease -> exit 1, one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kommons.kube import Kube
from kommons.kube import resources as r
from kommons.lease_logs import answer_name
from kommons.trust.policies import tenant_bindings
from kommons_testbed.kwok import POD_LOG
from kommons_testbed.stack import Stack
from tests.integration.conftest import kommons, lease_body, tenant_kubeconfig, wait_lease

pytestmark = pytest.mark.bed

LAST_LINE = POD_LOG.read_text().splitlines()[-1].split(" ", 3)[3]
FIRST_LINE = POD_LOG.read_text().splitlines()[0].split(" ", 3)[3]


@pytest.fixture
def dev(hub: Kube, stack: Stack, tenant: str) -> Iterator[Path]:
    """ServiceAccount ``dev`` of the tenant namespace, bound to ``kommons-tenant`` only."""
    yield tenant_kubeconfig(hub, stack, tenant, "dev")
    subject = {"kind": "ServiceAccount", "name": "dev", "namespace": tenant}
    viewer = next(b for b in tenant_bindings(tenant, subject) if b["kind"] == "ClusterRoleBinding")
    hub.delete(r.CLUSTER_ROLE_BINDINGS, viewer["metadata"]["name"])


def _running_on_two(hub: Kube, tenant: str) -> dict[str, object]:
    body = lease_body("logged", tenant, replicas=2)
    body["spec"]["placement"] = {"spread": True}
    hub.create(r.COMPUTE_LEASES, body, tenant)
    return wait_lease(
        hub,
        tenant,
        "logged",
        lambda lease: (
            (lease.get("status") or {}).get("phase") == "Running"
            and len(lease["status"].get("placements") or []) == 2
        ),
        what="lease logged Running on two providers",
        timeout=120,
    )


def test_a_tenant_reads_its_leases_logs_through_the_hub(
    hub: Kube, stack: Stack, tenant: str, dev: Path
) -> None:
    running = _running_on_two(hub, tenant)
    providers = sorted(p["provider"] for p in running["status"]["placements"])

    shown = kommons("logs", "logged", "--tail", "2", kubeconfig=dev)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    headers = [line for line in shown.stdout.splitlines() if line.startswith("==> ")]
    assert len(headers) == 2  # one pod per provider, one container each
    assert sorted(h.split()[1].split("/")[0] for h in headers) == providers
    assert shown.stdout.count(LAST_LINE) == 2
    assert FIRST_LINE not in shown.stdout  # --tail 2 of a three-line log
    for placement in running["status"]["placements"]:
        namespace = f"kommons-provider-{placement['provider']}"
        answer = answer_name(placement["placementName"])
        assert hub.get_or_none(r.CONFIGMAPS, answer, namespace) is None

    as_json = kommons("logs", "logged", "-o", "json", kubeconfig=dev)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["status"] == "complete"
    assert len(document["logs"]) == 2
    assert all(LAST_LINE in text for text in document["logs"].values())
    assert all(FIRST_LINE in text for text in document["logs"].values())  # default tail: 100

    unknown = kommons("logs", "nope", kubeconfig=dev)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == f"error: no ComputeLease nope in namespace {tenant}"


def test_a_silent_provider_is_named_and_the_others_logs_shown(
    hub: Kube, stack: Stack, tenant: str, dev: Path
) -> None:
    running = _running_on_two(hub, tenant)
    silent, talking = sorted(p["provider"] for p in running["status"]["placements"])
    agent = f"agent-{silent}"
    stack.stop(agent)
    try:
        shown = kommons("logs", "logged", kubeconfig=dev)
    finally:
        restarted = datetime.now(UTC)
        stack.start_agent(silent)
        # the agent was silent about as long as the heartbeat timeout: a "Ready" the hub has
        # not re-read since may still turn Unreachable, so wait for a heartbeat after the restart
        stack.wait_providers_ready(timeout=150, since=restarted)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.strip() == f"warning: no answer from {silent}"
    headers = [line for line in shown.stdout.splitlines() if line.startswith("==> ")]
    assert [h.split()[1].split("/")[0] for h in headers] == [talking]
