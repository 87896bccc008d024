"""The agent's metering checkpoint, advanced from what the pods themselves say (pure).

Each observation lists a placement's pods with their ``Ready`` condition and its
``lastTransitionTime`` (whole seconds). :func:`advance` folds it into the previous checkpoint
(``LeasePlacement.status.metering``, the last one *written*), so the result depends only on
that checkpoint and the pods: an agent killed at any point and restarted computes the same
thing again — nothing counted twice, nothing lost while the pods still exist.

Rules, per pod (``prev`` = the checkpoint's ``observedAt``, the last time it was seen):

============================================  ===============================================
observed                                      effect
============================================  ===============================================
Ready since ``s``, not open                   open at ``s`` (not before its last closed end)
Ready since ``s``, open since ``s``           nothing (still ready)
Ready since ``s``, open since ``r != s``      it flapped unseen: close ``[r, prev]``, open ``s``
not Ready since ``t``, open since ``r``       close ``[r, t]`` (``prev`` if ``t`` is unknown)
being deleted at ``d``, open since ``r``      close ``[r, min(d, t)]``
gone (not listed), open since ``r``           close ``[r, prev]``: its end is unknown, the
                                              conservative end is when it was last seen
============================================  ===============================================

Closed intervals are kept ``retention`` seconds (and at most
:data:`~kommons.api.placement.METERING_INTERVAL_LIMIT` per pod); pruning one moves
``completeSince`` past it, so the hub knows from when on the list is complete. Counters
(``readySeconds``) only grow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kommons.api.placement import (
    METERING_INTERVAL_LIMIT,
    PlacementMetering,
    PodMetering,
    ReadyInterval,
)
from kommons.metering.timeline import Span, instant, seconds

DEFAULT_RETENTION = 2 * 3600 + 900
"""Seconds closed intervals are kept: an epoch (1 h) plus its seal delay, twice over."""


@dataclass(frozen=True)
class PodSample:
    """One pod as observed: whether it is Ready and since when (its own condition)."""

    uid: str
    ready: bool
    since: int | None
    """``lastTransitionTime`` of the Ready condition (Unix seconds), if the pod has one."""
    deleting_at: int | None = None
    """``deletionTimestamp`` (Unix seconds) of a pod being deleted."""


def _parse_time(value: object) -> int | None:
    if not value:
        return None
    try:
        return seconds(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def sample_pod(pod: Mapping[str, Any]) -> PodSample | None:
    """A pod (API dict) as a :class:`PodSample`; ``None`` without a uid."""
    metadata = pod.get("metadata") or {}
    uid = str(metadata.get("uid") or "")
    if not uid:
        return None
    ready, since = False, None
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            since = _parse_time(condition.get("lastTransitionTime"))
    if ready and since is None:
        ready = False  # a Ready pod that does not say since when cannot be metered exactly
    return PodSample(uid, ready, since, _parse_time(metadata.get("deletionTimestamp")))


def sample_pods(pods: Iterable[Mapping[str, Any]]) -> list[PodSample]:
    """Every pod that has a uid, as samples."""
    return [s for s in (sample_pod(p) for p in pods) if s is not None]


@dataclass
class _Pod:
    uid: str
    since: int | None = None
    intervals: list[Span] = field(default_factory=list)
    seconds: int = 0

    def floor(self) -> int:
        return self.intervals[-1][1] if self.intervals else 0

    def close(self, end: int) -> None:
        assert self.since is not None
        start = max(self.since, self.floor())
        if end > start:
            self.intervals.append((start, end))
            self.seconds += end - start
        self.since = None


def _load(previous: PlacementMetering | None) -> dict[str, _Pod]:
    pods: dict[str, _Pod] = {}
    for pod in (previous.pods if previous else None) or ():
        pods[pod.uid] = _Pod(
            pod.uid,
            seconds(pod.ready_since) if pod.ready_since else None,
            [(seconds(i.start), seconds(i.end)) for i in pod.intervals or ()],
            pod.ready_seconds,
        )
    return pods


def advance(
    previous: PlacementMetering | None,
    samples: Sequence[PodSample],
    *,
    now: datetime,
    retention: int = DEFAULT_RETENTION,
) -> tuple[PlacementMetering, bool]:
    """The checkpoint after observing ``samples`` at ``now``, and whether a pod transitioned.

    Args:
        previous: The last checkpoint written (``None`` for a new placement).
        samples: Every pod of the placement now (:func:`sample_pods`).
        now: The agent's clock.
        retention: Seconds closed intervals are kept.
    """
    at = seconds(now)
    last_seen = seconds(previous.observed_at) if previous else at
    pods = _load(previous)
    changed = False
    listed = set()
    for sample in samples:
        listed.add(sample.uid)
        pod = pods.setdefault(sample.uid, _Pod(sample.uid))
        ready = sample.ready and sample.deleting_at is None
        if ready and sample.since is not None:
            if pod.since == max(sample.since, pod.floor()):
                continue  # still ready (the same interval)
            if pod.since is not None:  # not ready and ready again between two looks
                pod.close(min(last_seen, sample.since))
            pod.since = max(sample.since, pod.floor())
            changed = True
        elif pod.since is not None:
            if sample.ready:  # still Ready, but being deleted
                end = sample.deleting_at if sample.deleting_at is not None else last_seen
            else:
                ends = [t for t in (sample.since, sample.deleting_at) if t is not None]
                end = min(ends) if ends else last_seen
            pod.close(min(end, at))
            changed = True
    for uid, pod in pods.items():
        if uid not in listed and pod.since is not None:
            pod.close(last_seen)  # gone: its end is unknown, last seen ready is conservative
            changed = True
    return _store(previous, pods, at=at, retention=retention), changed


def close_all(previous: PlacementMetering | None, *, now: datetime) -> PlacementMetering:
    """The final checkpoint of a placement being removed: every open interval ends at ``now``."""
    at = seconds(now)
    pods = _load(previous)
    for pod in pods.values():
        if pod.since is not None:
            pod.close(max(at, pod.since))
    return _store(previous, pods, at=at, retention=DEFAULT_RETENTION)


def _store(
    previous: PlacementMetering | None, pods: dict[str, _Pod], *, at: int, retention: int
) -> PlacementMetering:
    complete = seconds(previous.complete_since) if previous and previous.complete_since else None
    retired = previous.retired_seconds if previous else 0
    kept: list[PodMetering] = []
    for pod in pods.values():
        old = [i for i in pod.intervals if i[1] < at - retention]
        keep = [i for i in pod.intervals if i[1] >= at - retention]
        if len(keep) > METERING_INTERVAL_LIMIT:
            old += keep[:-METERING_INTERVAL_LIMIT]
            keep = keep[-METERING_INTERVAL_LIMIT:]
        for _, end in old:
            complete = end if complete is None else max(complete, end)
        if pod.since is None and not keep:
            retired += pod.seconds
            continue
        kept.append(
            PodMetering(
                uid=pod.uid,
                ready_since=instant(pod.since) if pod.since is not None else None,
                intervals=[ReadyInterval(start=instant(a), end=instant(b)) for a, b in keep]
                or None,
                ready_seconds=pod.seconds,
            )
        )
    kept.sort(key=lambda p: p.uid)
    total = retired + sum(p.ready_seconds for p in kept)
    return PlacementMetering(
        observed_at=instant(at),
        complete_since=instant(complete) if complete is not None else None,
        ready_seconds=total,
        retired_seconds=retired,
        pods=kept,  # [] not None: a merge patch must replace the list, not keep it
    )


def any_open(metering: PlacementMetering | None) -> bool:
    """Whether some pod of the checkpoint is Ready (an open interval)."""
    return any(p.ready_since is not None for p in (metering.pods if metering else None) or ())


def due(
    previous: PlacementMetering | None,
    *,
    changed: bool,
    now: datetime,
    report_seconds: float,
) -> bool:
    """Whether the new checkpoint must be written now.

    On every transition, on the first observation, and at least every ``report_seconds``
    while a pod is ready (so open intervals reach the hub).
    """
    if previous is None or changed:
        return True
    return any_open(previous) and (now - previous.observed_at).total_seconds() >= report_seconds
