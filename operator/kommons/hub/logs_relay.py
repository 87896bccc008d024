"""The hub's half of ``kommons logs``: ask a lease's providers, gather their answers.

See :mod:`kommons.lease_logs` for the protocol. A request is relayed once per nonce, in a
thread pool of its own (a relay waits up to :data:`~kommons.lease_logs.ANSWER_SECONDS` for
the agents, and must not hold a worker the lease steps need). A lease has at most one relay
at a time: requests arriving meanwhile wait, and only the newest of them is relayed next, so
a tenant rewriting its request in a loop holds one of the pool's threads, not all of them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kommons.api import LeasePlacement
from kommons.kube import Kube, KubeError, NotFound
from kommons.kube import resources as r
from kommons.lease_logs import (
    ANSWER_SECONDS,
    REQUEST,
    STATUS,
    LogsRequest,
    answer_name,
    answered,
    gather,
    request_of,
)

log = logging.getLogger(__name__)


class LogsRelay:
    """Relays each new ``kommons logs`` request of a lease to its placements, then gathers."""

    def __init__(
        self,
        kube: Kube,
        *,
        answer_seconds: float = ANSWER_SECONDS,
        poll_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kube = kube
        self.answer_seconds = answer_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep
        self.threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="logs")
        self._relayed: dict[str, str] = {}
        self._running: set[str] = set()
        self._waiting: dict[str, _Relay] = {}
        self._lock = threading.Lock()

    def take(self, key: str, metadata: Mapping[str, Any]) -> LogsRequest | None:
        """The lease's request if it was not relayed yet (it is marked relayed)."""
        request = request_of(metadata)
        if request is None:
            return None
        with self._lock:
            if self._relayed.get(key) == request.nonce:
                return None
            self._relayed[key] = request.nonce
        return request

    def forget(self, key: str) -> None:
        """The lease is gone."""
        with self._lock:
            self._relayed.pop(key, None)
            self._waiting.pop(key, None)

    def submit(
        self,
        key: str,
        lease: Mapping[str, Any],
        request: LogsRequest,
        placements: Sequence[LeasePlacement],
    ) -> None:
        """Relay in the pool, after the lease's running relay if it has one (newest waits)."""
        job = _Relay(lease, request, tuple(placements))
        with self._lock:
            if key in self._running:
                self._waiting[key] = job  # replaces an older waiting request of the lease
                return
            self._running.add(key)
        self.threads.submit(self._relay_in_turn, key, job)

    def _relay_in_turn(self, key: str, job: _Relay) -> None:
        while True:
            self.relay(job.lease, job.request, job.placements)
            with self._lock:
                waiting = self._waiting.pop(key, None)
                if waiting is None:
                    self._running.discard(key)
                    return
            job = waiting

    def relay(
        self, lease: Mapping[str, Any], request: LogsRequest, placements: Sequence[LeasePlacement]
    ) -> None:
        """Ask every live placement, wait for the answers, write the tenant's ConfigMap.

        Never raises: a failure is logged (the tenant's command times out and says so).
        """
        meta = lease.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            live = [p for p in placements if p.metadata.deletion_timestamp is None]
            for placement in live:
                self._ask(placement, request)
            deadline = self.clock() + self.answer_seconds
            answers: dict[str, tuple[str, dict[str, Any] | None]] = {
                _where(p): (p.spec.provider, None) for p in live
            }
            while True:
                for placement in live:  # read again only what has not answered yet
                    if not answered(answers[_where(placement)][1], request):
                        answers[_where(placement)] = (
                            placement.spec.provider,
                            self._answer_of(placement),
                        )
                body = gather(lease, request, answers, waited_out=self.clock() >= deadline)
                if body is not None:
                    self.kube.apply(r.CONFIGMAPS, body)
                    status = body["metadata"]["annotations"][STATUS]
                    log.info("logs of lease %s gathered (%s)", key, status)
                    for placement in live:  # read: the answers need not stay on the hub
                        self._drop_answer(placement)
                    return
                self.sleep(self.poll_seconds)
        except Exception:  # a relay must never take the hub down
            log.exception("relaying the logs request of lease %s failed", key)

    def _ask(self, placement: LeasePlacement, request: LogsRequest) -> None:
        patch = {"metadata": {"annotations": {REQUEST: request.annotation()}}}
        with contextlib.suppress(NotFound):  # gone meanwhile: it counts as not answering
            self.kube.patch(
                r.LEASE_PLACEMENTS,
                str(placement.metadata.name),
                patch,
                placement.metadata.namespace,
            )

    def _drop_answer(self, placement: LeasePlacement) -> None:
        name = answer_name(str(placement.metadata.name))
        try:
            self.kube.delete(r.CONFIGMAPS, name, placement.metadata.namespace)
        except KubeError as exc:
            log.warning("deleting the logs answer %s: %s", name, exc)

    def _answer_of(self, placement: LeasePlacement) -> dict[str, Any] | None:
        try:
            return self.kube.get_or_none(
                r.CONFIGMAPS,
                answer_name(str(placement.metadata.name)),
                placement.metadata.namespace,
            )
        except KubeError as exc:
            log.warning("reading the logs answer of %s: %s", placement.metadata.name, exc)
            return None


@dataclass(frozen=True)
class _Relay:
    """A request to relay, with the lease and placements it was taken with."""

    lease: Mapping[str, Any]
    request: LogsRequest
    placements: tuple[LeasePlacement, ...]


def _where(placement: LeasePlacement) -> str:
    """A placement's key among the answers: names repeat across providers' namespaces."""
    return f"{placement.metadata.namespace}/{placement.metadata.name}"
