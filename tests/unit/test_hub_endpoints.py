"""Unit tests of a lease's endpoints on the hub (``kommons.hub.endpoints``, ``plan_lease``).

Behaviour matrix:

- agent-reported URLs are provider-written data: accepted only with scheme http/https/tcp for
  a TCP port and udp for a UDP port, a DNS name or IP literal host, a port (required for
  tcp/udp) in 1..65535, no user info, path, query or fragment, at most 300 characters;
- a reported name the lease (or the placement) does not expose, or reported twice, is
  refused; refusals are named in ``Endpoints=False/InvalidEndpoint`` and never copied;
- accepted entries carry the placement's provider (never a name the agent wrote), sorted by
  name then provider; one per placement with several placements;
- ``Endpoints`` condition: no placement → NotPlaced; a placement that has not reported →
  EndpointsPending; an agent's False condition → its reason, message prefixed with the
  provider; all reported → True/Published; no ``expose`` → no condition, no endpoints;
- failover: while the new placement has not reported, the old provider's entries are kept;
  once it reports, ``EndpointChanged`` names the new and the old URL and provider;
- Events: ``EndpointPublished`` on a name's first URL, ``EndpointChanged`` on a change,
  ``EndpointWithdrawn`` (Warning) when an exposed name loses its URL; nothing when unchanged;
- through ``plan_lease``: the status gets the endpoints and the condition, the Events are
  planned once, a second identical step writes nothing; dropping ``expose`` drops both;
- scheduling: a lease with public ports goes only to a provider whose declared publishing mode
  can publish them (none: ``None``/undeclared; UDP: not ``Ingress``), the others rejected
  with that reason; a lease without public ports goes anywhere.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kommons.api import ComputeLease, Endpoint, ExposedPort, LeasePlacement
from kommons.hub.endpoints import accepted, lease_endpoints, url_problem
from tests.unit.test_hub_plan import lease_body, market, placed, provider_body, step

TCP = ExposedPort(name="http", port=8080, public=True)
UDP = ExposedPort(name="dns", port=53, protocol="UDP", public=True)
EXPOSE = [
    {"name": "http", "port": 8080, "public": True},
    {"name": "dns", "port": 53, "protocol": "UDP", "public": True},
]


@pytest.mark.parametrize(
    "url",
    [
        "https://http-1a2b.apps.example.org",
        "http://h.example.org:8080/",
        "tcp://203.0.113.7:31080",
        "tcp://workload.kommons-web.svc:8080",
        "tcp://[2001:db8::1]:80",
    ],
)
def test_good_urls_of_a_tcp_port(url: str) -> None:
    assert url_problem(url, TCP) == ""


@pytest.mark.parametrize(
    ("url", "port", "problem"),
    [
        ("udp://203.0.113.7:53", TCP, "scheme is one of tcp, http, https"),
        ("tcp://203.0.113.7:53", UDP, "scheme is one of udp"),
        ("ftp://h.example.org", TCP, "scheme"),
        ("javascript:alert(1)", TCP, "scheme"),
        ("tcp://h.example.org", TCP, "has no port"),
        ("https://user:pw@h.example.org", TCP, "user info"),
        ("https://h.example.org/login", TCP, "path, query or fragment"),
        ("https://h.example.org?x=1", TCP, "path, query or fragment"),
        ("https://h.example.org#x", TCP, "path, query or fragment"),
        ("https://bad_host.example.org", TCP, "neither a DNS name nor an IP"),
        ("https://", TCP, "no host"),
        ("tcp://h.example.org:0", TCP, "port 0"),
        ("tcp://h.example.org:70000", TCP, "malformed"),
        ("https://" + "a" * 300 + ".org", TCP, "longer than 300"),
    ],
)
def test_bad_urls_are_refused_naming_why(url: str, port: ExposedPort, problem: str) -> None:
    assert problem in url_problem(url, port)


def placement(
    provider: str,
    endpoints: list[dict[str, str]] | None = None,
    *,
    condition: tuple[str, str, str] | None = ("True", "Published", "published"),
    expose: list[dict[str, Any]] | None = None,
) -> LeasePlacement:
    """A placement of lease ``web``; ``condition`` is its agent's Endpoints condition."""
    status: dict[str, Any] = {"readyReplicas": 1, "phase": "Running"}
    if endpoints is not None:
        status["endpoints"] = endpoints
    if condition is not None:
        status["conditions"] = [
            {
                "type": "Endpoints",
                "status": condition[0],
                "reason": condition[1],
                "message": condition[2],
                "lastTransitionTime": "2026-12-01T11:00:00Z",
            }
        ]
    return LeasePlacement.model_validate(
        {
            "metadata": {"name": f"web-{provider}", "namespace": f"kommons-provider-{provider}"},
            "spec": {
                "leaseRef": {"namespace": "team-a", "name": "web", "uid": "uid-web"},
                "provider": provider,
                "replicas": 1,
                "resources": {"cpu": "1", "memory": "1Gi"},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
                "pricePerHour": "0.5",
                "billingAccount": "acct",
                "expose": EXPOSE if expose is None else expose,
            },
            "status": status,
        }
    )


