"""The agent's decisions, pure: placement → manifests, observed workload → placement status.

The agent's controller step has three parts:

- **Edge.** :func:`parse_placement` turns a kopf body into a :class:`~kommons.api.LeasePlacement`
  once; a body the agent cannot read raises :class:`InvalidPlacement`, whose message names the
  fields, and :func:`invalid_status` turns it into a ``Failed`` status instead of a crash loop.
  :func:`observe_workload` does the same for what the provider cluster shows (a Deployment and
  its pods), keeping only what the status needs.
- **Plan.** :func:`desired_manifests` (placement → objects to apply) and
  :func:`placement_status` (placement + observed workload → ``LeasePlacementStatus``, with the
  provider-side reason of every replica that is not ready) read nothing but their arguments.
- **Executor.** :class:`~kommons.agent.provider_cluster.ProviderCluster` applies and deletes;
  the kopf handlers in :mod:`kommons.agent.runner` write the status :func:`needs_write` allows.

Reasons of the ``Ready`` condition (first match in this order; the message lists every cause,
counted, without pod names):

======================== ====================================================================
``AllReplicasReady``     every wanted replica is ready
``Suspended``            the placement is suspended (no replica wanted)
``InvalidPlacement``     the placement's body cannot be read (phase ``Failed``)
``WorkloadMissing``      no Deployment on the provider cluster (the agent applies it again)
``PodsUnschedulable``    pods whose ``PodScheduled`` condition is False: the provider's
                         scheduler's message, e.g. "0/3 nodes are available: 3 Too many pods."
``ErrImagePull`` …       a container waits with a reason that needs the tenant or the provider:
                         see :data:`WAITING_REASONS`
``PodsFailed``           pods in phase ``Failed``
``ReplicaFailure``       the Deployment cannot create pods (e.g. quota exceeded)
``ContainersNotReady``   anything else (pods starting, readiness probes failing)
======================== ====================================================================

A run-to-completion placement (``spec.job``) runs a ``Job``: phase ``Succeeded`` with reason
``JobComplete`` once it completed; phase ``Failed`` with the reason of the Job's ``Failed``
condition (``BackoffLimitExceeded`` …) and the failed pods' causes once it failed; otherwise
the table above, for the pods still to run (at most the completions left).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from kommons.agent import endpoints
from kommons.agent.config import ExposeConfig
from kommons.agent.workload import (
    WORKLOAD_NAME,
    PlacementWork,
    StorageVolume,
    manifests,
    publication,
    target_namespace,
)
from kommons.api import (
    ENDPOINTS_CONDITION,
    LeasePlacement,
    LeasePlacementStatus,
    get_condition,
    set_condition,
)
from kommons.api.placement import PlacementPhase
from kommons.api_names import PREFIX
from kommons.config_copies import copy_revision

JSON = dict[str, Any]

ANNOTATION_LEASE = f"{PREFIX}/lease"
"""On a placement's ResourceQuota: ``namespace/name`` of its lease (read back by inventory)."""
ANNOTATION_GPU_MODEL = f"{PREFIX}/gpu-model"
"""On a placement's ResourceQuota: the leased GPU model (read back by inventory)."""

READY = "Ready"
"""Type of the condition that carries the provider-side reason."""
ALL_READY = "AllReplicasReady"
SUSPENDED = "Suspended"
INVALID = "InvalidPlacement"
WORKLOAD_MISSING = "WorkloadMissing"
UNSCHEDULABLE = "PodsUnschedulable"
PODS_FAILED = "PodsFailed"
REPLICA_FAILURE = "ReplicaFailure"
NOT_READY = "ContainersNotReady"
JOB_COMPLETE = "JobComplete"
JOB_FAILED = "JobFailed"
"""Reason when a failed Job's condition carries none."""

WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
)
"""Reasons of a waiting container that do not resolve by waiting; reported as they are."""

REASON_ORDER = (UNSCHEDULABLE, *WAITING_REASONS, PODS_FAILED, REPLICA_FAILURE, NOT_READY)
"""Which cause names the condition when several are present (the first present wins)."""

