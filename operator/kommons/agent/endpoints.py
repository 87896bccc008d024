"""Publish a placement's exposed ports on the provider cluster (pure).

A lease's ``expose`` entries become, in the placement's namespace:

- a ``ClusterIP`` Service ``workload`` with every exposed port (selector: the placement's pods);
- for the ``public: true`` ports, the provider's way in, chosen in its agent config
  (:class:`~kommons.agent.config.ExposeConfig`): an ``Ingress`` ``workload`` with one host
  ``<port>-<id>.<domain>`` per public TCP port (mode ``Ingress``), or a Service
  ``workload-public`` of type ``NodePort`` / ``LoadBalancer`` with the public ports only.

A public port the provider's mode cannot publish (any port with mode ``None``, a UDP port
behind an Ingress) is not published: it stays reachable like a non-public one and the
placement's ``Endpoints`` condition says why (``PortNotPublishable``) — never silently.

The NetworkPolicy admits the published public ports from anywhere and the other exposed ports
from the placement's own pods only; the ResourceQuota allows exactly the NodePorts and
LoadBalancers the public Service needs. The agent reports one URL per exposed port
(:func:`observe`): the public one for a published public port, the in-cluster one for a
non-public port, none for a public port it cannot publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kommons.agent.config import ExposeConfig
from kommons.api.lease import ExposedPort
from kommons.api.placement import ENDPOINTS_CONDITION, PlacementEndpoint
from kommons.api.provider import PublishMode
from kommons.api_names import LABEL_PLACEMENT

JSON = dict[str, Any]

SERVICE_NAME = "workload"
"""The ``ClusterIP`` Service with every exposed port."""
PUBLIC_SERVICE_NAME = "workload-public"
"""The ``NodePort``/``LoadBalancer`` Service with the published public ports."""
INGRESS_NAME = "workload"
"""The ``Ingress`` of the published public ports (mode ``Ingress``)."""

PUBLISHED = "Published"
"""Reason: every exposed port has its endpoint."""
NOT_PUBLISHABLE = "PortNotPublishable"
"""Reason: a public port the provider's mode cannot publish (it is not published)."""
ADDRESS_PENDING = "AddressPending"
"""Reason: an object is not there yet, or its load balancer has no address yet."""

OBJECTS: tuple[tuple[str, str], ...] = (
    ("Service", SERVICE_NAME),
    ("Service", PUBLIC_SERVICE_NAME),
    ("Ingress", INGRESS_NAME),
)
"""Every (kind, name) this module may create in a placement's namespace."""


@dataclass(frozen=True)
class Publication:
    """Which exposed ports the provider publishes, and how."""

    mode: PublishMode
    """The provider's publishing mode."""
    public: tuple[ExposedPort, ...] = ()
    """``public: true`` ports the mode publishes."""
    internal: tuple[ExposedPort, ...] = ()
    """Ports reachable from the placement's own pods only: ``public: false`` ones and
    public ones the mode cannot publish."""
    refused: tuple[tuple[ExposedPort, str], ...] = ()
    """Public ports the mode cannot publish, with why."""

    @property
    def ports(self) -> tuple[ExposedPort, ...]:
        """Every exposed port."""
        return self.public + self.internal

    @property
    def public_service_type(self) -> str | None:
        """``NodePort``/``LoadBalancer`` when a public Service is needed, else ``None``."""
        if self.public and self.mode in ("NodePort", "LoadBalancer"):
            return self.mode
        return None


def _refusal(port: ExposedPort, mode: PublishMode) -> str:
    """Why ``mode`` cannot publish ``port``, or ``""`` when it can."""
    if mode == "None":
        return (
            f"port {port.name} is public, but this provider publishes no public ports (its"
            " agent's expose.mode is None); it is reachable from the lease's own pods only"
        )
    if mode == "Ingress" and port.protocol != "TCP":
        return (
            f"port {port.name} is public {port.protocol}, but this provider publishes through"
            " an Ingress, which carries HTTP over TCP only; it is reachable from the lease's"
            " own pods only"
        )
    return ""


