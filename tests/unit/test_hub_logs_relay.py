"""The hub's logs relay: one relay per lease at a time, the newest waiting request next.

Behaviour matrix:

- a request of a lease with no relay running is relayed at once;
- requests of the same lease arriving while its relay runs wait; only the newest of them is
  relayed after it (older waiting ones are dropped), then the lease is free again;
- another lease's request is not held up by a running relay;
- a lease that is deleted while a request waits drops that request;
- ``take`` hands each nonce over once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from kommons.api import LeasePlacement
from kommons.hub.logs_relay import LogsRelay
from kommons.lease_logs import REQUEST, LogsRequest


class RecordingRelay(LogsRelay):
    """A relay whose work is recorded; the first relay of lease ``a`` blocks until released."""

    def __init__(self) -> None:
        super().__init__(kube=None)  # type: ignore[arg-type]  # relay() never reaches the API
        self.started: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.first_started = threading.Event()
        self.done = threading.Semaphore(0)

    def relay(
        self, lease: Mapping[str, Any], request: LogsRequest, placements: Sequence[LeasePlacement]
    ) -> None:
        key = str(lease["metadata"]["name"])
        self.started.append((key, request.nonce))
        if len(self.started) == 1:
            self.first_started.set()
            assert self.release.wait(10), "the test never released the first relay"
        self.done.release()


def _lease(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team"}}


def _wait_done(relay: RecordingRelay, count: int) -> None:
    for _ in range(count):
        assert relay.done.acquire(timeout=10), "a relay did not finish"
    relay.threads.shutdown(wait=True)


def test_requests_arriving_during_a_relay_wait_and_only_the_newest_runs_next() -> None:
    relay = RecordingRelay()
    relay.submit("team/a", _lease("a"), LogsRequest("n1", 10), [])
    assert relay.first_started.wait(10)
    for nonce in ("n2", "n3", "n4"):
        relay.submit("team/a", _lease("a"), LogsRequest(nonce, 10), [])
    relay.submit("team/b", _lease("b"), LogsRequest("m1", 10), [])
    _wait_until(lambda: ("b", "m1") in relay.started)  # b is not held up by a's relay
    assert ("a", "n2") not in relay.started
    relay.release.set()
    _wait_done(relay, 3)
    assert relay.started == [("a", "n1"), ("b", "m1"), ("a", "n4")]


def test_a_deleted_lease_drops_its_waiting_request() -> None:
    relay = RecordingRelay()
    relay.submit("team/a", _lease("a"), LogsRequest("n1", 10), [])
    assert relay.first_started.wait(10)
    relay.submit("team/a", _lease("a"), LogsRequest("n2", 10), [])
    relay.forget("team/a")
    relay.release.set()
    _wait_done(relay, 1)
    assert relay.started == [("a", "n1")]


def test_after_its_relays_end_a_lease_is_relayed_at_once_again() -> None:
    relay = RecordingRelay()
    relay.release.set()
    relay.submit("team/a", _lease("a"), LogsRequest("n1", 10), [])
    assert relay.done.acquire(timeout=10)
    _wait_until(lambda: not relay._running)
    relay.submit("team/a", _lease("a"), LogsRequest("n2", 10), [])
    _wait_done(relay, 1)
    assert relay.started == [("a", "n1"), ("a", "n2")]


def test_take_hands_each_nonce_over_once() -> None:
    relay = RecordingRelay()
    metadata = {"annotations": {REQUEST: "abc123:20"}}
    assert relay.take("team/a", metadata) == LogsRequest("abc123", 20)
    assert relay.take("team/a", metadata) is None
    assert relay.take("team/a", {"annotations": {REQUEST: "def456:20"}}) is not None
    relay.threads.shutdown(wait=True)


def _wait_until(check: Any) -> None:
    event = threading.Event()
    for _ in range(1000):
        if check():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached within 10 s")
