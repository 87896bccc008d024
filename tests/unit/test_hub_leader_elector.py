"""The elector loop against an in-memory Lease store with resourceVersion semantics.

Behaviour matrix (durations scaled down: lease 0.6 s, renew deadline 0.4 s, retry 0.05 s):

- two candidates race for a missing Lease -> exactly one leads; the other waits.
- the leader keeps renewing -> the standby never takes over.
- the leader stops renewing (crash) -> the standby takes over after the lease duration.
- the leader's writes fail (API unreachable) -> ``on_lost`` is called (by the loop or the
  deadman thread) within the renew deadline, never later than the standby could take over.
- the leader releases -> the standby's very next attempt acquires it.

The API server itself is never mocked in bed tests; this store only stands in for the
optimistic-concurrency contract of a PUT so the loop's timing can be unit-tested.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from kommons.hub.leader import Action, Decision, ElectionOptions, LeaderElector
from kommons.kube import Conflict, KubeError, NotFound

LEASE_DURATION = 0.6


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(body)))


class LeaseStore:
    """One Lease: GET, POST (create) and PUT (only at the current resourceVersion)."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.versions = itertools.count(1)
        self.lock = threading.Lock()
        self.down: set[str] = set()
        """Identities whose requests fail (their API server is unreachable)."""


class FakeKube:
    """The slice of :class:`kommons.kube.Kube` the elector uses."""

    def __init__(self, store: LeaseStore, who: str) -> None:
        self.store = store
        self.who = who

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        store = self.store
        if self.who in store.down:
            raise KubeError(503, "ServiceUnavailable", "unreachable", method, path)
        with store.lock:
            if method == "GET":
                if store.body is None:
                    raise NotFound(404, "NotFound", "no lease", method, path)
                return _copy(store.body)
            assert isinstance(body, dict)
            new = json.loads(json.dumps(body))
            if method == "POST" and store.body is not None:
                raise Conflict(409, "AlreadyExists", "exists", method, path)
            if method == "PUT":
                current = store.body["metadata"]["resourceVersion"] if store.body else None
                if new["metadata"].get("resourceVersion") != current:
                    raise Conflict(409, "Conflict", "stale", method, path)
            new["metadata"]["resourceVersion"] = str(next(store.versions))
            store.body = new
            return _copy(new)


class Lost(list[tuple[str, float]]):
    """``on_lost`` calls: (identity, when)."""


def _elector(store: LeaseStore, who: str, lost: Lost) -> LeaderElector:
    kube: Any = FakeKube(store, who)
    return LeaderElector(
        kube,
        ElectionOptions(
            identity=who, lease_duration=LEASE_DURATION, renew_deadline=0.4, retry_period=0.05
        ),
        on_lost=lambda why: lost.append((who, time.monotonic())),
    )


def _holder(store: LeaseStore) -> str:
    return str((store.body or {}).get("spec", {}).get("holderIdentity", ""))


async def _lead(elector: LeaderElector, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await elector.acquire(stop)


def test_two_candidates_exactly_one_leads_and_keeps_it_while_renewing() -> None:
    store, lost = LeaseStore(), Lost()
    a, b = _elector(store, "a", lost), _elector(store, "b", lost)

    async def scenario() -> None:
        await asyncio.gather(_lead(a, 0.3), _lead(b, 0.3))
        leader, standby = (a, b) if a.leading else (b, a)
        assert leader.leading
        assert not standby.leading
        keeper = asyncio.create_task(leader.keep())
        await _lead(standby, 1.5)  # 2.5 lease durations: renewals keep it
        assert not standby.leading
        assert _holder(store) == leader.options.identity
        keeper.cancel()

    asyncio.run(scenario())
    assert not lost


def test_a_crashed_leader_is_replaced_after_the_lease_duration() -> None:
    store, lost = LeaseStore(), Lost()
    a, b = _elector(store, "a", lost), _elector(store, "b", lost)

    async def scenario() -> float:
        await _lead(a, 0.2)
        assert a.leading
        crashed = time.monotonic()  # a never renews again
        a.close()
        await _lead(b, 3.0)
        assert b.leading
        return time.monotonic() - crashed

    waited = asyncio.run(scenario())
    assert _holder(store) == "b"
    assert waited >= LEASE_DURATION


def test_a_leader_cut_off_gives_up_before_the_standby_may_take_over() -> None:
    store, lost = LeaseStore(), Lost()
    a, b = _elector(store, "a", lost), _elector(store, "b", lost)

    async def scenario() -> float:
        await _lead(a, 0.2)
        keeper = asyncio.create_task(a.keep())
        store.down.add("a")
        await _lead(b, 3.0)
        taken = time.monotonic()
        keeper.cancel()
        return taken

    taken = asyncio.run(scenario())
    assert b.leading
    assert lost, "the cut-off leader never gave up"
    who, when = lost[0]
    assert who == "a"
    assert when < taken


def test_release_hands_over_at_the_next_attempt() -> None:
    store, lost = LeaseStore(), Lost()
    a, b = _elector(store, "a", lost), _elector(store, "b", lost)

    async def scenario() -> Decision:
        await _lead(a, 0.2)
        await b.step()  # b sees a holding it
        assert not b.leading
        assert await a.release()
        return await b.step()

    decision = asyncio.run(scenario())
    assert decision.action is Action.ACQUIRE
    assert decision.reason == "the Lease was released"
    assert b.leading
    assert store.body is not None
    assert store.body["spec"]["leaseTransitions"] == 1
    assert not lost


def test_a_standby_never_releases() -> None:
    store, lost = LeaseStore(), Lost()
    standby = _elector(store, "a", lost)
    assert not asyncio.run(standby.release())
    assert store.body is None