def publication(ports: Sequence[ExposedPort], config: ExposeConfig | None) -> Publication:
    """Sort a placement's exposed ports by how the provider's ``config`` publishes them."""
    mode: PublishMode = config.mode if config is not None else "None"
    public: list[ExposedPort] = []
    internal: list[ExposedPort] = []
    refused: list[tuple[ExposedPort, str]] = []
    for port in ports:
        why = _refusal(port, mode) if port.public else ""
        if port.public and not why:
            public.append(port)
            continue
        internal.append(port)
        if why:
            refused.append((port, why))
    return Publication(mode, tuple(public), tuple(internal), tuple(refused))


def quota(pub: Publication) -> dict[str, str]:
    """``services.nodeports`` and ``services.loadbalancers`` the public Service needs.

    A ``LoadBalancer`` Service allocates a NodePort per port too (Kubernetes' quota counts
    them); nothing else may use either.
    """
    kind = pub.public_service_type
    return {
        "services.loadbalancers": "1" if kind == "LoadBalancer" else "0",
        "services.nodeports": str(len(pub.public)) if kind else "0",
    }


def _policy_ports(ports: Sequence[ExposedPort]) -> list[JSON]:
    return [{"protocol": p.protocol, "port": p.port} for p in ports]


def ingress_rules(pub: Publication) -> list[JSON]:
    """NetworkPolicy ingress rules: exactly the exposed ports.

    Published public ports from anywhere, the other exposed ports from the placement's own
    pods (its namespace) only; nothing else.
    """
    rules: list[JSON] = []
    if pub.public:
        rules.append({"ports": _policy_ports(pub.public)})
    if pub.internal:
        rules.append({"from": [{"podSelector": {}}], "ports": _policy_ports(pub.internal)})
    return rules


def host(placement: str, port: ExposedPort, domain: str) -> str:
    """The Ingress host of a public port: ``<port>-<id>.<domain>``, a DNS label per part.

    ``id`` is derived from the placement's name, so two placements never share a host.
    """
    digest = hashlib.sha256(placement.encode()).hexdigest()[:10]
    return f"{port.name[:52].rstrip('-')}-{digest}.{domain}"


def _service_ports(ports: Sequence[ExposedPort]) -> list[JSON]:
    return [
        {"name": p.name, "port": p.port, "targetPort": p.port, "protocol": p.protocol}
        for p in ports
    ]


def manifests(
    pub: Publication,
    *,
    placement: str,
    namespace: str,
    labels: Mapping[str, str],
    config: ExposeConfig | None,
) -> list[JSON]:
    """The Services (and Ingress) of a placement's exposed ports; none when it exposes none."""
    if not pub.ports:
        return []
    meta = {"namespace": namespace, "labels": dict(labels)}
    selector = {LABEL_PLACEMENT: placement}
    out: list[JSON] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE_NAME, **meta},
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": _service_ports(pub.ports),
            },
        }
    ]
    kind = pub.public_service_type
    if kind is not None:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": PUBLIC_SERVICE_NAME, **meta},
                "spec": {"type": kind, "selector": selector, "ports": _service_ports(pub.public)},
            }
        )
    if pub.mode == "Ingress" and pub.public and config is not None and config.domain:
        spec: JSON = {
            "rules": [
                {
                    "host": host(placement, port, config.domain),
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": SERVICE_NAME, "port": {"name": port.name}}
                                },
                            }
                        ]
                    },
                }
                for port in pub.public
            ]
        }
        if config.ingress_class_name:
            spec["ingressClassName"] = config.ingress_class_name
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": INGRESS_NAME, **meta},
                "spec": spec,
            }
        )
    return out


def undesired(objects: Sequence[JSON]) -> list[tuple[str, str]]:
    """(kind, name) of this module's objects that ``objects`` does not contain: to delete.

    They go when the lease stopped exposing ports or the provider changed its mode.
    """
    wanted = {(o["kind"], o["metadata"]["name"]) for o in objects}
    return [key for key in OBJECTS if key not in wanted]


@dataclass(frozen=True)
class Observed:
    """The endpoints the agent reports, and its ``Endpoints`` condition."""

    endpoints: tuple[PlacementEndpoint, ...]
    ok: bool
    reason: str
    message: str


def _scheme(port: ExposedPort) -> str:
    return port.protocol.lower()