MAX_CAUSES = 3
"""Distinct causes quoted in a message; further ones are counted."""
MAX_DETAIL = 300
"""Characters kept of one cause's detail (the scheduler's or kubelet's message)."""
MAX_INVALID_MESSAGE = 2000
"""Characters kept of an :class:`InvalidPlacement` message in the status."""
STATUS_REFRESH = timedelta(seconds=60)
"""An unchanged status is written again (``lastReportTime``) at most this often."""


# --------------------------------------------------------------------------------------
# Edge: the placement
# --------------------------------------------------------------------------------------


class InvalidPlacement(ValueError):
    """A LeasePlacement body the agent cannot read; the message names each bad field."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.name = name
        self.problems = tuple(problems)
        super().__init__(f"placement {name or '<unnamed>'} is invalid: " + "; ".join(self.problems))


def _problems(exc: ValidationError) -> list[str]:
    """``field.path: what is wrong`` for every error (paths in the API's camelCase)."""
    return [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]


def parse_placement(body: Mapping[str, Any]) -> LeasePlacement:
    """Parse a kopf body (or any API object) into a :class:`~kommons.api.LeasePlacement`.

    ``metadata`` and ``spec`` must be valid; a status that cannot be read (e.g. written by an
    older agent) is dropped rather than failing the placement, since the agent rewrites it.

    Raises:
        InvalidPlacement: naming every invalid field (``spec.replicas: ...``).
    """
    raw = dict(body)
    metadata = raw.get("metadata")
    name = str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
    status = raw.pop("status", None)
    if not isinstance(raw.get("spec"), Mapping):
        raise InvalidPlacement(name, ["spec: missing or not an object"])
    try:
        placement = LeasePlacement.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPlacement(name, _problems(exc)) from exc
    if isinstance(status, Mapping):
        try:
            placement.status = LeasePlacementStatus.model_validate(dict(status))
        except ValidationError:
            placement.status = None
    return placement


def previous_status(body: Mapping[str, Any]) -> LeasePlacementStatus | None:
    """The status a body carries, or ``None`` when it has none or it cannot be read."""
    status = body.get("status")
    if not isinstance(status, Mapping) or not status:
        return None
    try:
        return LeasePlacementStatus.model_validate(dict(status))
    except ValidationError:
        return None


def generation_of(body: Mapping[str, Any]) -> int | None:
    """``metadata.generation`` of a body, if it is a non-negative integer."""
    metadata = body.get("metadata")
    value = metadata.get("generation") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, int) and value >= 0 else None


# --------------------------------------------------------------------------------------
# Plan: placement -> manifests
# --------------------------------------------------------------------------------------


def placement_name(placement: LeasePlacement) -> str:
    """The placement's name (always set on an object read from the API)."""
    return placement.metadata.name or ""


def being_deleted(placement: LeasePlacement) -> bool:
    """The placement has a deletion timestamp: only its removal remains to be done."""
    return placement.metadata.deletion_timestamp is not None


def wanted_replicas(placement: LeasePlacement) -> int:
    """Replicas the provider must run: 0 while suspended."""
    return 0 if placement.spec.suspend else placement.spec.replicas


def check_storage(placement: LeasePlacement, storage_classes: Mapping[str, str]) -> None:
    """Refuse a placement asking for a storage tier this provider does not map to a class.

    Raises:
        InvalidPlacement: naming each unknown tier (the hub filters providers by the tiers
            they report, so this means the agent config changed since).
    """
    unknown = sorted(
        {v.tier for v in placement.spec.storage or () if v.tier not in storage_classes}
    )
    if unknown:
        raise InvalidPlacement(
            placement_name(placement),
            [
                f"spec.storage: tier {tier} is not offered by this provider (agent config"
                f" storage has: {', '.join(sorted(storage_classes)) or 'none'})"
                for tier in unknown
            ],
        )


