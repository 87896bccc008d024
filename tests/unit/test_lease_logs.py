"""``kommons logs``, the pure parts: the request, the bounds, the answer and the gathering.

Behaviour matrix:

- a request annotation ``<nonce>:<lines>`` parses; a malformed one is no request; lines are
  clamped to 1..MAX_TAIL_LINES;
- ``clip`` keeps the end of a text within the byte bound, marking the cut;
- an agent's answer is bounded per container and per placement, whatever the logs' size, and
  carries the nonce; keys are ConfigMap-safe;
- the hub waits while a placement has not answered this very nonce (an old answer does not
  count), then writes everything with ``complete``; when the wait is over it writes what came
  and names the providers that did not answer; a lease with no placement says so;
- the gathered ConfigMap is owned by the lease and bounded in all;
- the command renders one section per provider/pod/container.
"""

from __future__ import annotations

from typing import Any

import pytest

from kommons import lease_logs
from kommons.cli_logs import render
from kommons.lease_logs import (
    MAX_BYTES_PER_CONTAINER,
    MAX_BYTES_PER_LEASE,
    MAX_BYTES_PER_PLACEMENT,
    MAX_TAIL_LINES,
    LogsRequest,
    answer,
    clip,
    gather,
    parse_request,
)

LEASE: dict[str, Any] = {
    "apiVersion": "kommons.io/v1alpha1",
    "kind": "ComputeLease",
    "metadata": {"name": "web", "namespace": "team-a", "uid": "u-1"},
}
REQUEST = LogsRequest("abc123", 50)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc123:50", LogsRequest("abc123", 50)),
        ("abc123:0", LogsRequest("abc123", 1)),
        ("abc123:99999", LogsRequest("abc123", MAX_TAIL_LINES)),
        ("ABC:5", None),
        ("abc123", None),
        ("abc123:x", None),
        ("", None),
        (None, None),
    ],
)
def test_requests_parse_or_are_ignored(value: str | None, expected: LogsRequest | None) -> None:
    assert parse_request(value) == expected


def test_clip_keeps_the_end_within_the_bound() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    clipped = clip(text, 200)
    assert len(clipped.encode()) <= 200
    assert clipped.startswith(lease_logs.CUT)
    assert clipped.endswith("line 999\n")
    assert clip("short\n", 200) == "short\n"
    assert clip(text, 3) == ""


def test_an_answer_is_bounded_per_container_and_per_placement() -> None:
    huge = "x" * (MAX_BYTES_PER_CONTAINER * 3)
    logs = {f"web-{i}.app": huge for i in range(10)}
    body = answer("web-prov-a", "kommons-provider-prov-a", "prov-a", REQUEST, logs)
    sizes = [len(v.encode()) for v in body["data"].values()]
    assert max(sizes) <= MAX_BYTES_PER_CONTAINER
    assert sum(sizes) <= MAX_BYTES_PER_PLACEMENT
    assert body["metadata"]["name"] == "kommons-logs-web-prov-a"
    assert body["metadata"]["annotations"][lease_logs.REQUEST] == "abc123:50"
    odd = answer("p", "ns", "prov-a", REQUEST, {"pod/1:app": "hi"})
    assert list(odd["data"]) == ["pod_1_app"]


def _answer(provider: str, nonce: str = "abc123", **logs: str) -> dict[str, Any]:
    return answer("p-" + provider, "ns", provider, LogsRequest(nonce, 50), logs)


def test_the_hub_waits_for_every_placement_then_writes_them_all() -> None:
    waiting = {
        "p-a": ("prov-a", _answer("prov-a", **{"web-1.app": "a\n"})),
        "p-b": ("prov-b", None),
    }
    assert gather(LEASE, REQUEST, waiting, waited_out=False) is None
    stale = {**waiting, "p-b": ("prov-b", _answer("prov-b", nonce="old999", **{"w.app": "x"}))}
    assert gather(LEASE, REQUEST, stale, waited_out=False) is None
    done = {**waiting, "p-b": ("prov-b", _answer("prov-b", **{"web-2.app": "b\n"}))}
    body = gather(LEASE, REQUEST, done, waited_out=False)
    assert body is not None
    assert body["data"] == {"prov-a.web-1.app": "a\n", "prov-b.web-2.app": "b\n"}
    assert body["metadata"]["annotations"][lease_logs.STATUS] == "complete"
    assert body["metadata"]["name"] == "kommons-logs-web"
    assert body["metadata"]["namespace"] == "team-a"
    (owner,) = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ComputeLease", "web", "u-1")


def test_after_the_wait_what_came_is_written_and_the_silent_providers_named() -> None:
    answers = {
        "p-a": ("prov-a", _answer("prov-a", **{"web-1.app": "a\n"})),
        "p-b": ("prov-b", None),
    }
    body = gather(LEASE, REQUEST, answers, waited_out=True)
    assert body is not None
    assert body["data"] == {"prov-a.web-1.app": "a\n"}
    assert body["metadata"]["annotations"][lease_logs.STATUS] == "no answer from prov-b"
    nowhere = gather(LEASE, REQUEST, {}, waited_out=False)
    assert nowhere is not None
    assert nowhere["metadata"]["annotations"][lease_logs.STATUS] == "no replica is placed"


def test_what_the_hub_writes_is_bounded_whatever_the_agents_wrote() -> None:
    lying = {"data": {f"pod-{i}.app": "y" * MAX_BYTES_PER_PLACEMENT for i in range(8)}}
    lying["metadata"] = {"annotations": {lease_logs.REQUEST: REQUEST.annotation()}}
    answers = {f"p-{i}": (f"prov-{i}", lying) for i in range(6)}
    body = gather(LEASE, REQUEST, answers, waited_out=False)
    assert body is not None
    total = sum(len(v.encode()) for v in body["data"].values())
    assert total <= MAX_BYTES_PER_LEASE
    for i in range(6):
        mine = sum(len(v.encode()) for k, v in body["data"].items() if k.startswith(f"prov-{i}."))
        assert mine <= MAX_BYTES_PER_PLACEMENT


def test_render_one_section_per_container() -> None:
    text = render({"data": {"prov-b.web-2.app": "b", "prov-a.web-1.app": "a\n"}})
    assert text == "==> prov-a/web-1/app <==\na\n==> prov-b/web-2/app <==\nb\n"