def lease(
    expose: list[dict[str, Any]] | None = EXPOSE, endpoints: list[Endpoint] | None = None
) -> ComputeLease:
    body = lease_body(replicas=1, expose=expose)
    if endpoints:
        body["status"] = {"endpoints": [e.to_api() for e in endpoints]}
    return ComputeLease.model_validate(body)


HTTP_A = {"name": "http", "url": "https://http-1.apps.a.example"}
DNS_A = {"name": "dns", "url": "udp://198.51.100.1:30053"}


def test_accepted_entries_carry_the_placements_provider() -> None:
    good, bad = accepted(placement("prov-a", [HTTP_A, DNS_A]), {"http": TCP, "dns": UDP})
    assert bad == []
    assert [(e.name, e.url, e.provider) for e in good] == [
        ("http", HTTP_A["url"], "prov-a"),
        ("dns", DNS_A["url"], "prov-a"),
    ]


def test_names_not_exposed_or_repeated_and_bad_urls_are_refused() -> None:
    reported = [
        HTTP_A,
        {"name": "http", "url": "https://other.example"},
        {"name": "admin", "url": "https://admin.example"},
        {"name": "dns", "url": "tcp://198.51.100.1:53"},
    ]
    good, bad = accepted(placement("prov-a", reported), {"http": TCP, "dns": UDP})
    assert [e.url for e in good] == [HTTP_A["url"]]
    assert len(bad) == 3
    assert "'http' reported twice" in bad[0]
    assert "'admin' is not a port the lease exposes" in bad[1]
    assert bad[2].startswith("prov-a: dns: ")
    only_http = placement("prov-a", [HTTP_A, DNS_A], expose=[EXPOSE[0]])
    good, bad = accepted(only_http, {"http": TCP, "dns": UDP})
    assert [e.name for e in good] == ["http"]
    assert "'dns' is not a port the lease exposes" in bad[0]


def test_the_lease_lists_checked_endpoints_sorted_with_a_condition() -> None:
    placements = [
        placement("prov-b", [{"name": "http", "url": "tcp://198.51.100.2:31080"}]),
        placement("prov-a", [HTTP_A, DNS_A, {"name": "http", "url": "ftp://x"}]),
    ]
    out = lease_endpoints(lease(), placements, previous=None)
    assert [(e.name, e.provider) for e in out.endpoints or ()] == [
        ("dns", "prov-a"),
        ("http", "prov-a"),
        ("http", "prov-b"),
    ]
    assert out.gate is not None
    assert (out.gate.ok, out.gate.reason) == (False, "InvalidEndpoint")
    assert "prov-a" in out.gate.message
    assert [e.reason for e in out.events] == ["EndpointPublished", "EndpointPublished"]


@pytest.mark.parametrize(
    ("placements", "reason", "ok", "says"),
    [
        ([], "NotPlaced", False, "no replica"),
        ([placement("prov-a", None, condition=None)], "EndpointsPending", False, "prov-a"),
        (
            [placement("prov-a", [HTTP_A], condition=("False", "PortNotPublishable", "dns: no"))],
            "PortNotPublishable",
            False,
            "prov-a: dns: no",
        ),
        ([placement("prov-a", [HTTP_A, DNS_A])], "Published", True, "2 endpoint(s)"),
    ],
    ids=["unplaced", "unreported", "agent-reason", "published"],
)
def test_endpoints_condition(
    placements: list[LeasePlacement], reason: str, ok: bool, says: str
) -> None:
    gate = lease_endpoints(lease(), placements, previous=None).gate
    assert gate is not None
    assert (gate.ok, gate.reason) == (ok, reason)
    assert says in gate.message


def test_without_expose_there_is_no_condition_and_no_endpoint() -> None:
    out = lease_endpoints(lease(expose=None), [placement("prov-a", [HTTP_A])], previous=None)
    assert (out.endpoints, out.gate, out.events) == (None, None, [])


def test_failover_keeps_the_old_url_until_the_new_provider_reports() -> None:
    old = [
        Endpoint(name="http", url=HTTP_A["url"], provider="prov-a"),
        Endpoint(name="dns", url=DNS_A["url"], provider="prov-a"),
    ]
    waiting = lease_endpoints(
        lease(endpoints=old), [placement("prov-c", None, condition=None)], previous=old
    )
    assert waiting.endpoints == sorted(old, key=lambda e: e.name)
    assert waiting.events == []
    new_http = {"name": "http", "url": "tcp://198.51.100.3:31080"}
    new_dns = {"name": "dns", "url": "udp://198.51.100.3:31053"}
    moved = lease_endpoints(
        lease(endpoints=old), [placement("prov-c", [new_http, new_dns])], previous=old
    )
    assert [(e.name, e.url, e.provider) for e in moved.endpoints or ()] == [
        ("dns", new_dns["url"], "prov-c"),
        ("http", new_http["url"], "prov-c"),
    ]
    assert [(e.type, e.reason) for e in moved.events] == [
        ("Normal", "EndpointChanged"),
        ("Normal", "EndpointChanged"),
    ]
    http = moved.events[1].message
    assert http == (
        f"endpoint http is now at {new_http['url']} (prov-c); was {HTTP_A['url']} (prov-a)"
    )