def config_problems(placement: LeasePlacement, copies: Mapping[str, JSON | None]) -> list[str]:
    """Why the hub's copies cannot be applied yet: one per copy missing or of another version.

    ``copies`` maps each ``Kind/name`` of ``spec.configRevisions`` to the copy read from the
    hub (``None``: not there). The hub writes the copies right after the placement, so this is
    a short wait; the messages name kinds, names and versions, never data.
    """
    out = []
    for key, revision in sorted((placement.spec.config_revisions or {}).items()):
        copy = copies.get(key)
        if copy is None:
            out.append(f"{key}: the hub's copy is not there yet")
        elif copy_revision(copy) != revision:
            out.append(
                f"{key}: the hub's copy is of version {copy_revision(copy)}, the placement asks"
                f" for {revision}"
            )
    return out


def placement_work(
    placement: LeasePlacement,
    *,
    runtime_class: str | None,
    storage_classes: Mapping[str, str] | None = None,
    publish: ExposeConfig | None = None,
    copies: Mapping[str, JSON | None] | None = None,
) -> PlacementWork:
    """What :mod:`kommons.agent.workload` needs from a typed placement.

    ``storage_classes`` maps the provider's storage tiers to its classes (agent config);
    a tier it does not map is refused by :func:`check_storage` before this is called.
    ``publish`` is how the provider publishes public ports (its agent config's ``expose``).
    ``copies`` are the hub's copies of the placement's ``spec.configRevisions`` (see
    :func:`config_problems`).
    """
    spec = placement.spec
    config = tuple(
        copy
        for key in sorted(spec.config_revisions or {})
        if (copy := (copies or {}).get(key)) is not None
    )
    gpu = spec.resources.gpu
    classes = storage_classes or {}
    storage = tuple(
        StorageVolume(
            name=v.name,
            size=v.size,
            storage_class=classes.get(v.tier, v.tier),
            mount_path=v.mount_path,
        )
        for v in spec.storage or ()
    )
    return PlacementWork(
        name=placement_name(placement),
        lease_namespace=spec.lease_ref.namespace,
        lease_name=spec.lease_ref.name,
        lease_uid=spec.lease_ref.uid,
        replicas=spec.replicas,
        cpu=spec.resources.cpu,
        memory=spec.resources.memory,
        gpu_count=gpu.count if gpu else 0,
        gpu_model=gpu.model if gpu else None,
        template=spec.template.model_dump(mode="json", by_alias=True, exclude_unset=True),
        suspend=spec.suspend,
        runtime_class=runtime_class,
        completions=spec.job.completions if spec.job else None,
        backoff_limit=spec.job.backoff_limit if spec.job else 6,
        fencing_token=spec.fencing_token,
        storage=storage,
        expose=tuple(spec.expose or ()),
        publish=publish,
        image_pull_secrets=tuple(ref.name for ref in spec.image_pull_secrets or ()),
        config=config,
    )


def surplus_claims(placement: LeasePlacement, claims: Iterable[str]) -> list[str]:
    """Claims of replicas a placement no longer has, to delete (reclaimPolicy Delete).

    A StatefulSet keeps the claims of the replicas it scales away (so that a suspended
    placement, scaled to zero, keeps its data); once a placement with storage runs fewer
    replicas, not suspended, the claims of the replicas beyond its count go. ``claims`` are the
    names of the claims in the placement's namespace.
    """
    spec = placement.spec
    if spec.suspend or not spec.storage:
        return []
    prefixes = tuple(f"{v.name}-{WORKLOAD_NAME}-" for v in spec.storage)
    keep = {prefix + str(i) for prefix in prefixes for i in range(spec.replicas)}
    return sorted(
        name
        for name in claims
        if name.startswith(prefixes) and name not in keep and name.rpartition("-")[2].isdigit()
    )


def desired_manifests(
    placement: LeasePlacement,
    *,
    runtime_class: str | None,
    storage_classes: Mapping[str, str] | None = None,
    publish: ExposeConfig | None = None,
    copies: Mapping[str, JSON | None] | None = None,
) -> list[JSON]:
    """Every object of a placement on the provider cluster, in the order to apply them.

    The ResourceQuota carries the lease and GPU model as annotations: the inventory reads the
    reservations back from the quotas alone. ``copies``: see :func:`placement_work`.
    """
    work = placement_work(
        placement,
        runtime_class=runtime_class,
        storage_classes=storage_classes,
        publish=publish,
        copies=copies,
    )
    objects = manifests(work)
    for manifest in objects:
        if manifest["kind"] == "ResourceQuota":
            manifest["metadata"]["annotations"] = {
                ANNOTATION_LEASE: f"{work.lease_namespace}/{work.lease_name}",
                ANNOTATION_GPU_MODEL: work.gpu_model or "",
            }
    return objects


