"""Endpoints on the real bed: ``spec.expose`` → Services, the provider's way in, lease status.

The bed has no ingress controller, no load balancer and no network path to kwok's pods: this
module checks the objects the agent writes and the status the hub shows, not traffic.

For this module prov-a's agent publishes through an ``Ingress`` (domain
``apps.prov-a.kommons.test``, class ``nginx``), prov-c's through a ``NodePort`` (address
``127.0.0.1``) and prov-b publishes nothing (the default); the hub runs with short failover
timeouts.

- the agents declare their modes: ``Provider.spec.expose.mode`` is Ingress / NodePort / None
  on the hub (the trust boundary lets an agent write that declaration);
- a lease exposing ``http`` (public TCP) and ``metrics`` (not public) lands on prov-a (the
  cheapest). On prov-a: a ClusterIP Service ``workload`` with both ports selecting exactly the
  placement's pods, an Ingress with one host under the domain for ``http`` (class nginx,
  backend ``workload:http``), no NodePort/LoadBalancer Service, a quota of 0 NodePorts and 0
  LoadBalancers, a NetworkPolicy admitting 8080/TCP from anywhere and 9090/TCP from the
  placement's own pods only. The lease lists ``http`` (``https://<host>``, prov-a) and
  ``metrics`` (in-cluster URL), ``Endpoints`` True;
- prov-a's agent is killed: the replicas fail over to prov-c, where a NodePort Service
  ``workload-public`` carries ``http``, the quota allows exactly 1 NodePort, the NetworkPolicy
  admits it from anywhere; the lease's ``http`` endpoint is now ``tcp://127.0.0.1:<its
  nodePort>`` on prov-c, and an ``EndpointChanged`` Event names the old and the new URL and
  provider;
- the tenant drops ``expose``: the Services go from prov-c, the quota is back to 0 NodePorts,
  the NetworkPolicy admits nothing, the lease lists no endpoint and has no Endpoints condition;
- a lease with a public UDP port is placed on prov-c only: the decision rejects prov-a (an
  Ingress carries no UDP) and prov-b (publishes no public ports) with those reasons; prov-c
  publishes it on a NodePort (``udp://127.0.0.1:<nodePort>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from kommons.api_names import LABEL_PLACEMENT, provider_namespace
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.processes import wait_for
from kommons_testbed.stack import Stack
from tests.integration.conftest import lease_body, wait_lease

INGRESS = "prov-a"
NODEPORT = "prov-c"
DOMAIN = "apps.prov-a.kommons.test"
PUBLISHING = {
    INGRESS: {"mode": "Ingress", "domain": DOMAIN, "ingressClassName": "nginx"},
    NODEPORT: {"mode": "NodePort", "address": "127.0.0.1"},
}
EXPOSE = [{"name": "http", "port": 8080, "public": True}, {"name": "metrics", "port": 9090}]
DNS = [{"name": "dns", "port": 5353, "protocol": "UDP", "public": True}]
TIMEOUT = 180.0
"""Generous deadline for the bed (2 shared cores); nothing here measures speed."""


def _restart_agents(stack: Stack, configs: dict[str, Any]) -> None:
    """Restart agents with ``configs``; wait for heartbeats of the new ones.

    A new agent heartbeats after it registered its declarations. The old ones are stopped
    first, and only heartbeats the hub saw a second later count (its times are whole seconds).
    """
    for provider in configs:
        stack.stop(f"agent-{provider}")
    since = datetime.now(UTC) + timedelta(seconds=1)
    for provider, config in configs.items():
        stack.start_agent(provider, config=config)
    stack.wait_providers_ready(timeout=120, since=since)


@pytest.fixture(scope="module", autouse=True)
def publishing(stack: Stack) -> Iterator[dict[str, Any]]:
    """prov-a and prov-c publish (Ingress, NodePort); the bed's configs again afterwards."""
    with stack.hub_with("--heartbeat-timeout", "10", "--replace-after", "20"):
        configs: dict[str, Any] = {}
        for provider, expose in PUBLISHING.items():
            config = yaml.safe_load(stack.agent_config(provider).read_text())
            path = stack.dir / f"{provider}.endpoints.agent.yaml"
            path.write_text(yaml.safe_dump({**config, "expose": expose}))
            configs[provider] = path
        _restart_agents(stack, configs)
        try:
            yield configs
        finally:
            _restart_agents(stack, dict.fromkeys(PUBLISHING))


def _condition(lease: dict[str, Any], type_: str) -> dict[str, Any]:
    for condition in (lease.get("status") or {}).get("conditions") or ():
        if condition["type"] == type_:
            return dict(condition)
    return {}


