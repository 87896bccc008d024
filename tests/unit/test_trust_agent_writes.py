"""Unit tests of what the agent writes on the hub (``HubLink.register`` / ``heartbeat``).

A fake hub client records the requests; the real API server's refusals are covered by
``tests/integration/test_trust_boundary.py``.

Behaviour matrix:

- register: a read-modify-write (PUT with the read resourceVersion) that replaces pricing,
  offer and payout address exactly (a dropped GPU price or offer disappears) and keeps region,
  mode, labels, cordoned and everything else as the hub admin set them; no status sent;
- register retries on a 409 conflict, gives up after the attempts; 403/404 -> a
  RegistrationError that says to onboard the provider;
- the example agent configs and the bed's generated one load and carry no region or labels;
- heartbeat: a merge patch of the pre-created Lease's spec only (no labels, never a create);
  404 -> RegistrationError that says to onboard again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kommons.agent.config import AgentConfig, load_config
from kommons.agent.hub_link import HEARTBEAT_LEASE, HubLink, RegistrationError
from kommons.kube import Conflict, Forbidden, NotFound
from kommons.kube import resources as r
from kommons.kube.resources import Resource
from kommons_testbed import stack
from kommons_testbed.stack import REPO

JSON = dict[str, Any]

PROVIDER: JSON = {
    "apiVersion": "kommons.io/v1alpha1",
    "kind": "Provider",
    "metadata": {
        "name": "prov-a",
        "resourceVersion": "7",
        "labels": {"kommons.io/tier": "community", "kommons.io/provider": "prov-a"},
    },
    "spec": {
        "mode": "Pull",
        "region": "eu-west",
        "cordoned": True,
        "payoutAddress": "0x00000000000000000000000000000000000000aa",
        "pricing": {"cpuCoreHour": "0", "memoryGiBHour": "0", "gpuHour": {"nvidia-l4": "1"}},
        "offer": {"cpu": "4"},
    },
    "status": {"phase": "Ready"},
}


class FakeHub:
    """Records requests; ``fail`` holds errors to raise on the next PUTs/PATCHes."""

    field_manager = "kommons-agent-prov-a"

    def __init__(self, *fail: Exception) -> None:
        self.fail = list(fail)
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        self.calls.append(("GET", resource.path(namespace, name), None))
        return copy.deepcopy(PROVIDER)

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> JSON:
        self.calls.append((method, path, body))
        if self.fail:
            raise self.fail.pop(0)
        return dict(body)

    def patch(
        self, resource: Resource, name: str, patch: JSON, namespace: str | None = None, **_: Any
    ) -> JSON:
        self.calls.append(("PATCH", resource.path(namespace, name), patch))
        if self.fail:
            raise self.fail.pop(0)
        return patch


def config(**extra: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "payoutAddress": "0x00000000000000000000000000000000000000bb",
            "pricing": {"cpuCoreHour": "0.02", "memoryGiBHour": "0.003"},
            **extra,
        }
    )


def link(hub: FakeHub, agent_config: AgentConfig | None = None) -> HubLink:
    return HubLink(hub, "prov-a", agent_config or config())  # type: ignore[arg-type]


def error(kind: type[Exception], status: int) -> Exception:
    return kind(status, "", "refused", "PUT", "/x")


def test_register_replaces_declarations_and_keeps_the_admins_fields() -> None:
    hub = FakeHub()
    link(hub).register()
    method, path, body = hub.calls[-1]
    assert (method, path) == ("PUT", r.PROVIDERS.path(None, "prov-a"))
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["labels"] == PROVIDER["metadata"]["labels"]
    assert "status" not in body
    spec = body["spec"]
    assert spec["region"] == "eu-west"
    assert spec["mode"] == "Pull"
    assert spec["cordoned"] is True
    assert spec["payoutAddress"].endswith("bb")
    assert spec["pricing"] == {"cpuCoreHour": "0.02", "memoryGiBHour": "0.003"}  # no GPU price
    assert "offer" not in spec
    assert spec["expose"] == {"mode": "None"}  # its publishing mode, never its domain


def test_register_writes_the_offer_when_declared() -> None:
    hub = FakeHub()
    link(hub, config(offer={"cpu": "8", "gpus": 0})).register()
    assert hub.calls[-1][2]["spec"]["offer"] == {"cpu": "8", "gpus": 0}


def test_register_retries_on_conflict() -> None:
    hub = FakeHub(error(Conflict, 409))
    link(hub).register()
    assert [c[0] for c in hub.calls] == ["GET", "PUT", "GET", "PUT"]
    with pytest.raises(Conflict):
        link(FakeHub(*(error(Conflict, 409) for _ in range(3)))).register(attempts=3)


@pytest.mark.parametrize(("kind", "status"), [(Forbidden, 403), (NotFound, 404)])
def test_register_refused_says_to_onboard(kind: type[Exception], status: int) -> None:
    with pytest.raises(RegistrationError, match="kommons onboard prov-a"):
        link(FakeHub(error(kind, status))).register()


def test_heartbeat_patches_the_precreated_lease_spec_only() -> None:
    hub = FakeHub()
    link(hub).heartbeat(duration_seconds=6)
    ((method, path, patch),) = hub.calls
    assert method == "PATCH"
    assert path == r.LEASES.path("kommons-provider-prov-a", HEARTBEAT_LEASE)
    assert set(patch) == {"spec"}
    assert set(patch["spec"]) == {"holderIdentity", "leaseDurationSeconds", "renewTime"}
    assert patch["spec"]["leaseDurationSeconds"] == 6


def test_heartbeat_without_lease_says_to_onboard_again() -> None:
    with pytest.raises(RegistrationError, match="onboard provider 'prov-a' again"):
        link(FakeHub(error(NotFound, 404))).heartbeat(duration_seconds=6)


@pytest.mark.parametrize(
    "path", sorted((REPO / "examples" / "providers").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_agent_configs_declare_no_identity(path: Path) -> None:
    assert load_config(path).payout_address.startswith("0x")


def test_generated_bed_agent_config_declares_no_identity() -> None:
    assert not {"labels", "region"} & set(stack._GENERATED_CONFIG)
    AgentConfig.model_validate(stack._GENERATED_CONFIG)
