"""A lease's ``status.endpoints`` from its placements' reports (pure).

What an agent reports in ``LeasePlacement.status.endpoints`` is provider-written data: the hub
copies an entry to the lease only when it names a port the lease (and the placement) exposes,
once per placement, and its URL has the expected shape (:func:`url_problem`): ``http``/``https``
(a TCP port behind the provider's Ingress), ``tcp``/``udp`` matching the port's protocol, a DNS
name or IP literal as host, a port in 1..65535 (required for ``tcp``/``udp``), no user info,
query, fragment or path, at most :data:`~kommons.api.placement.ENDPOINT_URL_MAX` characters.
Anything else is dropped and named in the lease's ``Endpoints`` condition (``InvalidEndpoint``).

Failover: a placement that has not reported yet (a new one) keeps the lease's previous entries
of the names nobody reports, so the old URL stays listed until its replacement reports; then
the hub posts ``EndpointChanged`` with the new and the old URL and provider.

Events: ``EndpointPublished`` (a name gets its first URL), ``EndpointChanged`` (its URL or
provider changed), ``EndpointWithdrawn`` (Warning: an exposed name lost its URL).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from kommons.api import (
    ENDPOINTS_CONDITION,
    ComputeLease,
    Endpoint,
    ExposedPort,
    LeasePlacement,
    get_condition,
)
from kommons.api.placement import ENDPOINT_URL_MAX

SCHEMES = {"TCP": ("tcp", "http", "https"), "UDP": ("udp",)}
"""URL schemes an endpoint of a port of each protocol may have."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_PROBLEMS = 3
"""Invalid reports quoted in the condition's message; further ones are counted."""


def _host_problem(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return ""
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in host.split(".")):
        return f"host {host!r} is neither a DNS name nor an IP address"
    return ""


def url_problem(url: str, port: ExposedPort) -> str:
    """What is wrong with an agent-reported ``url`` for ``port``, or ``""`` when it is fine."""
    if len(url) > ENDPOINT_URL_MAX:
        return f"URL longer than {ENDPOINT_URL_MAX} characters"
    try:
        parts = urlsplit(url)
        number = parts.port
    except ValueError as exc:
        return f"URL {url!r} is malformed: {exc}"
    schemes = SCHEMES[port.protocol]
    if parts.scheme not in schemes:
        allowed = ", ".join(schemes)
        return f"URL {url!r}: a {port.protocol} port's scheme is one of {allowed}"
    if parts.username is not None or parts.password is not None:
        return f"URL {url!r} carries user info"
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        return f"URL {url!r} has a path, query or fragment"
    host = parts.hostname or ""
    if not host:
        return f"URL {url!r} has no host"
    problem = _host_problem(host)
    if problem:
        return f"URL {url!r}: {problem}"
    if parts.scheme in ("tcp", "udp") and number is None:
        return f"URL {url!r} has no port"
    if number == 0:
        return f"URL {url!r}: port 0"
    return ""


def accepted(
    placement: LeasePlacement, exposed: Mapping[str, ExposedPort]
) -> tuple[list[Endpoint], list[str]]:
    """The endpoints of ``placement`` the hub accepts, and why it refused the others.

    ``exposed`` are the lease's exposed ports by name; a name the placement was not asked to
    expose is refused too.
    """
    status = placement.status
    if status is None or not status.endpoints:
        return [], []
    asked = {p.name for p in placement.spec.expose or ()}
    provider = placement.spec.provider
    out: list[Endpoint] = []
    problems: list[str] = []
    seen: set[str] = set()
    for reported in status.endpoints:
        port = exposed.get(reported.name)
        if port is None or reported.name not in asked:
            problems.append(f"{provider}: {reported.name!r} is not a port the lease exposes")
            continue
        if reported.name in seen:
            problems.append(f"{provider}: {reported.name!r} reported twice")
            continue
        seen.add(reported.name)
        problem = url_problem(reported.url, port)
        if problem:
            problems.append(f"{provider}: {reported.name}: {problem}")
            continue
        out.append(Endpoint(name=reported.name, url=reported.url, provider=provider))
    return out, problems


