"""Config and secrets travel with the workload, on the real bed (hub, agents, providers).

Behaviour matrix (case -> expected):

- a tenant Secret, ConfigMap and image pull Secret, and a lease taking them along
  (``configFrom``, ``imagePullSecrets``) whose template references them (envFrom, env
  valueFrom, a configMap volume) -> the lease runs; in the placement's namespace on the
  provider the three objects exist under their own names with the same data (and the pull
  Secret's type); the Deployment's pods reference them and carry imagePullSecrets; on the hub
  each copy is a Secret in the provider's hub namespace owned by the placement; no Secret data
  in the placement's spec, the lease's status or its Events.
- the tenant changes the Secret -> the provider's copy follows; a ConfigMap added to
  configFrom appears on the provider, and goes once it is removed from the list.
- the lease is deleted -> the hub's copies go with the placement (garbage collection).
- a lease naming a Secret that does not exist -> ``Scheduled=False ConfigNotFound`` naming
  kind, name and namespace, no placement; the Secret is created -> the lease runs.
- a template setting imagePullSecrets itself -> refused at admission, the field named.
- the placement's provider agent, with its real hub credentials -> can read its copies; cannot
  create, change or delete one (403); another provider's agent cannot read them (403).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from kommons.agent.workload import target_namespace
from kommons.kube import Forbidden, Invalid, Kube, connect
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, wait_lease

pytestmark = pytest.mark.bed

JSON = dict[str, Any]
PASSWORD = "hunter2-config-from"
PROVIDERS = ("prov-a", "prov-b", "prov-c")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(namespace: str, name: str, data: dict[str, str], type_: str = "Opaque") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": type_,
        "data": {k: b64(v) for k, v in data.items()},
    }


def config_lease(name: str, namespace: str, *, secret_name: str = "app-env") -> JSON:
    body = lease_body(name, namespace, replicas=1, cpu="100m", memory="64Mi")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"secretRef": {"name": secret_name}}]
    container["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}}
    ]
    container["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}]
    body["spec"]["template"]["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "app-config"}}
    ]
    body["spec"]["configFrom"] = [
        {"kind": "Secret", "name": secret_name},
        {"kind": "ConfigMap", "name": "app-config"},
    ]
    body["spec"]["imagePullSecrets"] = [{"name": "registry"}]
    return body


def running(lease: JSON) -> bool:
    return (lease.get("status") or {}).get("phase") == "Running"


def condition(lease: JSON, type_: str) -> JSON:
    for item in (lease.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def the_placement(hub: Kube, lease: JSON) -> JSON:
    uid = lease["metadata"]["uid"]
    (found,) = hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}")
    return found


def test_config_and_secrets_travel_and_stay_in_sync(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    hub.create(r.SECRETS, secret(tenant, "app-env", {"PASSWORD": PASSWORD}), tenant)
    hub.create(
        r.SECRETS,
        secret(
            tenant,
            "registry",
            {".dockerconfigjson": '{"auths":{"registry.example":{"auth":"dTpw"}}}'},
            "kubernetes.io/dockerconfigjson",
        ),
        tenant,
    )
    hub.create(
        r.CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": tenant},
            "data": {"mode": "fast", "app.conf": "threads = 4\n"},
        },
        tenant,
    )
    hub.create(r.COMPUTE_LEASES, config_lease("cfg", tenant), tenant)
    lease = wait_lease(hub, tenant, "cfg", running, what="lease cfg Running", timeout=120)
    placement = the_placement(hub, lease)
    provider = placement["spec"]["provider"]
    where = target_namespace(placement["metadata"]["name"])
    kube = provider_kube(provider)

    # the originals, under their own names, with the same data, on the provider
    copied = kube.get(r.SECRETS, "app-env", where)
    assert base64.b64decode(copied["data"]["PASSWORD"]).decode() == PASSWORD
    pull = kube.get(r.SECRETS, "registry", where)
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    assert pull["data"] == hub.get(r.SECRETS, "registry", tenant)["data"]
    config = kube.get(r.CONFIGMAPS, "app-config", where)
    assert config["data"] == {"mode": "fast", "app.conf": "threads = 4\n"}
    pod = kube.get(r.DEPLOYMENTS, "workload", where)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "app-env"}}]
    assert pod["volumes"][0]["configMap"]["name"] == "app-config"

    # on the hub: copies in the provider's hub namespace, owned by the placement
    hub_ns = placement["metadata"]["namespace"]
    copies = hub.list(
        r.SECRETS,
        hub_ns,
        label_selector=f"kommons.io/placement={placement['metadata']['name']}",
    )
    assert len(copies) == 3
    for copy in copies:
        (owner,) = copy["metadata"]["ownerReferences"]
        assert owner["kind"] == "LeasePlacement"
        assert owner["uid"] == placement["metadata"]["uid"]
    assert set(placement["spec"]["configRevisions"]) == {
        "Secret/app-env",
        "ConfigMap/app-config",
        "Secret/registry",
    }
    events = hub.list(r.EVENTS, tenant, field_selector="involvedObject.name=cfg")
    seen = json.dumps([placement["spec"], lease.get("status"), events])
    assert PASSWORD not in seen
    assert b64(PASSWORD) not in seen

    # the tenant changes the Secret: the provider's copy follows
    hub.patch(r.SECRETS, "app-env", {"data": {"PASSWORD": b64("rotated")}}, tenant)
    wait_for(
        lambda: (
            base64.b64decode(kube.get(r.SECRETS, "app-env", where)["data"]["PASSWORD"])
            == b"rotated"
        ),
        timeout=60,
        what="the provider's copy of app-env rotated",
        every=0.5,
    )

    # one more ConfigMap taken along, then no longer: it comes and goes on the provider
    hub.create(
        r.CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "extra", "namespace": tenant},
            "data": {"x": "1"},
        },
        tenant,
    )
    listed = lease["spec"]["configFrom"]
    hub.patch(
        r.COMPUTE_LEASES,
        "cfg",
        {"spec": {"configFrom": [*listed, {"kind": "ConfigMap", "name": "extra"}]}},
        tenant,
    )
    wait_for(
        lambda: kube.get_or_none(r.CONFIGMAPS, "extra", where) is not None,
        timeout=60,
        what="ConfigMap extra on the provider",
        every=0.5,
    )
    hub.patch(r.COMPUTE_LEASES, "cfg", {"spec": {"configFrom": listed}}, tenant)
    wait_for(
        lambda: kube.get_or_none(r.CONFIGMAPS, "extra", where) is None,
        timeout=60,
        what="ConfigMap extra removed from the provider",
        every=0.5,
    )
    assert kube.get_or_none(r.CONFIGMAPS, "app-config", where) is not None

    # the agent's own credentials: read its copies, never write them
    agent = connect(stack.agent_kubeconfig(provider), field_manager="forger")
    name = copies[0]["metadata"]["name"]
    before = hub.get(r.SECRETS, name, hub_ns)
    assert agent.get(r.SECRETS, name, hub_ns)["data"] == before["data"]
    forged = dict(before, data={"PASSWORD": b64("forged")})
    forged["metadata"] = {"name": name, "namespace": hub_ns}
    for write in (
        lambda: agent.patch(r.SECRETS, name, {"data": {"PASSWORD": b64("forged")}}, hub_ns),
        lambda: agent.apply(r.SECRETS, forged),
        lambda: agent.delete(r.SECRETS, name, hub_ns),
        lambda: agent.create(
            r.SECRETS, dict(forged, metadata={"name": "forged", "namespace": hub_ns}), hub_ns
        ),
    ):
        with pytest.raises(Forbidden):
            write()
    assert hub.get(r.SECRETS, name, hub_ns)["data"] == before["data"]
    for other in (p for p in PROVIDERS if p != provider):
        stranger = connect(stack.agent_kubeconfig(other), field_manager="stranger")
        with pytest.raises(Forbidden):
            stranger.get(r.SECRETS, name, hub_ns)

    # the copies go with their placement
    hub.delete(r.COMPUTE_LEASES, "cfg", tenant)
    selector = f"kommons.io/placement={placement['metadata']['name']}"
    wait_for(
        lambda: not hub.list(r.SECRETS, hub_ns, label_selector=selector),
        timeout=120,
        what="the hub's copies gone with their placement",
        every=1.0,
    )


def test_a_missing_secret_holds_the_lease_until_it_exists(hub: Kube, tenant: str) -> None:
    hub.create(
        r.CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": tenant},
            "data": {"mode": "slow"},
        },
        tenant,
    )
    hub.create(
        r.SECRETS,
        secret(
            tenant,
            "registry",
            {".dockerconfigjson": '{"auths":{}}'},
            "kubernetes.io/dockerconfigjson",
        ),
        tenant,
    )
    hub.create(r.COMPUTE_LEASES, config_lease("later", tenant, secret_name="not-yet"), tenant)
    lease = wait_lease(
        hub,
        tenant,
        "later",
        lambda lease: condition(lease, "Scheduled").get("reason") == "ConfigNotFound",
        what="lease later waiting for its Secret",
    )
    message = condition(lease, "Scheduled")["message"]
    assert f"Secret not-yet (spec.configFrom[0]) does not exist in namespace {tenant}" in message
    assert condition(lease, "Scheduled")["status"] == "False"
    uid = lease["metadata"]["uid"]
    assert hub.list(r.LEASE_PLACEMENTS, label_selector=f"kommons.io/lease-uid={uid}") == []

    hub.create(r.SECRETS, secret(tenant, "not-yet", {"TOKEN": "now"}), tenant)
    wait_lease(hub, tenant, "later", running, what="lease later Running", timeout=120)


def test_a_template_setting_image_pull_secrets_is_refused(hub: Kube, tenant: str) -> None:
    body = lease_body("pulls", tenant, replicas=1)
    body["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "registry"}]
    with pytest.raises(Invalid) as info:
        hub.create(r.COMPUTE_LEASES, body, tenant)
    assert "spec.template.spec.imagePullSecrets" in info.value.message
    assert "spec.imagePullSecrets instead" in info.value.message