def undesired_endpoint_objects(manifests: Sequence[JSON]) -> list[tuple[str, str]]:
    """(kind, name) of endpoint objects (Services, Ingress) ``manifests`` no longer has.

    The agent deletes them after applying: the lease stopped exposing a port, or the provider
    changed its publishing mode.
    """
    return endpoints.undesired([m for m in manifests if m["kind"] in ("Service", "Ingress")])


# --------------------------------------------------------------------------------------
# Edge: what the provider cluster shows
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    """What the status needs of one pod (no pod name leaves this object)."""

    ready: bool
    """The pod's Ready condition is True."""
    cause: str
    """Reason word of why it is not ready (one of :data:`REASON_ORDER`); ``""`` when ready."""
    label: str
    """How the message names the pods of this cause: ``Pending``, ``Failed``, ``not ready`` …"""
    detail: str
    """The provider's explanation, normalised so that identical causes compare equal."""


@dataclass(frozen=True)
class WorkloadView:
    """A placement's workload as the provider cluster shows it."""

    exists: bool
    """The Deployment exists."""
    replicas: int = 0
    """Pods that exist: the listed pods, else the Deployment's ``status.replicas``."""
    ready_replicas: int = 0
    """Of them, ready: the listed pods' Ready condition, else ``status.readyReplicas``."""
    replica_failure: str = ""
    """Message of the Deployment's ``ReplicaFailure`` condition when it is True."""
    pods: tuple[PodView, ...] = ()
    """The placement's pods that are not being deleted (listed only when some are not ready)."""
    job: bool = False
    """The workload is a Job (run to completion)."""
    succeeded: int = 0
    """A Job's pods that succeeded."""
    failed: int = 0
    """A Job's pods that failed."""
    complete: bool = False
    """The Job's ``Complete`` condition is True."""
    failure: tuple[str, str] | None = None
    """The Job's ``Failed`` condition (reason, message) when it is True."""


_PREEMPTION = re.compile(r"\s*preemption:.*$", re.DOTALL)
_SCHEDULER_SUMMARY = re.compile(r"^(\d+/\d+ nodes are available: .*?\.)(?:\s|$)", re.DOTALL)
_POD_FIELD = re.compile(r"\s*\bpod=\S+")
_FORBIDDEN_POD = re.compile(r'\bpods? "[^"]*" is forbidden: ')
_GENERATED_NAME = re.compile(r"\bworkload-[a-z0-9]+(?:-[a-z0-9]{5})?\b")


