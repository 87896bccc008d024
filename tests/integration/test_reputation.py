"""Reputation on the real bed: computed by the hub from what it observed, used by the scheduler.

The session's hub is restarted for this module with short reputation settings (no uptime
prior, records written at most every 2 s) and every provider's record cleared, so the numbers
move within the test's minutes; it is restarted with its defaults at the end.

Behaviour matrix (case -> expected):

- the hub starts -> every provider gets ``status.reputation`` written by the hub: score 0.9
  (a new provider's), uptime 1.0.
- prov-a's agent is SIGKILLed -> prov-a goes ``Unreachable``; its ``unreachableSeconds`` grow
  and its uptime ratio and score drop, while the other providers keep uptime 1.0.
- the agent is restarted -> prov-a is ``Ready`` again but its score stays below a pool's
  ``minReputation: 0.8``: a lease of that pool is placed elsewhere and its decision says
  ``reputation 0.xx < 0.80`` for prov-a, while a lease of a pool without ``minReputation``
  still goes to prov-a (the cheapest).
- the leases are deleted -> each chosen provider's ``completedLeases`` counts one.
- prov-a's agent forges ``status.reputation`` with its own credentials -> refused by the API
  server naming the field; the hub's record stands.
- the hub is SIGKILLed and restarted -> prov-a's record continues from the status (its counts
  and unreachable seconds are not reset).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.kube import Forbidden, Invalid, Kube, connect
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import TENANT_LABEL, lease_body, wait_lease

pytestmark = pytest.mark.bed

VICTIM = "prov-a"
"""The cheapest provider of the bed: chosen first by LowestPrice unless its reputation says no."""
OTHERS = ("prov-b", "prov-c")
HUB_ARGS = (
    "--reputation-half-life",
    "3600",
    "--reputation-uptime-prior",
    "0",
    "--reputation-write-seconds",
    "2",
)
STRICT_POOL = "rep-strict"
MIN_REPUTATION = 0.8
JSON = dict[str, Any]


def reputation_of(hub: Kube, provider: str) -> JSON:
    status = hub.get(r.PROVIDERS, provider).get("status") or {}
    return dict(status.get("reputation") or {})


def phase_of(hub: Kube, provider: str) -> str | None:
    return (hub.get(r.PROVIDERS, provider).get("status") or {}).get("phase")


def wait_reputation(hub: Kube, provider: str, check: Any, *, what: str, timeout: float) -> JSON:
    seen: JSON = {}

    def done() -> bool:
        seen.clear()
        seen.update(reputation_of(hub, provider))
        return bool(seen) and bool(check(seen))

    try:
        wait_for(done, timeout=timeout, what=what, every=1.0)
    except Exception as exc:
        raise AssertionError(f"{exc}; last reputation of {provider}: {seen}") from exc
    return dict(seen)


def written_since(moment: datetime) -> Any:
    floor = moment.replace(microsecond=0)
    return lambda rep: "updatedAt" in rep and datetime.fromisoformat(rep["updatedAt"]) >= floor


def restart_hub(stack: Stack, *args: str, kill: bool = False) -> datetime:
    if kill:
        stack.kill("hub")
    else:
        stack.stop("hub")
    started = datetime.now(UTC)
    stack.start_hub(*args)
    return started


@pytest.fixture(scope="module")
def reputation_stack(stack: Stack, hub: Kube) -> Iterator[Stack]:
    """The hub restarted with short reputation settings and every record cleared."""
    stack.stop("hub")
    for provider in (VICTIM, *OTHERS):
        hub.patch(r.PROVIDERS, provider, {"status": {"reputation": None}}, subresource="status")
    started = restart_hub(stack, *HUB_ARGS)
    try:
        stack.wait_providers_ready(timeout=120, since=started)
        yield stack
    finally:
        if not stack.alive(f"agent-{VICTIM}"):
            stack.start_agent(VICTIM)
        started = restart_hub(stack)
        stack.wait_providers_ready(timeout=120, since=started)


def test_reputation_drops_with_downtime_and_gates_min_reputation(
    reputation_stack: Stack, hub: Kube, tenant: str
) -> None:
    stack = reputation_stack
    # every provider starts with a hub-written record: a new provider's score
    for provider in (VICTIM, *OTHERS):
        fresh = wait_reputation(
            hub, provider, lambda rep: "score" in rep, what=f"{provider}'s record", timeout=60
        )
        assert fresh["uptimeRatio"] == 1.0
        assert fresh["score"] == 0.9

    # the victim's agent dies: the hub counts the time it does not see its heartbeat
    stack.kill(f"agent-{VICTIM}")
    wait_for(lambda: phase_of(hub, VICTIM) == "Unreachable", timeout=90, what="Unreachable")
    down = wait_reputation(
        hub,
        VICTIM,
        lambda rep: rep.get("uptimeRatio", 1.0) <= 0.6,
        what=f"{VICTIM}'s uptime ratio to fall to 0.6",
        timeout=180,
    )
    assert down["unreachableSeconds"] > 0
    assert down["score"] < MIN_REPUTATION
    # leases other tests left on the victim fail over meanwhile: each counts against it
    completed, failed = down.get("completedLeases", 0), down.get("failedLeases", 0)
    ended = completed + failed + down.get("failovers", 0)
    success = (completed + 9) / (ended + 10)
    assert down["score"] == pytest.approx(success * down["uptimeRatio"], abs=2e-4)
    for provider in OTHERS:  # (a loaded bed may make the hub miss a heartbeat or two)
        assert reputation_of(hub, provider)["uptimeRatio"] >= 0.95
        assert reputation_of(hub, provider)["score"] > MIN_REPUTATION

    # back, Ready, but not trusted by a strict pool yet
    stack.start_agent(VICTIM)
    wait_for(lambda: phase_of(hub, VICTIM) == "Ready", timeout=90, what=f"{VICTIM} Ready again")
    hub.apply(
        r.PROVIDER_POOLS,
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "ProviderPool",
            "metadata": {"name": STRICT_POOL},
            "spec": {
                "strategy": "LowestPrice",
                "minReputation": MIN_REPUTATION,
                "tenantNamespaceSelector": {
                    "matchExpressions": [{"key": TENANT_LABEL, "operator": "Exists"}]
                },
            },
        },
    )
    try:
        hub.create(
            r.COMPUTE_LEASES, lease_body("strict", tenant, replicas=1, pool=STRICT_POOL), tenant
        )
        hub.create(r.COMPUTE_LEASES, lease_body("open", tenant, replicas=1), tenant)
        strict = wait_lease(
            hub,
            tenant,
            "strict",
            lambda lease: bool(((lease.get("status") or {}).get("decision") or {}).get("chosen")),
            what="the strict pool's lease to be placed",
            timeout=90,
        )
        decision = strict["status"]["decision"]
        chosen = {c["provider"] for c in decision["chosen"]}
        assert VICTIM not in chosen
        assert chosen <= set(OTHERS)
        assert "reputation" in decision["rejected"][VICTIM]
        assert f"< {MIN_REPUTATION:.2f}" in decision["rejected"][VICTIM]
        open_lease = wait_lease(
            hub,
            tenant,
            "open",
            lambda lease: bool(((lease.get("status") or {}).get("decision") or {}).get("chosen")),
            what="the open pool's lease to be placed",
            timeout=90,
        )
        assert [c["provider"] for c in open_lease["status"]["decision"]["chosen"]] == [VICTIM]
        (other,) = chosen
        before_other = reputation_of(hub, other).get("completedLeases", 0)
    finally:
        for name in ("strict", "open"):
            hub.delete(r.COMPUTE_LEASES, name, tenant)
        hub.delete(r.PROVIDER_POOLS, STRICT_POOL)

    # the placements those leases ended count as completed for their providers
    wait_reputation(
        hub,
        VICTIM,
        lambda rep: rep.get("completedLeases") == 1,
        what=f"{VICTIM}'s completed placement",
        timeout=90,
    )
    wait_reputation(
        hub,
        other,
        lambda rep: rep.get("completedLeases") == before_other + 1,
        what=f"{other}'s completed placement",
        timeout=90,
    )

    # the agent cannot write its own record
    agent = connect(stack.agent_kubeconfig(VICTIM), field_manager="forger")
    with pytest.raises((Forbidden, Invalid)) as refused:
        agent.patch(
            r.PROVIDERS,
            VICTIM,
            {"status": {"reputation": {"score": 1.0, "uptimeRatio": 1.0, "failovers": 0}}},
            subresource="status",
        )
    assert refused.value.status == 403
    assert "status.reputation" in refused.value.message
    assert reputation_of(hub, VICTIM)["score"] < 0.9

    # a hub crash loses nothing that was written: the new hub continues from the status
    before = reputation_of(hub, VICTIM)
    started = restart_hub(stack, *HUB_ARGS, kill=True)
    after = wait_reputation(
        hub,
        VICTIM,
        written_since(started),
        what=f"the restarted hub to write {VICTIM}'s record",
        timeout=120,
    )
    assert after["completedLeases"] == before["completedLeases"] == 1
    assert after["unreachableSeconds"] >= 0.9 * before["unreachableSeconds"] > 0
    assert after["reachableSeconds"] >= before["reachableSeconds"]
    assert after["uptimeRatio"] < 1.0