def test_a_reported_placement_without_the_name_withdraws_it() -> None:
    old = [Endpoint(name="dns", url=DNS_A["url"], provider="prov-a")]
    refused = ("False", "PortNotPublishable", "dns is public UDP, but an Ingress")
    out = lease_endpoints(
        lease(endpoints=old), [placement("prov-c", [HTTP_A], condition=refused)], previous=old
    )
    assert [e.name for e in out.endpoints or ()] == ["http"]
    assert [(e.type, e.reason) for e in out.events] == [
        ("Warning", "EndpointWithdrawn"),
        ("Normal", "EndpointPublished"),
    ]
    assert DNS_A["url"] in out.events[0].message


def reporting(placements: list[LeasePlacement], reported: list[dict[str, str]]) -> list[Any]:
    out = []
    for p in placements:
        body = p.to_api()
        body["status"]["endpoints"] = reported
        body["status"]["conditions"] = [
            {
                "type": "Endpoints",
                "status": "True",
                "reason": "Published",
                "message": "2 endpoint(s) published",
                "lastTransitionTime": "2026-12-01T11:59:00Z",
            }
        ]
        out.append(LeasePlacement.model_validate(body))
    return out


def test_plan_writes_the_endpoints_once_with_their_event() -> None:
    view = market(publishing("p1", "NodePort", "0.02"))
    exposing = ComputeLease.model_validate(lease_body(replicas=1, expose=EXPOSE))
    first = step(exposing, view)
    assert first.create[0].spec.expose == exposing.spec.expose
    placements = reporting(placed(first, ready=1), [HTTP_A, DNS_A])
    plan = step(exposing, view, placements=placements)
    assert plan.status is not None
    assert [(e.name, e.provider) for e in plan.status.endpoints or ()] == [
        ("dns", "p1"),
        ("http", "p1"),
    ]
    condition = next(c for c in plan.status.conditions or () if c.type == "Endpoints")
    assert (condition.status, condition.reason) == ("True", "Published")
    assert [e.reason for e in plan.events if e.reason.startswith("Endpoint")] == [
        "EndpointPublished",
        "EndpointPublished",
    ]

    body = lease_body(replicas=1, expose=EXPOSE)
    body["status"] = plan.status.to_api()
    again = step(ComputeLease.model_validate(copy.deepcopy(body)), view, placements=placements)
    assert again.writes == 0
    assert again.events == []

    body["spec"].pop("expose")
    dropped = step(ComputeLease.model_validate(body), view, placements=placements)
    assert dropped.status is not None
    assert dropped.status.endpoints is None
    assert all(c.type != "Endpoints" for c in dropped.status.conditions or ())
    assert [e.reason for e in dropped.events if e.reason.startswith("Endpoint")] == []


def publishing(name: str, mode: str | None, cpu_price: str) -> dict[str, Any]:
    body = provider_body(name, cpu_price=cpu_price)
    if mode is not None:
        body["spec"]["expose"] = {"mode": mode}
    return body


def test_public_ports_are_placed_only_where_the_provider_can_publish_them() -> None:
    view = market(
        publishing("cheap", None, "0.01"),
        publishing("ingress", "Ingress", "0.02"),
        publishing("nodeport", "NodePort", "0.03"),
    )
    plan = step(ComputeLease.model_validate(lease_body(replicas=1, expose=EXPOSE)), view)
    assert [p.spec.provider for p in plan.create] == ["nodeport"]
    assert plan.status is not None
    assert plan.status.decision is not None
    rejected = plan.status.decision.rejected
    assert rejected["cheap"] == "publishes no public ports (expose.mode None)"
    assert rejected["ingress"].startswith("publishes through an Ingress")
    http_only = lease_body(replicas=1, expose=[EXPOSE[0]])
    plan = step(
        ComputeLease.model_validate(
            http_only | {"metadata": {**http_only["metadata"], "name": "api", "uid": "uid-api"}}
        ),
        view,
    )
    assert [p.spec.provider for p in plan.create] == ["ingress"]
    private = lease_body(replicas=1, expose=[{"name": "metrics", "port": 9090}])
    plan = step(
        ComputeLease.model_validate(
            private | {"metadata": {**private["metadata"], "name": "db", "uid": "uid-db"}}
        ),
        view,
    )
    assert [p.spec.provider for p in plan.create] == ["cheap"]
