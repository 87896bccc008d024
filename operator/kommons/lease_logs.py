"""``kommons logs``: a bounded tail of a lease's logs, relayed through the hub (pure parts).

No connection goes into a provider and the tenant holds no provider credentials:

1. the tenant sets annotation :data:`REQUEST` (``<nonce>:<tail lines>``) on its ComputeLease;
2. the hub copies it onto each live LeasePlacement of the lease;
3. each agent reads the tail of its placement's pods' logs in its own cluster and writes
   ConfigMap :func:`answer_name` in its own hub namespace, annotated with the nonce;
4. the hub gathers the answers into ConfigMap :func:`tenant_name` in the tenant's namespace
   (owned by the lease), saying in :data:`STATUS` which providers did not answer in time.

Everything here is pure: names, the request's format, the bounds and the two ConfigMaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kommons.api_names import PREFIX

REQUEST = f"{PREFIX}/logs-request"
"""Annotation ``<nonce>:<tail lines>`` on a lease (the tenant's) and its placements (the hub's)."""
STATUS = f"{PREFIX}/logs-status"
"""Annotation on the tenant's ConfigMap: ``complete``, or which providers did not answer."""
PROVIDER_LABEL = f"{PREFIX}/provider"

DEFAULT_TAIL_LINES = 100
MAX_TAIL_LINES = 1000
MAX_PODS = 20
"""Pods an agent reads per placement (the first by name); the rest are named as skipped."""
MAX_BYTES_PER_CONTAINER = 64 * 1024
MAX_BYTES_PER_PLACEMENT = 256 * 1024
MAX_BYTES_PER_LEASE = 768 * 1024
"""Under the 1 MiB of a ConfigMap, whatever an agent writes."""
ANSWER_SECONDS = 30.0
"""How long the hub waits for every placement's answer before it writes a partial one."""

_NONCE = re.compile(r"^[a-z0-9]{1,32}$")
_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")

JSON = dict[str, Any]


@dataclass(frozen=True)
class LogsRequest:
    """One ``kommons logs`` call: a fresh nonce and how many lines per container."""

    nonce: str
    tail_lines: int

    def annotation(self) -> str:
        """The value of :data:`REQUEST`."""
        return f"{self.nonce}:{self.tail_lines}"


def parse_request(value: str | None) -> LogsRequest | None:
    """The request in an annotation value; ``None`` when absent or malformed."""
    if not value:
        return None
    nonce, _, lines = value.partition(":")
    if not _NONCE.match(nonce) or not lines.isdigit():
        return None
    return LogsRequest(nonce, max(1, min(int(lines), MAX_TAIL_LINES)))


def request_of(metadata: Mapping[str, Any]) -> LogsRequest | None:
    """The request on an object's metadata, if any."""
    annotations = metadata.get("annotations") or {}
    return parse_request(annotations.get(REQUEST))


def answer_name(placement: str) -> str:
    """The agent's answer ConfigMap for a placement (in the provider's hub namespace)."""
    return f"kommons-logs-{placement}"[:253]


def tenant_name(lease: str) -> str:
    """The tenant's ConfigMap with the gathered logs of a lease (in the lease's namespace)."""
    return f"kommons-logs-{lease}"[:253]


def data_key(*parts: str) -> str:
    """A ConfigMap key from its parts (``pod.container``): only ``[-._a-zA-Z0-9]``."""
    return _KEY_UNSAFE.sub("_", ".".join(parts))[:253]


CUT = "[…cut]\n"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes, keeping its end (the tail is the point)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    keep = limit - len(CUT.encode())
    if keep <= 0:
        return ""
    return CUT + raw[-keep:].decode("utf-8", errors="ignore")


def _size(data: Mapping[str, str]) -> int:
    return sum(len(text.encode()) for text in data.values())


def _within(
    entries: Iterable[tuple[str, str]], *, total: int, each: int | None = None
) -> dict[str, str]:
    """``entries`` in order, each clipped to ``each`` bytes, until ``total`` bytes are used."""
    out: dict[str, str] = {}
    left = total
    for key, text in entries:
        if left <= 0:
            break
        out[key] = clip(text, left if each is None else min(each, left))
        left -= len(out[key].encode())
    return out


def answer(
    placement: str, namespace: str, provider: str, request: LogsRequest, logs: Mapping[str, str]
) -> JSON:
    """The agent's answer: ``logs`` (``pod.container`` → text), each and all bounded."""
    entries = ((data_key(key), logs[key]) for key in sorted(logs))
    data = _within(entries, each=MAX_BYTES_PER_CONTAINER, total=MAX_BYTES_PER_PLACEMENT)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": answer_name(placement),
            "namespace": namespace,
            "labels": {PROVIDER_LABEL: provider},
            "annotations": {REQUEST: request.annotation()},
        },
        "data": data,
    }


def answered(body: Mapping[str, Any] | None, request: LogsRequest) -> bool:
    """Whether an answer ConfigMap answers this very request."""
    if body is None:
        return False
    found = request_of(body.get("metadata") or {})
    return found is not None and found.nonce == request.nonce


def gather(
    lease: Mapping[str, Any],
    request: LogsRequest,
    answers: Mapping[str, tuple[str, Mapping[str, Any] | None]],
    *,
    waited_out: bool,
) -> JSON | None:
    """The tenant's ConfigMap from the answers (``namespace/placement`` → (provider, answer)).

    ``None`` while some placement has not answered and the hub still waits; once every one
    answered (or ``waited_out``), the ConfigMap: keys ``<provider>.<pod>.<container>``, bounded
    per placement (whatever its agent wrote) and in all, and :data:`STATUS` naming the
    providers that did not answer.
    """
    late = {name for name, (_, body) in answers.items() if not answered(body, request)}
    if late and not waited_out:
        return None
    data: dict[str, str] = {}
    for name in sorted(answers):
        provider, body = answers[name]
        if name in late or body is None:
            continue
        left = MAX_BYTES_PER_LEASE - _size(data)
        entries = (
            (data_key(provider, str(key)), str(text))
            for key, text in sorted((body.get("data") or {}).items())
        )
        data.update(_within(entries, total=min(MAX_BYTES_PER_PLACEMENT, left)))
    missing = sorted({answers[name][0] for name in late})
    if not answers:
        status = "no replica is placed"
    elif missing:
        status = "no answer from " + ", ".join(missing)
    else:
        status = "complete"
    meta = lease.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": tenant_name(str(meta.get("name"))),
            "namespace": str(meta.get("namespace")),
            "annotations": {REQUEST: request.annotation(), STATUS: status},
            "ownerReferences": [
                {
                    "apiVersion": str(lease.get("apiVersion")),
                    "kind": "ComputeLease",
                    "name": str(meta.get("name")),
                    "uid": str(meta.get("uid")),
                }
            ],
        },
        "data": data,
    }