def _endpoints(lease: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in (lease.get("status") or {}).get("endpoints") or ()}


def _placement(hub: Kube, lease: dict[str, Any]) -> dict[str, Any]:
    summary = lease["status"]["placements"][0]
    return hub.get(
        r.LEASE_PLACEMENTS, summary["placementName"], provider_namespace(summary["provider"])
    )


def _ports(service: dict[str, Any]) -> set[tuple[str, int, str]]:
    return {(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]}


def _policy(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    policy = kube.get(r.NETWORK_POLICIES, "kommons-default-deny", namespace)
    return list(policy["spec"].get("ingress") or [])


def _quota(kube: Kube, namespace: str) -> dict[str, str]:
    hard = kube.get(r.RESOURCE_QUOTAS, "kommons-lease", namespace)["spec"]["hard"]
    return {k: hard[k] for k in ("services.nodeports", "services.loadbalancers")}


def _selects_the_pods(kube: Kube, namespace: str, service: dict[str, Any], placement: str) -> None:
    selector = service["spec"]["selector"]
    assert selector == {LABEL_PLACEMENT: placement}
    label = ",".join(f"{k}={v}" for k, v in selector.items())
    pods = kube.list(r.PODS, namespace, label_selector=label)
    names = sorted(p["metadata"]["name"] for p in kube.list(r.PODS, namespace))
    assert len(pods) == 1  # the placement's one replica, and nothing else in its namespace
    assert [p["metadata"]["name"] for p in pods] == names


def _events(hub: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in hub.list(r.EVENTS, namespace)
        if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") == reason
    ]


def test_agents_declare_their_publishing_mode(hub: Kube) -> None:
    modes = {
        name: (hub.get(r.PROVIDERS, name)["spec"].get("expose") or {}).get("mode")
        for name in ("prov-a", "prov-b", "prov-c")
    }
    assert modes == {"prov-a": "Ingress", "prov-b": "None", "prov-c": "NodePort"}


def test_a_public_udp_port_goes_where_it_can_be_published(
    hub: Kube, tenant: str, provider_kube: Callable[[str], Kube]
) -> None:
    body = lease_body("dns", tenant, replicas=1)
    body["spec"]["expose"] = DNS

    def published(lease: dict[str, Any]) -> bool:
        return (lease.get("status") or {}).get("phase") == "Running" and "dns" in _endpoints(lease)

    hub.create(r.COMPUTE_LEASES, body, tenant)
    lease = wait_lease(hub, tenant, "dns", published, what="dns published", timeout=TIMEOUT)
    assert lease["status"]["providers"] == NODEPORT
    rejected = lease["status"]["decision"]["rejected"]
    assert rejected[INGRESS] == "publishes through an Ingress (HTTP over TCP): no public UDP port"
    assert rejected["prov-b"] == "publishes no public ports (expose.mode None)"
    assert lease["status"]["decision"]["rejectedCounts"]["PortNotPublishable"] == 2
    placement = _placement(hub, lease)
    public = provider_kube(NODEPORT).get(
        r.SERVICES, "workload-public", placement["status"]["namespace"]
    )
    [port] = public["spec"]["ports"]
    assert (port["name"], port["protocol"]) == ("dns", "UDP")
    assert _endpoints(lease)["dns"] == {
        "name": "dns",
        "url": f"udp://127.0.0.1:{port['nodePort']}",
        "provider": NODEPORT,
    }
    hub.delete(r.COMPUTE_LEASES, "dns", tenant)


def test_exposed_ports_are_served_listed_and_follow_failover(
    hub: Kube, tenant: str, stack: Stack, provider_kube: Callable[[str], Kube]
) -> None:
    body = lease_body("web", tenant, replicas=1)
    body["spec"]["expose"] = EXPOSE
    hub.create(r.COMPUTE_LEASES, body, tenant)

    def on_ingress(lease: dict[str, Any]) -> bool:
        status = lease.get("status") or {}
        return (
            status.get("phase") == "Running"
            and set(_endpoints(lease)) == {"http", "metrics"}
            and _condition(lease, "Endpoints").get("status") == "True"
        )

    lease = wait_lease(hub, tenant, "web", on_ingress, what="endpoints on prov-a", timeout=TIMEOUT)
    assert lease["status"]["providers"] == INGRESS
    placement = _placement(hub, lease)
    name, namespace = placement["metadata"]["name"], placement["status"]["namespace"]
    kube = provider_kube(INGRESS)

    service = kube.get(r.SERVICES, "workload", namespace)
    assert service["spec"]["type"] == "ClusterIP"
    assert _ports(service) == {("http", 8080, "TCP"), ("metrics", 9090, "TCP")}
    _selects_the_pods(kube, namespace, service, name)
    assert kube.get_or_none(r.SERVICES, "workload-public", namespace) is None
    ingress = kube.get(r.INGRESSES, "workload", namespace)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"].endswith(f".{DOMAIN}")
    assert rule["host"].startswith("http-")
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "workload", "port": {"name": "http"}}
    assert _quota(kube, namespace) == {"services.nodeports": "0", "services.loadbalancers": "0"}
    assert _policy(kube, namespace) == [
        {"ports": [{"protocol": "TCP", "port": 8080}]},
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 9090}]},
    ]

    endpoints = _endpoints(lease)
    assert endpoints["http"] == {
        "name": "http",
        "url": f"https://{rule['host']}",
        "provider": INGRESS,
    }
    assert endpoints["metrics"]["url"] == f"tcp://workload.{namespace}.svc:9090"
    assert _condition(lease, "Endpoints")["reason"] == "Published"
    assert placement["status"]["endpoints"] == sorted(
        ({"name": n, "url": e["url"]} for n, e in endpoints.items()), key=lambda e: e["name"]
    )

    # --- prov-a's agent dies: the lease fails over to prov-c, which publishes by NodePort
    stack.kill(f"agent-{INGRESS}")
    try:

        def on_nodeport(lease: dict[str, Any]) -> bool:
            http = _endpoints(lease).get("http") or {}
            return (
                (lease.get("status") or {}).get("providers") == NODEPORT
                and http.get("provider") == NODEPORT
                and _condition(lease, "Endpoints").get("status") == "True"
            )

        lease = wait_lease(hub, tenant, "web", on_nodeport, what="failover", timeout=TIMEOUT)
        placement = _placement(hub, lease)
        name, namespace = placement["metadata"]["name"], placement["status"]["namespace"]
        kube = provider_kube(NODEPORT)
        public = kube.get(r.SERVICES, "workload-public", namespace)
        assert public["spec"]["type"] == "NodePort"
        assert _ports(public) == {("http", 8080, "TCP")}
        _selects_the_pods(kube, namespace, public, name)
        node_ports = {p["name"]: p["nodePort"] for p in public["spec"]["ports"]}
        assert _ports(kube.get(r.SERVICES, "workload", namespace)) == {
            ("http", 8080, "TCP"),
            ("metrics", 9090, "TCP"),
        }
        assert kube.get_or_none(r.INGRESSES, "workload", namespace) is None
        assert _quota(kube, namespace) == {
            "services.nodeports": "1",
            "services.loadbalancers": "0",
        }
        assert _policy(kube, namespace) == [
            {"ports": [{"protocol": "TCP", "port": 8080}]},
            {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 9090}]},
        ]
        endpoints = _endpoints(lease)
        assert endpoints["http"]["url"] == f"tcp://127.0.0.1:{node_ports['http']}"
        assert urlsplit(endpoints["metrics"]["url"]).hostname == f"workload.{namespace}.svc"
        changed = [
            e["message"]
            for e in _events(hub, tenant, "web", "EndpointChanged")
            if e["message"].startswith("endpoint http ")
        ]
        assert changed, "an EndpointChanged Event is posted for http"
        assert endpoints["http"]["url"] in changed[-1]
        assert f"({NODEPORT})" in changed[-1]
        assert "https://http-" in changed[-1]
        assert f"({INGRESS})" in changed[-1]
    finally:
        since = datetime.now(UTC)
        stack.start_agent(INGRESS, config=stack.dir / f"{INGRESS}.endpoints.agent.yaml")
        stack.wait_providers_ready(timeout=120, since=since)

    # --- the tenant stops exposing: the objects go, the quota and policy close again
    hub.patch(r.COMPUTE_LEASES, "web", {"spec": {"expose": None}}, tenant)
    lease = wait_lease(
        hub,
        tenant,
        "web",
        lambda lease: not _endpoints(lease) and not _condition(lease, "Endpoints"),
        what="endpoints withdrawn",
        timeout=TIMEOUT,
    )
    wait_for(
        lambda: not kube.list(r.SERVICES, namespace),
        timeout=TIMEOUT,
        what="the Services removed from prov-c",
        every=1.0,
    )
    assert _quota(kube, namespace) == {"services.nodeports": "0", "services.loadbalancers": "0"}
    assert _policy(kube, namespace) == []
    assert lease["status"]["providers"] == NODEPORT
