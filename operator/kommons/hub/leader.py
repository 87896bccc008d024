"""Leader election on a ``coordination.k8s.io/Lease``: at most one hub replica acts.

The same protocol as client-go's ``leaderelection`` package, in three parts:

- **Observe (pure).** :func:`observe` remembers when *this* replica first saw the current
  record, on its own monotonic clock. A holder's lease is judged expired only when the
  record has not changed for its ``leaseDurationSeconds`` as observed here: the other
  replica's clock (``renewTime``) is never trusted.
- **Decide (pure).** :func:`decide` maps (observation, now, me, whether I lead) to one of
  ``acquire``, ``renew``, ``wait``, ``lost``, with the record to write.
- **Write (thin).** :class:`LeaseLock` reads the Lease and writes the record with the
  observed ``resourceVersion`` (optimistic concurrency): of two replicas racing for an
  expired Lease, exactly one write succeeds, the other gets a conflict and waits.

:class:`LeaderElector` runs the loop: every ``retry_period`` it reads the Lease, decides
and writes. A leader that has not renewed for ``renew_deadline`` (counted from when it
*sent* its last successful renew, so before the server stored it) has lost: it must stop
acting at once. With the defaults (15/10/2 s) the old leader stops acting at least 5 s
before any standby may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kommons.kube import Conflict, Kube, NotFound
from kommons.kube import resources as r

log = logging.getLogger("kommons.hub.leader")

DEFAULT_NAMESPACE = "kommons-system"
DEFAULT_LEASE_NAME = "kommons-hub"
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JSON = dict[str, Any]


def default_identity() -> str:
    """``<hostname>_<pid>``: unique per process (a restarted hub is a new candidate)."""
    return f"{socket.gethostname()}_{os.getpid()}"


def default_namespace() -> str:
    """The hub's own namespace: ``$POD_NAMESPACE``, the pod's, else ``kommons-system``."""
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    try:
        return _SA_NAMESPACE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


@dataclass(frozen=True)
class ElectionOptions:
    """How the hub's replicas elect their leader (client-go's defaults)."""

    identity: str
    """This replica's name in the Lease's ``holderIdentity``; unique among the replicas."""
    namespace: str = DEFAULT_NAMESPACE
    """Namespace of the Lease (the hub's own)."""
    name: str = DEFAULT_LEASE_NAME
    """Name of the Lease."""
    lease_duration: float = 15.0
    """Seconds a standby waits, after it last saw the record change, before it takes over."""
    renew_deadline: float = 10.0
    """Seconds the leader may go without a successful renew before it stops (exits)."""
    retry_period: float = 2.0
    """Seconds between two attempts to acquire or renew."""

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("identity: must not be empty (it names the Lease's holder)")
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election: need 0 < retry period < renew deadline < lease duration, got"
                f" {self.retry_period} / {self.renew_deadline} / {self.lease_duration} s"
                " (the leader must give up before a standby may take over)"
            )