def _reported(placement: LeasePlacement) -> bool:
    """The placement's agent has reported its endpoints (its ``Endpoints`` condition)."""
    status = placement.status
    return status is not None and get_condition(status.conditions, ENDPOINTS_CONDITION) is not None


@dataclass(frozen=True)
class EndpointsGate:
    """The lease's ``Endpoints`` condition."""

    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class EndpointEvent:
    """An Event to post about an endpoint."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class LeaseEndpoints:
    """The lease's endpoints, its ``Endpoints`` condition and the Events to post."""

    endpoints: list[Endpoint] | None
    gate: EndpointsGate | None
    """``None`` when the lease exposes nothing (the condition is removed)."""
    events: list[EndpointEvent] = field(default_factory=list)


def _where(entries: Sequence[Endpoint]) -> str:
    return ", ".join(f"{e.url} ({e.provider})" for e in entries)


def _events(
    old: Sequence[Endpoint], new: Sequence[Endpoint], exposed: Mapping[str, ExposedPort]
) -> list[EndpointEvent]:
    events: list[EndpointEvent] = []
    for name in sorted({e.name for e in old} | {e.name for e in new}):
        before = [e for e in old if e.name == name]
        after = [e for e in new if e.name == name]
        key_before = {(e.url, e.provider) for e in before}
        key_after = {(e.url, e.provider) for e in after}
        if key_before == key_after:
            continue
        if not before:
            message = f"endpoint {name} published at {_where(after)}"
            events.append(EndpointEvent("Normal", "EndpointPublished", message))
        elif after:
            message = f"endpoint {name} is now at {_where(after)}; was {_where(before)}"
            events.append(EndpointEvent("Normal", "EndpointChanged", message))
        elif name in exposed:
            message = f"endpoint {name} withdrawn: was {_where(before)}"
            events.append(EndpointEvent("Warning", "EndpointWithdrawn", message))
    return events


def _gate(
    placements: Sequence[LeasePlacement], problems: Sequence[str], count: int
) -> EndpointsGate:
    if problems:
        shown = list(problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"and {len(problems) - MAX_PROBLEMS} more")
        return EndpointsGate(False, "InvalidEndpoint", "refused: " + "; ".join(shown))
    for placement in placements:
        status = placement.status
        condition = get_condition(status.conditions if status else None, ENDPOINTS_CONDITION)
        if condition is None:
            message = f"waiting for {placement.spec.provider} to report its endpoints"
            return EndpointsGate(False, "EndpointsPending", message)
        if condition.status != "True":
            return EndpointsGate(
                False, condition.reason, f"{placement.spec.provider}: {condition.message}"
            )
    return EndpointsGate(True, "Published", f"{count} endpoint(s) published")


def lease_endpoints(
    lease: ComputeLease,
    placements: Sequence[LeasePlacement],
    *,
    previous: Sequence[Endpoint] | None,
) -> LeaseEndpoints:
    """The lease's ``status.endpoints`` from its live placements (the module docstring).

    Args:
        lease: The lease (its ``spec.expose`` says which names may be listed).
        placements: Its live placements, as they will be after this step.
        previous: The lease's current ``status.endpoints``.
    """
    exposed = {p.name: p for p in lease.spec.expose or ()}
    old = list(previous or ())
    if not exposed:
        return LeaseEndpoints(None, None, _events(old, [], exposed))
    ordered = sorted(placements, key=lambda p: (p.spec.provider, p.metadata.name or ""))
    current: list[Endpoint] = []
    problems: list[str] = []
    for placement in ordered:
        good, bad = accepted(placement, exposed)
        current += good
        problems += bad
    if any(not _reported(p) for p in ordered):  # a new placement: keep the old until it reports
        listed = {e.name for e in current}
        current += [e for e in old if e.name in exposed and e.name not in listed]
    current.sort(key=lambda e: (e.name, e.provider or "", e.url))
    gate = (
        _gate(ordered, problems, len(current))
        if ordered
        else EndpointsGate(False, "NotPlaced", "no replica is placed yet")
    )
    return LeaseEndpoints(current or None, gate, _events(old, current, exposed))


__all__ = [
    "SCHEMES",
    "EndpointEvent",
    "EndpointsGate",
    "LeaseEndpoints",
    "accepted",
    "lease_endpoints",
    "url_problem",
]