def normalise(message: str, *, pod_name: str = "", pod_uid: str = "") -> str:
    """A provider message without pod names or uids, so identical causes aggregate.

    Keeps of the scheduler's message its first sentence (``0/3 nodes are available: 3 Too many
    pods.``), dropping what its post-filters append (``preemption: ...``, DRA's ``no new claims
    to deallocate``); drops kubelet's ``pod=name_ns(uid)``, the
    ``pods "name" is forbidden:`` prefix of admission errors, and names generated for the
    workload's ReplicaSets and pods; collapses whitespace; keeps at most :data:`MAX_DETAIL`
    characters.
    """
    text = message
    for secret in (pod_name, pod_uid):
        if secret:
            text = text.replace(secret, "")
    summary = _SCHEDULER_SUMMARY.match(text)
    text = summary.group(1) if summary else _PREEMPTION.sub("", text)
    text = _POD_FIELD.sub("", text)
    text = _FORBIDDEN_POD.sub("pod creation forbidden: ", text)
    text = _GENERATED_NAME.sub("workload", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return {
        str(c.get("type")): c for c in conditions or () if isinstance(c, Mapping) and c.get("type")
    }


def _container_statuses(status: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, Mapping):
                yield item


def observe_pod(pod: Mapping[str, Any]) -> PodView:
    """Classify one pod: ready, or the cause (reason word + detail) of why it is not."""
    metadata, status = _mapping(pod, "metadata"), _mapping(pod, "status")
    name, uid = str(metadata.get("name") or ""), str(metadata.get("uid") or "")

    def clean(text: object) -> str:
        return normalise(str(text or ""), pod_name=name, pod_uid=uid)

    conditions = _conditions(pod)
    phase = str(status.get("phase") or "Pending")
    if phase == "Failed":
        detail = clean(status.get("message") or status.get("reason") or "")
        for container in _container_statuses(status):
            terminated = (container.get("state") or {}).get("terminated") or {}
            if not detail and terminated:
                detail = clean(
                    f"container {container.get('name')}: "
                    f"{terminated.get('reason') or 'terminated'}"
                    f" (exit code {terminated.get('exitCode')})"
                )
        return PodView(False, PODS_FAILED, "Failed", detail or "Failed")
    if conditions.get("Ready", {}).get("status") == "True":
        return PodView(True, "", "", "")
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        detail = clean(scheduled.get("message") or scheduled.get("reason") or "Unschedulable")
        return PodView(False, UNSCHEDULABLE, "Pending", detail)
    waiting_reason = ""
    for container in _container_statuses(status):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in WAITING_REASONS:
            message = clean(waiting.get("message"))
            detail = f"container {container.get('name')}" + (f": {message}" if message else "")
            return PodView(False, reason, reason, detail)
        waiting_reason = waiting_reason or reason
    ready = conditions.get("Ready", {})
    detail = clean(ready.get("message") or waiting_reason or ready.get("reason") or phase)
    return PodView(False, NOT_READY, "not ready", detail)


def _deleting(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    return isinstance(metadata, Mapping) and bool(metadata.get("deletionTimestamp"))


def observe_workload(
    deployment: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]] | None = None
) -> WorkloadView:
    """What the status needs of a Deployment and, when listed, its pods.

    Without ``pods`` the replica counts are the Deployment's. With them (listed when not every
    replica was ready), the counts come from the same pods as the reasons, so the status never
    says "0 replicas" next to "2 pod(s) not ready" while the Deployment's status lags. Pods
    being deleted are skipped.
    """
    if deployment is None:
        return WorkloadView(exists=False)
    status = _mapping(deployment, "status")
    failure = _conditions(deployment).get("ReplicaFailure", {})
    replica_failure = ""
    if failure.get("status") == "True":
        replica_failure = normalise(str(failure.get("message") or failure.get("reason") or ""))
    if pods is None:
        return WorkloadView(
            exists=True,
            replicas=int(status.get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
            replica_failure=replica_failure,
        )
    views = tuple(observe_pod(pod) for pod in pods if not _deleting(pod))
    return WorkloadView(
        exists=True,
        replicas=len(views),
        ready_replicas=sum(view.ready for view in views),
        replica_failure=replica_failure,
        pods=views,
    )


def observe_job(
    job: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]] | None = None
) -> WorkloadView:
    """What the status needs of a Job and, when listed, its pods (succeeded ones skipped).

    Counts come from the Job's status (``active``, ``ready``, ``succeeded``, ``failed``); with
    ``pods``, the ready count and the reasons come from the pods that did not succeed.
    """
    if job is None:
        return WorkloadView(exists=False, job=True)
    status = _mapping(job, "status")
    conditions = _conditions(job)
    failed = conditions.get("Failed", {})
    failure = None
    if failed.get("status") == "True":
        failure = (
            str(failed.get("reason") or JOB_FAILED),
            normalise(str(failed.get("message") or "")),
        )
    base = WorkloadView(
        exists=True,
        replicas=int(status.get("active") or 0),
        ready_replicas=int(status.get("ready") or 0),
        job=True,
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        complete=conditions.get("Complete", {}).get("status") == "True",
        failure=failure,
    )
    if pods is None:
        return base
    views = tuple(
        observe_pod(pod)
        for pod in pods
        if not _deleting(pod) and _mapping(pod, "status").get("phase") != "Succeeded"
    )
    return replace(base, ready_replicas=sum(view.ready for view in views), pods=views)


