"""Unit tests of a placement's endpoints on the provider (``kommons.agent.endpoints``, pure).

Behaviour matrix (exposed ports × the provider's ``expose.mode``):

- no ``expose``: no Service, no Ingress; quota 0 NodePorts, 0 LoadBalancers; the
  NetworkPolicy admits no ingress at all; egress rules unchanged;
- every mode: a ClusterIP Service ``workload`` with every exposed port (name, port,
  targetPort, protocol), selecting the placement's pods (the workload's own selector);
- ``None``: public ports are not published (``PortNotPublishable`` naming the port and the
  mode); they are admitted from the placement's own pods only, like non-public ones;
- ``Ingress``: one Ingress, one host ``<port>-<id>.<domain>`` per public TCP port, class as
  configured (absent: none), backend ``workload:<port name>``; a public UDP port is not
  publishable (reason names UDP and the Ingress); quota 0/0; the URL is
  ``<scheme>://<host>``; two placements never share a host;
- ``NodePort``: a ``workload-public`` NodePort Service with the public ports only; quota
  allows exactly that many NodePorts and no LoadBalancer; the URL is
  ``tcp|udp://<address>:<nodePort>``, pending (``AddressPending``) until the port is allocated;
- ``LoadBalancer``: a ``workload-public`` LoadBalancer Service; quota 1 LoadBalancer plus its
  NodePorts; the URL uses the load balancer's ip or hostname, pending until it has one; an
  IPv6 address is bracketed;
- NetworkPolicy: published public ports from anywhere (no ``from``), the other exposed ports
  from the placement's pods only (``podSelector: {}``), nothing else;
- non-public ports: ``tcp|udp://workload.<namespace>.svc:<port>``;
- objects no longer wanted (expose dropped, mode changed) are listed for deletion;
- the agent's plan: manifests applied in order (quota before the Services, the workload
  last); the placement's status carries the endpoints and the ``Endpoints`` condition,
  both removed once nothing is exposed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from kommons.agent import endpoints, plan, workload
from kommons.agent.config import ExposeConfig
from kommons.api import ENDPOINTS_CONDITION, ExposedPort, LeasePlacementStatus, get_condition
from kommons.api_names import LABEL_PLACEMENT
from tests.unit.test_agent_plan import body

HTTP = ExposedPort(name="http", port=8080, public=True)
DNS = ExposedPort(name="dns", port=5353, protocol="UDP", public=True)
METRICS = ExposedPort(name="metrics", port=9090)
PORTS = (HTTP, DNS, METRICS)
INGRESS = ExposeConfig(mode="Ingress", domain="apps.example.org", ingress_class_name="nginx")
NODEPORT = ExposeConfig(mode="NodePort", address="203.0.113.7")
BALANCER = ExposeConfig(mode="LoadBalancer")
NAME = "web-abc12-prov-a"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def work(ports: tuple[ExposedPort, ...] = PORTS, config: ExposeConfig | None = None) -> Any:
    return workload.PlacementWork(
        name=NAME,
        lease_namespace="team-a",
        lease_name="web",
        lease_uid="uid-1",
        replicas=2,
        cpu="500m",
        memory="256Mi",
        gpu_count=0,
        gpu_model=None,
        template={"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        expose=ports,
        publish=config,
    )


def by_kind(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def hard(w: Any) -> tuple[str, str]:
    quota = workload.resource_quota(w)["spec"]["hard"]
    return quota["services.nodeports"], quota["services.loadbalancers"]


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def test_nothing_exposed_nothing_served_nothing_admitted() -> None:
    w = work(ports=(), config=NODEPORT)
    assert workload.services(w) == []
    assert hard(w) == ("0", "0")
    policy = workload.network_policy(w)["spec"]
    assert policy["ingress"] == []
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == workload.network_policy(work())["spec"]["egress"]
    assert [m["kind"] for m in workload.manifests(w)] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "Deployment",
    ]


@pytest.mark.parametrize("config", [None, INGRESS, NODEPORT, BALANCER])
def test_a_cluster_ip_service_serves_every_exposed_port(config: ExposeConfig | None) -> None:
    w = work(config=config)
    service = by_kind(workload.services(w))[("Service", "workload")]
    assert service["metadata"]["namespace"] == workload.target_namespace(NAME)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {LABEL_PLACEMENT: NAME}
    assert service["spec"]["selector"] == workload.deployment(w)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"},
        {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
    ]


def test_mode_none_publishes_nothing_and_says_so() -> None:
    pub = endpoints.publication(PORTS, ExposeConfig())
    assert pub.public == ()
    assert [p.name for p, _ in pub.refused] == ["http", "dns"]
    assert "publishes no public ports" in pub.refused[0][1]
    w = work(config=None)
    assert set(by_kind(workload.services(w))) == {("Service", "workload")}
    assert hard(w) == ("0", "0")
    assert workload.network_policy(w)["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {}}],
            "ports": [*tcp(8080), {"protocol": "UDP", "port": 5353}, *tcp(9090)],
        }
    ]


def test_ingress_publishes_public_tcp_ports_under_the_domain() -> None:
    w = work(config=INGRESS)
    objects = by_kind(workload.services(w))
    assert set(objects) == {("Service", "workload"), ("Ingress", "workload")}
    ingress = objects[("Ingress", "workload")]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == endpoints.host(NAME, HTTP, "apps.example.org")
    assert rule["host"].startswith("http-")
    assert rule["host"].endswith(".apps.example.org")
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "workload", "port": {"name": "http"}}},
        }
    ]
    assert hard(w) == ("0", "0")
    assert workload.network_policy(w)["spec"]["ingress"] == [
        {"ports": tcp(8080)},
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "UDP", "port": 5353}, *tcp(9090)]},
    ]
    pub = workload.publication(w)
    assert [(p.name, "UDP" in why and "Ingress" in why) for p, why in pub.refused] == [
        ("dns", True)
    ]


def test_ingress_class_is_optional_and_hosts_are_per_placement() -> None:
    config = ExposeConfig(mode="Ingress", domain="apps.example.org")
    ingress = by_kind(workload.services(work(config=config)))[("Ingress", "workload")]
    assert "ingressClassName" not in ingress["spec"]
    other = endpoints.host("web-abc12-prov-b", HTTP, "apps.example.org")
    assert other != endpoints.host(NAME, HTTP, "apps.example.org")
    long_name = ExposedPort(name="p" * 63, port=80, public=True)
    label = endpoints.host(NAME, long_name, "apps.example.org").split(".")[0]
    assert len(label) <= 63


def test_nodeport_publishes_public_ports_and_the_quota_allows_exactly_them() -> None:
    w = work(config=NODEPORT)
    objects = by_kind(workload.services(w))
    assert set(objects) == {("Service", "workload"), ("Service", "workload-public")}
    public = objects[("Service", "workload-public")]
    assert public["spec"]["type"] == "NodePort"
    assert public["spec"]["selector"] == {LABEL_PLACEMENT: NAME}
    assert [p["name"] for p in public["spec"]["ports"]] == ["http", "dns"]
    assert hard(w) == ("2", "0")
    assert hard(work(ports=(HTTP, METRICS), config=NODEPORT)) == ("1", "0")
    assert hard(work(ports=(METRICS,), config=NODEPORT)) == ("0", "0")
    assert workload.network_policy(w)["spec"]["ingress"] == [
        {"ports": [*tcp(8080), {"protocol": "UDP", "port": 5353}]},
        {"from": [{"podSelector": {}}], "ports": tcp(9090)},
    ]
    assert set(by_kind(workload.services(work(ports=(METRICS,), config=NODEPORT)))) == {
        ("Service", "workload")
    }


def test_load_balancer_quota_counts_the_balancer_and_its_node_ports() -> None:
    w = work(config=BALANCER)
    public = by_kind(workload.services(w))[("Service", "workload-public")]
    assert public["spec"]["type"] == "LoadBalancer"
    assert hard(w) == ("2", "1")
    assert hard(work(ports=(METRICS,), config=BALANCER)) == ("0", "0")


def test_suspended_placement_keeps_its_services_and_their_quota() -> None:
    w = replace(work(config=NODEPORT), suspend=True)
    assert hard(w) == ("2", "0")
    assert workload.resource_quota(w)["spec"]["hard"]["pods"] == "0"
    assert ("Service", "workload-public") in by_kind(workload.services(w))


def service(name: str, ports: dict[str, int] | None = None, lb: Any = None) -> dict[str, Any]:
    spec = {"ports": [{"name": k, "nodePort": v} for k, v in (ports or {}).items()]}
    status = {"loadBalancer": {"ingress": lb}} if lb else {}
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def observe(config: ExposeConfig | None, objects: dict[tuple[str, str], Any]) -> Any:
    return endpoints.observe(
        endpoints.publication(PORTS, config),
        placement=NAME,
        namespace="kommons-web",
        config=config,
        objects=objects,
    )


def urls(observed: Any) -> dict[str, str]:
    return {e.name: e.url for e in observed.endpoints}


def test_observed_ingress_urls_and_the_refused_udp_port() -> None:
    seen = observe(INGRESS, {("Service", "workload"): {}, ("Ingress", "workload"): {}})
    host = endpoints.host(NAME, HTTP, "apps.example.org")
    assert urls(seen) == {
        "http": f"https://{host}",
        "metrics": "tcp://workload.kommons-web.svc:9090",
    }
    assert (seen.ok, seen.reason) == (False, "PortNotPublishable")
    assert "dns" in seen.message
    http = ExposeConfig(mode="Ingress", domain="apps.example.org", scheme="http")
    seen = observe(http, {("Service", "workload"): {}, ("Ingress", "workload"): {}})
    assert urls(seen)["http"] == f"http://{host}"


def test_observed_node_ports_and_pending_until_allocated() -> None:
    objects = {
        ("Service", "workload"): {},
        ("Service", "workload-public"): service("workload-public", {"http": 31080, "dns": 31053}),
    }
    seen = observe(NODEPORT, objects)
    assert urls(seen) == {
        "dns": "udp://203.0.113.7:31053",
        "http": "tcp://203.0.113.7:31080",
        "metrics": "tcp://workload.kommons-web.svc:9090",
    }
    assert (seen.ok, seen.reason) == (True, "Published")
    assert [e.name for e in seen.endpoints] == ["dns", "http", "metrics"]
    pending = observe(NODEPORT, {("Service", "workload"): {}})
    assert set(urls(pending)) == {"metrics"}
    assert (pending.ok, pending.reason) == (False, "AddressPending")
    assert "http" in pending.message


def test_observed_load_balancer_address() -> None:
    base = {("Service", "workload"): {}}
    none_yet = observe(BALANCER, base | {("Service", "workload-public"): service("p")})
    assert (none_yet.ok, none_yet.reason) == (False, "AddressPending")
    assert "load balancer" in none_yet.message
    lb = service("p", lb=[{"hostname": "lb.example.net"}])
    seen = observe(BALANCER, base | {("Service", "workload-public"): lb})
    assert urls(seen)["http"] == "tcp://lb.example.net:8080"
    v6 = service("p", lb=[{"ip": "2001:db8::1"}])
    assert urls(observe(BALANCER, base | {("Service", "workload-public"): v6}))["dns"] == (
        "udp://[2001:db8::1]:5353"
    )


def test_missing_service_is_pending() -> None:
    seen = endpoints.observe(
        endpoints.publication((METRICS,), None),
        placement=NAME,
        namespace="ns",
        config=None,
        objects={},
    )
    assert seen.endpoints == ()
    assert seen.reason == "AddressPending"


def test_objects_no_longer_wanted_are_listed_for_deletion() -> None:
    assert endpoints.undesired(workload.services(work(ports=()))) == list(endpoints.OBJECTS)
    assert endpoints.undesired(workload.services(work(config=INGRESS))) == [
        ("Service", "workload-public")
    ]
    assert endpoints.undesired(workload.services(work(config=NODEPORT))) == [
        ("Ingress", "workload")
    ]


def exposing_body() -> dict[str, Any]:
    raw = body()
    raw["spec"]["expose"] = [p.model_dump(by_alias=True) for p in PORTS]
    return raw


def test_plan_applies_the_quota_before_the_services_and_the_workload_last() -> None:
    placement = plan.parse_placement(exposing_body())
    manifests = plan.desired_manifests(placement, runtime_class=None, publish=NODEPORT)
    kinds = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert kinds == [
        ("Namespace", "kommons-web-abc12-prov-a"),
        ("ResourceQuota", "kommons-lease"),
        ("LimitRange", "kommons-lease"),
        ("NetworkPolicy", "kommons-default-deny"),
        ("Service", "workload"),
        ("Service", "workload-public"),
        ("Deployment", "workload"),
    ]
    assert plan.undesired_endpoint_objects(manifests) == [("Ingress", "workload")]
    quota = manifests[1]["spec"]["hard"]
    assert quota["services.nodeports"] == "2"


def test_status_carries_the_endpoints_and_drops_them_with_expose() -> None:
    placement = plan.parse_placement(exposing_body())
    objects = {("Service", "workload"): {}, ("Ingress", "workload"): {}}
    observed = plan.observe_endpoints(placement, objects, publish=INGRESS)
    status = plan.with_endpoints(LeasePlacementStatus(), observed, generation=3, now=NOW)
    assert [e.name for e in status.endpoints or ()] == ["http", "metrics"]
    condition = get_condition(status.conditions, ENDPOINTS_CONDITION)
    assert condition is not None
    assert (condition.status, condition.reason) == ("False", "PortNotPublishable")
    assert condition.observed_generation == 3

    plain = plan.parse_placement(body())
    assert plan.observe_endpoints(plain, objects, publish=INGRESS) is None
    cleared = plan.with_endpoints(status, None, generation=4, now=NOW)
    assert cleared.endpoints is None
    assert get_condition(cleared.conditions, ENDPOINTS_CONDITION) is None
