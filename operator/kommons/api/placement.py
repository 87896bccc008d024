"""LeasePlacement: the hub's instruction to one provider (namespaced, in its hub namespace)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from kommons.api.common import (
    API_VERSION,
    CONDITIONS_EXTRA,
    ApiModel,
    Condition,
    DnsLabel,
    LocalObjectReference,
    ObjectName,
    PositiveDecimal,
    Resource,
    StatusModel,
    list_map,
)
from kommons.api.lease import ConfigSource, ExposedPort, JobSpec, Resources, StorageRequest
from kommons.api.template import PodTemplate

PlacementPhase = Literal[
    "Pending",
    "Materializing",
    "Running",
    "Degraded",
    "Suspended",
    "Succeeded",
    "Failed",
    "Terminating",
]
"""Phase of a placement as the agent reports it."""


class LeaseRef(ApiModel):
    """The ComputeLease a placement belongs to."""

    namespace: DnsLabel = Field(description="Namespace of the lease.")
    name: ObjectName = Field(description="Name of the lease.")
    uid: str = Field(min_length=1, max_length=64, description="UID of the lease.")


class LeasePlacementSpec(ApiModel):
    """The workload one provider must run for a lease, with the price locked at placement."""

    lease_ref: LeaseRef = Field(description="The lease this placement belongs to.")
    provider: ObjectName = Field(description="The Provider that runs it.")
    replicas: int = Field(ge=0, le=1000, description="Replicas to run on this provider.")
    resources: Resources = Field(description="Resources per replica.")
    template: PodTemplate = Field(
        description="The sanitised pod template (the lease's template after hub checks)."
    )
    price_per_hour: PositiveDecimal = Field(
        description="Price per hour of one replica, locked at placement, in settlement-token units."
    )
    billing_account: ObjectName = Field(
        description="The BillingAccount selecting the lease's namespace: the account its"
        " metered usage is charged to."
    )
    suspend: bool = Field(default=False, description="Scale to zero, keep the placement.")
    lease_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the lease this reflects."
    )
    fencing_token: int | None = Field(
        default=None,
        ge=1,
        description="Fencing token issued by the hub, strictly increasing over all the"
        " placements a lease ever had. The agent labels the workload with it and removes a"
        " workload whose placement was superseded (deleted, or replaced by a higher token).",
    )
    expires_at: datetime | None = Field(
        default=None, description="When the lease term ends; absent = until deleted."
    )
    job: JobSpec | None = Field(
        default=None,
        description="Run to completion as a batch/v1 Job: this provider's share of the lease's"
        " completions, its backoffLimit; replicas is the parallelism. Absent = a Deployment.",
    )
    expose: list[ExposedPort] | None = Field(
        default=None,
        max_length=16,
        description="Ports to publish.",
        json_schema_extra=list_map("name"),
    )
    config_from: list[ConfigSource] | None = Field(
        default=None,
        max_length=32,
        description="Secrets and ConfigMaps copied with the workload (from the hub).",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=8, description="Image pull Secrets copied with the workload."
    )
    config_revisions: dict[str, Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=40,
        description="What the agent copies to the provider: Kind/name (Secret/app-env,"
        " ConfigMap/app-config) of every configFrom and imagePullSecrets source, to the"
        " resourceVersion of the source the hub's copy in this namespace was made from"
        " (docs/config-and-secrets.md). Names and versions only, never data.",
    )
    storage: list[StorageRequest] | None = Field(
        default=None,
        max_length=8,
        description="Persistent volumes per replica.",
        json_schema_extra=list_map("name"),
    )


ENDPOINTS_CONDITION = "Endpoints"
"""Condition type on a placement's status saying whether every exposed port has its endpoint."""
ENDPOINT_URL_MAX = 300
"""Longest endpoint URL an agent may report."""


class PlacementEndpoint(StatusModel):
    """Where one exposed port of a placement is reachable, as the provider's agent reports it.

    Provider-written: the hub checks it (only ports the lease exposes, URL shape) before it
    copies it to the lease's ``status.endpoints``.
    """

    name: DnsLabel = Field(description="Name of the exposed port (spec.expose[].name).")
    url: str = Field(
        min_length=1,
        max_length=ENDPOINT_URL_MAX,
        description="scheme://host[:port]: https or http through the provider's Ingress, tcp"
        " or udp for a NodePort, a LoadBalancer or the in-cluster Service.",
    )


METERING_POD_LIMIT = 1000
"""At most this many pods in a placement's metering checkpoint (spec.replicas is at most 1000)."""
METERING_INTERVAL_LIMIT = 32
"""At most this many closed ready intervals kept per pod (the oldest are pruned first)."""