# --------------------------------------------------------------------------------------
# Plan: observed workload -> status
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """Phase, and the Ready condition's status, reason and message."""

    phase: PlacementPhase
    ready: bool
    reason: str
    message: str


def explain(*, wanted: int, suspended: bool, workload: WorkloadView) -> Readiness:
    """Why a placement is (not) ready: the table in this module's docstring."""
    if suspended:
        return Readiness("Suspended", True, SUSPENDED, "suspended: no replica wanted")
    if workload.job and workload.complete:
        return Readiness("Succeeded", True, JOB_COMPLETE, f"{workload.succeeded} pod(s) succeeded")
    if workload.job and workload.failure is not None:
        reason, detail = workload.failure
        failed = _explain_pods(workload)
        message = "; ".join([f"the Job failed: {detail or reason}", *failed[:MAX_CAUSES]])
        return Readiness("Failed", False, reason, message)
    if not workload.exists:
        return Readiness(
            "Pending",
            False,
            WORKLOAD_MISSING,
            "the workload is not on the provider cluster; the agent applies it again",
        )
    ready = workload.ready_replicas
    if ready >= wanted:
        return Readiness("Running", True, ALL_READY, f"{ready}/{wanted} replicas ready")
    return _not_ready(wanted, workload)


def _explain_pods(workload: WorkloadView) -> list[str]:
    """``N pod(s) <label>: <detail>`` per distinct cause of the pods that are not ready."""
    causes = Counter((pod.cause, pod.label, pod.detail) for pod in workload.pods if not pod.ready)
    return [f"{n} pod(s) {label}: {detail}" for (_, label, detail), n in causes.most_common()]


def _not_ready(wanted: int, workload: WorkloadView) -> Readiness:
    """Why fewer than ``wanted`` replicas are ready: the first cause of :data:`REASON_ORDER`."""
    ready = workload.ready_replicas
    causes: Counter[tuple[str, str, str]] = Counter(
        (pod.cause, pod.label, pod.detail) for pod in workload.pods if not pod.ready
    )
    rank = {reason: i for i, reason in enumerate(REASON_ORDER)}
    ordered = sorted(causes.items(), key=lambda kv: (rank[kv[0][0]], -kv[1], kv[0][2]))
    parts = [f"{n} pod(s) {label}: {detail}" for (_, label, detail), n in ordered]
    reasons = [cause for (cause, _, _), _ in ordered]
    if workload.replica_failure:
        parts.append(f"pods not created: {workload.replica_failure}")
        reasons.append(REPLICA_FAILURE)
    phase: PlacementPhase = "Degraded" if ready > 0 else "Pending"
    if not parts:
        return Readiness(phase, False, NOT_READY, f"{ready}/{wanted} replicas ready")
    reason = min(reasons, key=rank.__getitem__)
    # The cause that names the condition comes first.
    first = reasons.index(reason)
    parts.insert(0, parts.pop(first))
    shown = parts[:MAX_CAUSES]
    if len(parts) > MAX_CAUSES:
        shown.append(f"and {len(parts) - MAX_CAUSES} more cause(s)")
    return Readiness(phase, False, reason, "; ".join(shown))