# ----------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class LeaderRecord:
    """The election fields of a ``coordination.k8s.io/Lease`` spec."""

    holder: str = ""
    """``holderIdentity``; empty when nobody holds it (released)."""
    lease_duration: float = 0.0
    """``leaseDurationSeconds`` the holder asks the others to wait."""
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    """``leaseTransitions``: how many times the holder changed."""

    @staticmethod
    def from_spec(spec: JSON) -> LeaderRecord:
        """Read the record from a Lease's ``spec`` (missing fields are empty)."""
        return LeaderRecord(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> JSON:
        """The record as a Lease ``spec``."""
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class Observation:
    """A record as this replica saw it, and since when (local monotonic clock)."""

    record: LeaderRecord | None
    """``None``: the Lease does not exist."""
    since: float
    """When this replica first saw this exact record."""


def observe(previous: Observation | None, record: LeaderRecord | None, now: float) -> Observation:
    """The new observation: the time is kept while the record stays the same."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record=record, since=now)


class Action(enum.StrEnum):
    """What one election step does."""

    ACQUIRE = "acquire"
    """Write the record with this replica as holder (create the Lease when missing)."""
    RENEW = "renew"
    """This replica leads: write a fresh ``renewTime``."""
    WAIT = "wait"
    """Another replica holds a lease that has not expired (as observed here)."""
    LOST = "lost"
    """This replica led and may no longer: stop acting at once."""


@dataclass(frozen=True)
class Decision:
    """One step's outcome: the action, the record to write (acquire/renew) and why."""

    action: Action
    record: LeaderRecord | None
    reason: str


def _wall(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decide(
    observation: Observation,
    *,
    me: str,
    now: float,
    wall: datetime,
    last_renew: float | None,
    options: ElectionOptions,
) -> Decision:
    """Decide one election step (pure).

    Args:
        observation: The record as last read, with when it was first seen.
        me: This replica's identity.
        now: Local monotonic time.
        wall: Wall-clock time, only written into the record (for people; never compared).
        last_renew: When this replica sent its last successful acquire/renew (monotonic), or
            ``None`` when it does not lead.
        options: Durations.
    """
    record = observation.record
    leading = last_renew is not None
    if last_renew is not None and now - last_renew >= options.renew_deadline:
        return Decision(
            Action.LOST,
            None,
            f"no successful renew for {now - last_renew:.1f}s (deadline"
            f" {options.renew_deadline:.0f}s)",
        )
    stamp = _wall(wall)
    mine = LeaderRecord(
        holder=me,
        lease_duration=options.lease_duration,
        acquire_time=stamp,
        renew_time=stamp,
        transitions=record.transitions if record is not None else 0,
    )
    if record is None:
        return Decision(Action.ACQUIRE, mine, "no Lease yet: creating it")
    if record.holder == me:
        kept = replace(mine, acquire_time=record.acquire_time or stamp)
        if leading:
            return Decision(Action.RENEW, kept, "renewing")
        return Decision(Action.ACQUIRE, kept, "the Lease names this identity already")
    if leading:
        return Decision(Action.LOST, None, f"the Lease is held by {record.holder!r} now")
    mine = replace(mine, transitions=record.transitions + 1)
    if not record.holder:
        return Decision(Action.ACQUIRE, mine, "the Lease was released")
    duration = record.lease_duration if record.lease_duration > 0 else options.lease_duration
    age = now - observation.since
    if age < duration:
        return Decision(
            Action.WAIT,
            None,
            f"held by {record.holder!r}; takeover in {duration - age:.1f}s unless it renews",
        )
    return Decision(
        Action.ACQUIRE, mine, f"{record.holder!r} did not renew for {age:.1f}s (>= {duration:.0f}s)"
    )


def release(record: LeaderRecord, *, me: str, wall: datetime) -> LeaderRecord | None:
    """The record that hands the Lease over at once, or ``None`` if it is not ours."""
    if record.holder != me:
        return None
    stamp = _wall(wall)
    return replace(record, holder="", lease_duration=1, acquire_time=stamp, renew_time=stamp)


# ----------------------------------------------------------------------------- writes


class LeaseLock:
    """Reads and writes the election Lease; every write is conditional on what was read."""

    def __init__(self, kube: Kube, *, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.resource_version: str | None = None
        """Of the Lease as last read or written (the precondition of the next write)."""

    def _path(self, name: str | None = None) -> str:
        return r.LEASES.path(self.namespace, name)

    def get(self, *, timeout: float) -> LeaderRecord | None:
        """Read the record (``None`` when there is no Lease)."""
        try:
            body = self.kube.request("GET", self._path(self.name), timeout=timeout)
        except NotFound:
            self.resource_version = None
            return None
        self.resource_version = str(body["metadata"]["resourceVersion"])
        return LeaderRecord.from_spec(body.get("spec") or {})

    def write(self, record: LeaderRecord, *, timeout: float) -> None:
        """Create the Lease (none read) or replace it at the version read.

        Raises :class:`~kommons.kube.errors.Conflict` when someone wrote in between.
        """
        body: JSON = {
            "apiVersion": r.LEASES.api_version,
            "kind": r.LEASES.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        if self.resource_version is None:
            try:
                written = self.kube.request("POST", self._path(), body=body, timeout=timeout)
            except NotFound:  # the namespace is missing
                self._create_namespace(timeout=timeout)
                written = self.kube.request("POST", self._path(), body=body, timeout=timeout)
        else:
            body["metadata"]["resourceVersion"] = self.resource_version
            written = self.kube.request("PUT", self._path(self.name), body=body, timeout=timeout)
        self.resource_version = str(written["metadata"]["resourceVersion"])

    def _create_namespace(self, *, timeout: float) -> None:
        log.warning("namespace %s does not exist; creating it for the Lease", self.namespace)
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        with contextlib.suppress(Conflict):  # created meanwhile
            self.kube.request("POST", r.NAMESPACES.path(), body=body, timeout=timeout)


class Deadman:
    """A thread that calls ``on_expiry`` once the deadline passes without being extended.

    The backstop of :class:`LeaderElector`: it fires even when the event loop is blocked.
    """

    def __init__(self, on_expiry: Callable[[], None]) -> None:
        self._on_expiry = on_expiry
        self._deadline: float | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="leader-deadman", daemon=True)
        self._thread.start()

    def extend(self, deadline: float) -> None:
        """Fire at ``deadline`` (monotonic) unless extended again or disarmed."""
        with self._cond:
            self._deadline = deadline
            self._cond.notify()

    def disarm(self) -> None:
        """Never fire (until extended again)."""
        with self._cond:
            self._deadline = None
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        self._on_expiry()


class LeaderElector:
    """Acquire, keep and release the hub's Lease (asyncio; API calls in one thread)."""

    def __init__(
        self, kube: Kube, options: ElectionOptions, *, on_lost: Callable[[str], None]
    ) -> None:
        self.options = options
        self.lock = LeaseLock(kube, namespace=options.namespace, name=options.name)
        self.on_lost = on_lost
        """Called (from any thread) when leadership is lost; must stop the process."""
        self.observation: Observation | None = None
        self.last_renew: float | None = None
        self.acquired_at: float | None = None
        """Monotonic time leadership was acquired (``None`` while standing by)."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leader")
        self._deadman = Deadman(lambda: self.on_lost("renew deadline passed (deadman)"))
        self._last_holder = ""

    @property
    def leading(self) -> bool:
        """Whether this replica holds the Lease."""
        return self.last_renew is not None

    async def _call(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def _timeout(self, now: float) -> float:
        if self.last_renew is None:
            return self.options.renew_deadline
        return max(0.5, self.last_renew + self.options.renew_deadline - now)

    async def step(self) -> Decision:
        """Read the Lease, decide, write (in the API thread); returns the decision taken."""
        decision: Decision = await self._call(self.step_blocking)
        return decision

    def step_blocking(self) -> Decision:
        """:meth:`step` in the calling thread (the API thread: never the event loop)."""
        now = time.monotonic()
        timeout = self._timeout(now)
        try:
            record = self.lock.get(timeout=timeout)
        except Exception as exc:
            return self._failed(f"reading the Lease failed: {exc}")
        now = time.monotonic()
        self.observation = observe(self.observation, record, now)
        decision = decide(
            self.observation,
            me=self.options.identity,
            now=now,
            wall=datetime.now(UTC),
            last_renew=self.last_renew,
            options=self.options,
        )
        if decision.action is Action.LOST:
            self._lose(decision.reason)
            return decision
        if decision.action is Action.WAIT or decision.record is None:
            self._say(decision.reason)
            return decision
        written = decision.record
        sent = time.monotonic()
        try:
            self.lock.write(written, timeout=self._timeout(sent))
        except Conflict:
            return self._failed("another replica wrote the Lease first")
        except Exception as exc:
            return self._failed(f"writing the Lease failed: {exc}")
        self.observation = Observation(record=written, since=time.monotonic())
        if not self.leading:
            self.acquired_at = time.monotonic()
            log.info(
                "leader: %s acquired %s/%s (%s)",
                self.options.identity,
                self.options.namespace,
                self.options.name,
                decision.reason,
            )
        self.last_renew = sent
        self._deadman.extend(sent + self.options.renew_deadline)
        return decision

    def _failed(self, why: str) -> Decision:
        decision = decide(
            self.observation or Observation(None, time.monotonic()),
            me=self.options.identity,
            now=time.monotonic(),
            wall=datetime.now(UTC),
            last_renew=self.last_renew,
            options=self.options,
        )
        if decision.action is Action.LOST:
            self._lose(f"{decision.reason}; last error: {why}")
            return decision
        log.warning("leader election: %s", why)
        return Decision(Action.WAIT, None, why)

    def _lose(self, why: str) -> None:
        log.error("leader: %s lost the Lease: %s", self.options.identity, why)
        self.on_lost(why)

    def _say(self, reason: str) -> None:
        record = self.observation.record if self.observation else None
        holder = record.holder if record else ""
        if holder != self._last_holder:  # one line per holder, not one per retry
            log.info("standby: %s waits for the Lease (%s)", self.options.identity, reason)
            self._last_holder = holder

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every ``retry_period`` until this replica leads (``True``) or ``stop`` is set."""
        while not stop.is_set():
            await self.step()
            if self.leading:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.retry_period)
        return False

    async def keep(self) -> None:
        """Renew every ``retry_period`` until cancelled (``on_lost`` is called on failure).

        The renewals run in the API thread, not on the event loop: like client-go's renew
        goroutine, they go on while the loop is busy (a restarted hub catching up on hundreds
        of leases), so a busy leader is not mistaken for a dead one. A leader that cannot
        renew (API server gone, thread starved) still stops at the deadline (deadman).
        """
        stopped = threading.Event()
        renewing = asyncio.get_running_loop().run_in_executor(
            self._thread, self._renew_until, stopped
        )
        try:
            await asyncio.shield(renewing)
        finally:
            stopped.set()

    def _renew_until(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.options.retry_period):
            self.step_blocking()

    async def release(self) -> bool:
        """Hand the Lease over at once (holder emptied); ``True`` when written."""
        observed = self.observation.record if self.observation else None
        if not self.leading or observed is None:
            return False
        record = release(observed, me=self.options.identity, wall=datetime.now(UTC))
        if record is None:
            return False
        try:
            await self._call(lambda: self.lock.write(record, timeout=self.options.retry_period))
        except Exception as exc:
            log.warning("leader: release failed (the Lease will expire instead): %s", exc)
            return False
        finally:
            self.last_renew = None
            self._deadman.disarm()
        log.info("leader: %s released the Lease", self.options.identity)
        return True

    def close(self) -> None:
        """Stop the API thread (the deadman thread is a daemon)."""
        self._deadman.disarm()
        self._thread.shutdown(wait=False, cancel_futures=True)