class ReadyInterval(StatusModel):
    """A closed interval in which a pod was Ready: [start, end), whole seconds."""

    start: datetime = Field(description="When the pod became Ready (its Ready condition).")
    end: datetime = Field(description="When it stopped being Ready (or was last seen Ready).")


class PodMetering(StatusModel):
    """One pod's ready time as the agent observed it from the pod itself."""

    uid: str = Field(min_length=1, max_length=64, description="UID of the pod.")
    ready_since: datetime | None = Field(
        default=None,
        description="The lastTransitionTime of the pod's Ready=True condition while it is"
        " Ready (an open interval, metered up to metering.observedAt); absent when not Ready.",
    )
    intervals: list[ReadyInterval] | None = Field(
        default=None,
        max_length=METERING_INTERVAL_LIMIT,
        description="Closed ready intervals, oldest first, kept for the retention window"
        " (at most 32).",
    )
    ready_seconds: int = Field(
        default=0,
        ge=0,
        description="Seconds of every closed interval of this pod, pruned ones included"
        " (monotonic).",
    )


class PlacementMetering(StatusModel):
    """The agent's metering checkpoint of a placement (``status.metering``).

    Pure data: :mod:`kommons.metering.accounting` advances it from the pods; the hub accepts
    it only within what it observed itself (:mod:`kommons.metering.acceptance`).
    """

    observed_at: datetime = Field(
        description="When the agent last observed the pods (open intervals end here)."
    )
    complete_since: datetime | None = Field(
        default=None,
        description="No pruned interval reaches this instant or later: the intervals listed"
        " are every ready interval from here on. Absent = nothing was ever pruned.",
    )
    ready_seconds: int = Field(
        default=0,
        ge=0,
        description="Replica-seconds of every closed interval of the placement, pruned and"
        " retired pods included (monotonic; open intervals not counted).",
    )
    retired_seconds: int = Field(
        default=0,
        ge=0,
        description="Of ready_seconds, those of pods no longer listed (gone, all intervals"
        " pruned).",
    )
    pods: list[PodMetering] | None = Field(
        default=None,
        max_length=METERING_POD_LIMIT,
        description="Pods with an open interval or retained closed intervals.",
    )


class LeasePlacementStatus(StatusModel):
    """What the provider's agent observed and metered."""

    phase: PlacementPhase | None = Field(
        default=None,
        description="Pending, Materializing, Running, Degraded, Suspended, Succeeded (a Job"
        " completed), Failed or Terminating.",
    )
    replicas: int | None = Field(default=None, ge=0, description="Replicas that exist.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Replicas ready.")
    succeeded: int | None = Field(
        default=None, ge=0, description="Job placements: pods that completed successfully."
    )
    failed: int | None = Field(default=None, ge=0, description="Job placements: pods that failed.")
    namespace: str | None = Field(
        default=None, description="Namespace of the workload on the provider cluster."
    )
    last_report_time: datetime | None = Field(
        default=None,
        description="When the agent last wrote this status: on every change, and at least"
        " every 60 seconds while it watches the placement.",
    )
    metering: PlacementMetering | None = Field(
        default=None,
        description="Metering checkpoint written by the agent: per-pod ready intervals from"
        " the pods' own Ready conditions and monotonic counters (docs/metering.md). Written on"
        " every transition and at least every --metering-report-seconds while a pod is ready.",
    )
    endpoints: list[PlacementEndpoint] | None = Field(
        default=None,
        max_length=16,
        description="Where each exposed port is reachable (the provider's publishing mode:"
        " docs/endpoints.md); the Endpoints condition says why one is missing.",
    )
    message: str | None = Field(
        default=None,
        description="The Ready condition's message: the provider-side cause of replicas not"
        " ready, counted and without pod names (e.g. '2 pod(s) Pending: 0/3 nodes are"
        " available: 3 Too many pods.'), or 'N/N replicas ready'.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Conditions: Ready, whose reason is AllReplicasReady, Suspended,"
        " JobComplete, BackoffLimitExceeded (or another reason of the Job's Failed condition),"
        " InvalidPlacement, WorkloadMissing, PodsUnschedulable, ErrImagePull,"
        " ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError, PodsFailed,"
        " ReplicaFailure or ContainersNotReady; Endpoints (with spec.expose), whose reason is"
        " Published, PortNotPublishable or AddressPending.",
        json_schema_extra=CONDITIONS_EXTRA,
    )


class LeasePlacement(Resource):
    """A LeasePlacement object."""

    KIND = "LeasePlacement"
    api_version: str = API_VERSION
    kind: str = "LeasePlacement"
    spec: LeasePlacementSpec
    status: LeasePlacementStatus | None = None