def _with_ready(
    previous: LeasePlacementStatus | None,
    *,
    ready: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> LeasePlacementStatus:
    conditions = set_condition(
        previous.conditions if previous else None,
        type_=READY,
        status="True" if ready else "False",
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )
    base = previous.model_copy() if previous else LeasePlacementStatus()
    return base.model_copy(update={"conditions": conditions, "message": message})


def placement_status(
    placement: LeasePlacement,
    workload: WorkloadView,
    *,
    previous: LeasePlacementStatus | None,
    now: datetime,
) -> LeasePlacementStatus:
    """The status of a placement given its observed workload (``lastReportTime`` = ``now``).

    Args:
        placement: the placement, parsed at the edge.
        workload: what the provider cluster shows (:func:`observe_workload`).
        previous: the status the placement carries (its conditions' transition times are kept).
        now: the current time (timezone-aware; truncated to seconds).
    """
    now = now.replace(microsecond=0)
    wanted = wanted_replicas(placement)
    if placement.spec.job is not None:  # the pods still to run: at most the completions left
        wanted = min(wanted, max(0, placement.spec.job.completions - workload.succeeded))
    readiness = explain(wanted=wanted, suspended=placement.spec.suspend, workload=workload)
    generation = placement.metadata.generation
    status = _with_ready(
        previous,
        ready=readiness.ready,
        reason=readiness.reason,
        message=readiness.message,
        generation=generation,
        now=now,
    )
    return status.model_copy(
        update={
            "phase": readiness.phase,
            "replicas": workload.replicas,
            "ready_replicas": workload.ready_replicas,
            "namespace": target_namespace(placement_name(placement)),
            "observed_generation": generation,
            "last_report_time": now,
            "succeeded": workload.succeeded if workload.job else None,
            "failed": workload.failed if workload.job else None,
        }
    )


def observe_endpoints(
    placement: LeasePlacement,
    objects: Mapping[tuple[str, str], JSON],
    *,
    publish: ExposeConfig | None,
) -> endpoints.Observed | None:
    """The endpoints of a placement from its endpoint objects (``None``: it exposes nothing)."""
    if not placement.spec.expose:
        return None
    work = placement_work(placement, runtime_class=None, publish=publish)
    name = placement_name(placement)
    return endpoints.observe(
        publication(work),
        placement=name,
        namespace=target_namespace(name),
        config=publish,
        objects=objects,
    )


def with_endpoints(
    status: LeasePlacementStatus,
    observed: endpoints.Observed | None,
    *,
    generation: int | None,
    now: datetime,
) -> LeasePlacementStatus:
    """``status`` with the placement's endpoints and its ``Endpoints`` condition.

    Without exposed ports (``observed`` is ``None``) both are absent.
    """
    if observed is None:
        kept = [c for c in status.conditions or () if c.type != ENDPOINTS_CONDITION]
        return status.model_copy(update={"endpoints": None, "conditions": kept or None})
    conditions = set_condition(
        status.conditions,
        type_=ENDPOINTS_CONDITION,
        status="True" if observed.ok else "False",
        reason=observed.reason,
        message=observed.message,
        observed_generation=generation,
        now=now.replace(microsecond=0),
    )
    return status.model_copy(
        update={"endpoints": list(observed.endpoints) or None, "conditions": conditions}
    )


def invalid_status(
    error: InvalidPlacement,
    *,
    generation: int | None,
    previous: LeasePlacementStatus | None,
    now: datetime,
) -> LeasePlacementStatus:
    """The status of a placement the agent cannot read: ``Failed``, Ready=False/InvalidPlacement.

    The agent applies nothing for such a placement; what it applied before stays as it was.
    """
    now = now.replace(microsecond=0)
    message = str(error)[:MAX_INVALID_MESSAGE]
    status = _with_ready(
        previous, ready=False, reason=INVALID, message=message, generation=generation, now=now
    )
    return status.model_copy(
        update={"phase": "Failed", "observed_generation": generation, "last_report_time": now}
    )


def needs_write(
    previous: LeasePlacementStatus | None,
    new: LeasePlacementStatus,
    *,
    now: datetime,
    refresh: timedelta = STATUS_REFRESH,
) -> bool:
    """Whether ``new`` is worth a write.

    It is when anything but the report time changed, or the last report is older than
    ``refresh`` (so ``lastReportTime`` says the agent still looks, at a bounded write rate).
    """
    if previous is None or previous.last_report_time is None:
        return True
    if now - previous.last_report_time >= refresh:
        return True
    ignore = {"last_report_time"}
    return bool(previous.model_dump(exclude=ignore) != new.model_dump(exclude=ignore))


def status_patch(status: LeasePlacementStatus) -> JSON:
    """The wire form of a status, for a merge patch of the status subresource."""
    return status.to_api()


def ready_condition_reason(status: LeasePlacementStatus | None) -> str:
    """The Ready condition's reason of a status, ``""`` without one (for logs and tests)."""
    condition = get_condition(status.conditions if status else None, READY)
    return condition.reason if condition else ""