def _lb_address(service: Mapping[str, Any] | None) -> str:
    """The first address a LoadBalancer Service's status shows, or ``""``."""
    status = (service or {}).get("status") or {}
    for item in (status.get("loadBalancer") or {}).get("ingress") or ():
        if isinstance(item, Mapping):
            address = item.get("ip") or item.get("hostname")
            if address:
                return str(address)
    return ""


def _node_ports(service: Mapping[str, Any] | None) -> dict[str, int]:
    ports = ((service or {}).get("spec") or {}).get("ports") or ()
    return {
        str(p.get("name")): int(p["nodePort"])
        for p in ports
        if isinstance(p, Mapping) and p.get("nodePort")
    }


def observe(
    pub: Publication,
    *,
    placement: str,
    namespace: str,
    config: ExposeConfig | None,
    objects: Mapping[tuple[str, str], JSON],
) -> Observed:
    """The endpoint of every exposed port, from what the provider cluster shows.

    ``objects`` are this module's objects that exist, by (kind, name). A published public
    port's URL is ``https://<host>`` (Ingress), ``tcp://<address>:<nodePort>`` (NodePort)
    or ``tcp://<load balancer address>:<port>`` (LoadBalancer); a non-public port's is the
    in-cluster ``tcp://workload.<namespace>.svc:<port>`` (``udp://`` for UDP). A public port
    the mode cannot publish has none (the condition is ``PortNotPublishable``).
    """
    endpoints: list[PlacementEndpoint] = []
    pending: list[str] = []
    service = objects.get(("Service", SERVICE_NAME))
    public = objects.get(("Service", PUBLIC_SERVICE_NAME))
    refused = {port.name for port, _ in pub.refused}
    for port in pub.internal:
        if port.name in refused:  # asked public, not published: no URL, the condition says why
            continue
        if service is None:
            pending.append(f"port {port.name}: Service {SERVICE_NAME} not created yet")
            continue
        url = f"{_scheme(port)}://{SERVICE_NAME}.{namespace}.svc:{port.port}"
        endpoints.append(PlacementEndpoint(name=port.name, url=url))
    node_ports = _node_ports(public)
    lb_address = _lb_address(public)
    for port in pub.public:
        url = ""
        if pub.mode == "Ingress" and config is not None and config.domain:
            if ("Ingress", INGRESS_NAME) in objects:
                url = f"{config.scheme}://{host(placement, port, config.domain)}"
            else:
                pending.append(f"port {port.name}: Ingress {INGRESS_NAME} not created yet")
        elif pub.mode == "NodePort" and config is not None and config.address:
            if port.name in node_ports:
                url = f"{_scheme(port)}://{_bracket(config.address)}:{node_ports[port.name]}"
            else:
                pending.append(f"port {port.name}: no NodePort allocated yet")
        elif pub.mode == "LoadBalancer":
            if lb_address:
                url = f"{_scheme(port)}://{_bracket(lb_address)}:{port.port}"
            else:
                pending.append(f"port {port.name}: the load balancer has no address yet")
        if url:
            endpoints.append(PlacementEndpoint(name=port.name, url=url))
    ordered = tuple(sorted(endpoints, key=lambda e: e.name))
    if pub.refused:
        message = "; ".join(why for _, why in pub.refused)
        return Observed(ordered, False, NOT_PUBLISHABLE, message)
    if pending:
        return Observed(ordered, False, ADDRESS_PENDING, "; ".join(pending))
    return Observed(ordered, True, PUBLISHED, f"{len(ordered)} endpoint(s) published")


def _bracket(address: str) -> str:
    """An IPv6 literal in brackets, as a URL needs it."""
    return f"[{address}]" if ":" in address else address


__all__ = [
    "ADDRESS_PENDING",
    "ENDPOINTS_CONDITION",
    "INGRESS_NAME",
    "NOT_PUBLISHABLE",
    "OBJECTS",
    "PUBLIC_SERVICE_NAME",
    "PUBLISHED",
    "SERVICE_NAME",
    "Observed",
    "Publication",
    "host",
    "ingress_rules",
    "manifests",
    "observe",
    "publication",
    "quota",
    "undesired",
]
