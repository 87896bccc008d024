"""ComputeLease: a tenant's rental of compute from a pool (namespaced, short name ``cl``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from kommons.api.common import (
    API_VERSION,
    CONDITIONS_EXTRA,
    ApiModel,
    Cel,
    Condition,
    DnsLabel,
    Duration,
    LabelValue,
    LocalObjectReference,
    ObjectName,
    PositiveDecimal,
    PositiveQuantity,
    Resource,
    StatusDecimal,
    StatusModel,
    cel_rules,
    list_map,
)
from kommons.api.template import PodTemplate

LeasePhase = Literal[
    "Pending",
    "Scheduled",
    "Running",
    "Degraded",
    "Suspended",
    "Succeeded",
    "Expired",
    "Failed",
    "Terminating",
]
"""Lifecycle phase of a ComputeLease."""


class GpuRequest(ApiModel):
    """GPUs per replica, of one model."""

    count: int = Field(ge=1, le=64, description="GPUs per replica (1 to 64).")
    model: LabelValue = Field(
        description="GPU model, matched against the provider nodes' nvidia.com/gpu.product"
        " label (e.g. nvidia-a100); letters, digits, '-', '_' and '.', at most 63 characters."
    )


class Resources(ApiModel):
    """What one replica reserves (and is billed for while ready, at the locked price)."""

    cpu: PositiveQuantity = Field(description="CPU per replica, a positive quantity (500m, 4).")
    memory: PositiveQuantity = Field(
        description="Memory per replica, a positive quantity (256Mi, 16Gi)."
    )
    gpu: GpuRequest | None = Field(default=None, description="GPUs per replica; absent = none.")


class PlacementPreferences(ApiModel):
    """Where the replicas may go."""

    spread: bool = Field(
        default=False,
        description="Spread replicas across distinct providers where possible.",
    )
    regions: list[LabelValue] | None = Field(
        default=None,
        max_length=32,
        description="Allowed provider regions; absent or empty = any region of the pool.",
    )
    providers: list[ObjectName] | None = Field(
        default=None,
        max_length=256,
        description="Allow-list of Provider names; absent or empty = any provider of the pool.",
    )


class ExposedPort(ApiModel):
    """A port of the workload, served by a Service on each provider (docs/endpoints.md)."""

    name: DnsLabel = Field(description="Port name, unique in the lease (DNS label).")
    port: int = Field(ge=1, le=65535, description="Container port to publish.")
    protocol: Literal["TCP", "UDP"] = Field(default="TCP", description="TCP or UDP.")
    public: bool = Field(
        default=False,
        description="Publish it through the provider's way in (its Ingress, a NodePort or a"
        " LoadBalancer, as the provider configured); false = reachable from the lease's own"
        " pods on that provider only.",
    )


class ConfigSource(ApiModel):
    """A Secret or ConfigMap of the lease's namespace copied along with the workload."""

    kind: Literal["Secret", "ConfigMap"] = Field(description="Secret or ConfigMap.")
    name: ObjectName = Field(description="Name of the object in the lease's namespace.")


class StorageRequest(ApiModel):
    """A persistent volume per replica, from the provider's storage class of a tier.

    Each replica gets its own ReadWriteOnce claim (the workload is then a StatefulSet with one
    claim template per entry). The data lives on the provider that holds the claim: a failover
    or a move to another provider starts with empty volumes there, nothing is moved or copied
    (docs/storage.md).
    """

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            Cel(
                "!has(self.reclaimPolicy) || self.reclaimPolicy == 'Delete'",
                "spec.storage[].reclaimPolicy Retain is planned, not built yet: only Delete is"
                " accepted (the claims are deleted with the placement)",
                field_path=".reclaimPolicy",
            )
        )
    )

    name: DnsLabel = Field(description="Volume name, unique in the lease (DNS label).")
    size: PositiveQuantity = Field(
        description="Size of each replica's volume, a positive quantity (50Gi); reserved on"
        " the provider and billed per GiB-hour at its storageGiBHour price of the tier."
    )
    tier: LabelValue = Field(
        default="standard",
        description="Storage tier (e.g. fast, standard); each provider maps its tiers to its"
        " own storage classes and offers capacity per tier. Providers without it are left out.",
    )
    mount_path: Annotated[str, Field(min_length=2, max_length=1024, pattern=r"^/")] = Field(
        description="Absolute path where the volume is mounted in every container."
    )
    reclaim_policy: Literal["Delete", "Retain"] = Field(
        default="Delete",
        description="What happens to the data when the placement that has it ends (lease"
        " deleted, expired, scaled down, or failed over to another provider): Delete (the"
        " claims are deleted with the placement). Retain (keep the claims for a later lease) is"
        " planned and refused at admission.",
    )


class JobSpec(ApiModel):
    """A run-to-completion workload: the lease ends when its pods have succeeded enough times.

    ``spec.replicas`` is the Job's parallelism (pods running at once).
    """

    completions: int = Field(
        ge=1,
        le=10000,
        description="Successful pod completions that finish the lease (1 to 10000); at least"
        " spec.replicas.",
    )
    backoff_limit: int = Field(
        default=6,
        ge=0,
        le=100,
        description="Failed pods retried before the lease ends Failed (0 to 100, default 6),"
        " per provider the lease runs on.",
    )


JOB_RULES = cel_rules(
    Cel(
        "!has(self.job) || self.job.completions >= self.replicas",
        "spec.job.completions must be at least spec.replicas: replicas is the Job's"
        " parallelism, and replicas beyond completions would reserve capacity no pod uses",
        field_path=".job.completions",
    ),
    Cel(
        "!has(self.job) || !has(self.template.spec.restartPolicy)",
        "spec.template.spec.restartPolicy must be unset for a Job lease: its pods run with"
        " restartPolicy Never and are retried up to spec.job.backoffLimit times",
        field_path=".template.spec.restartPolicy",
    ),
    Cel(
        "has(self.job) == has(oldSelf.job) && (!has(self.job) || (self.job == oldSelf.job"
        " && self.replicas == oldSelf.replicas && self.resources == oldSelf.resources"
        " && self.template == oldSelf.template && has(self.imagePullSecrets) =="
        " has(oldSelf.imagePullSecrets) && (!has(self.imagePullSecrets)"
        " || self.imagePullSecrets == oldSelf.imagePullSecrets)))",
        "spec.job cannot be added or removed, and a Job lease's job, replicas, resources,"
        " template and imagePullSecrets are immutable (a started Job cannot change): create a"
        " new lease",
        reason="FieldValueForbidden",
    ),
)
"""Admission rules of Job-style leases (on ``ComputeLeaseSpec``)."""

STORAGE_RULES = cel_rules(
    Cel(
        "!has(self.job) || !has(self.storage) || size(self.storage) == 0",
        "spec.storage is not supported for a Job lease (spec.job): persistent volumes are"
        " for long-running leases",
        field_path=".storage",
        reason="FieldValueForbidden",
    ),
    Cel(
        "has(self.storage) == has(oldSelf.storage) && (!has(self.storage)"
        " || self.storage == oldSelf.storage)",
        "spec.storage is immutable (the volumes exist on the providers): create a new lease",
        field_path=".storage",
        reason="FieldValueForbidden",
    ),
    Cel(
        "!has(self.storage) || self.storage.all(s, self.storage.exists_one(t,"
        " t.mountPath == s.mountPath))",
        "spec.storage[].mountPath must be unique in the lease",
        field_path=".storage",
    ),
    Cel(
        "!has(self.storage) || !has(self.template.spec.volumes)"
        " || self.storage.all(s, self.template.spec.volumes.all(v, !has(v.name)"
        " || v.name != s.name))",
        "spec.storage[].name must differ from every spec.template.spec.volumes[].name: the"
        " agent adds a volume of that name to the pod",
        field_path=".storage",
    ),
    Cel(
        "!has(self.storage) || self.storage.all(s, self.template.spec.containers.all(c,"
        " !has(c.volumeMounts) || c.volumeMounts.all(m, !has(m.mountPath)"
        " || m.mountPath != s.mountPath)) && (!has(self.template.spec.initContainers)"
        " || self.template.spec.initContainers.all(c, !has(c.volumeMounts)"
        " || c.volumeMounts.all(m, !has(m.mountPath) || m.mountPath != s.mountPath))))",
        "spec.storage[].mountPath must differ from every volumeMounts[].mountPath of the"
        " template's containers: the agent mounts the volume there in every container",
        field_path=".storage",
    ),
)
"""Admission rules of persistent storage (on ``ComputeLeaseSpec``)."""


EXPOSE_UNIQUE_PORTS = Cel(
    "self.all(x, self.exists_one(y, y.port == x.port && y.protocol == x.protocol))",
    "spec.expose: each port and protocol may be exposed once (a Service cannot serve one port"
    " under two names)",
)
"""Admission rule of ``spec.expose``: the provider's Service would refuse a duplicate port."""


class PoolRef(ApiModel):
    """The ProviderPool a lease draws from."""

    name: ObjectName = Field(description="Name of the ProviderPool.")


class ComputeLeaseSpec(ApiModel):
    """What a tenant rents: replicas of a pod, from a pool, under a price cap."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": JOB_RULES["x-kubernetes-validations"]
            + STORAGE_RULES["x-kubernetes-validations"]
        }
    )

    pool_ref: Annotated[
        PoolRef,
        Cel("self == oldSelf", "poolRef is immutable: create a new lease to change the pool"),
    ] = Field(description="The ProviderPool to lease from; immutable.")
    replicas: int = Field(default=1, ge=0, le=1000, description="Number of replicas (0 to 1000).")
    resources: Resources = Field(description="Resources per replica; what is reserved.")
    template: PodTemplate = Field(
        description="The pod every replica runs (a PodTemplateSpec). Fields that escape the"
        " sandbox or the placement are refused."
    )
    duration: Duration | None = Field(
        default=None,
        description="Lease term, e.g. 2h or 1d12h, counted from startedAt (from the first"
        " placement while no replica has started yet); when it ends the lease is Expired, its"
        " workload removed and the lease kept for the record. Absent = until deleted.",
    )
    job: JobSpec | None = Field(
        default=None,
        description="Run to completion (a batch/v1 Job per provider) instead of running until"
        " deleted: the lease ends Succeeded after job.completions successful pods, or Failed"
        " once a provider's Job exceeds job.backoffLimit. Immutable.",
    )
    max_price_per_hour: PositiveDecimal = Field(
        description="Most the tenant pays per hour for one replica (its cpu, memory, gpu and"
        " storage at the provider's prices), in settlement-token units as a decimal string, e.g."
        ' "5.00". Providers priced above it are not considered.'
    )
    placement: PlacementPreferences | None = Field(
        default=None, description="Placement preferences: spread, regions, providers."
    )
    suspend: bool = Field(
        default=False,
        description="The agent scales the placements' workloads to zero and their reserved"
        " capacity is released to the market; the lease and its placements stay. false"
        " resumes, on the same providers when they still have room, elsewhere otherwise.",
    )
    expose: Annotated[list[ExposedPort], EXPOSE_UNIQUE_PORTS] | None = Field(
        default=None,
        max_length=16,
        description="Ports served by a Service on each provider; public ones also through the"
        " provider's Ingress, NodePort or LoadBalancer (docs/endpoints.md).",
        json_schema_extra=list_map("name"),
    )
    config_from: list[ConfigSource] | None = Field(
        default=None,
        max_length=32,
        description="Secrets and ConfigMaps of this namespace copied with the workload to the"
        " placement's namespace on the provider, under their own names, and kept in sync: the"
        " template references them as usual (envFrom, env valueFrom, configMap/secret volumes)."
        " The template may reference no other ConfigMap or Secret. Nothing is placed while one"
        " does not exist (condition Scheduled, reason ConfigNotFound).",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None,
        max_length=8,
        description="Image pull Secrets of this namespace, copied with the workload like"
        " configFrom Secrets (never logged) and set as the pods' imagePullSecrets (the template"
        " itself may not set them). Immutable for a Job lease.",
    )
    storage: list[StorageRequest] | None = Field(
        default=None,
        max_length=8,
        description="Persistent volumes per replica, by provider storage tier: each replica"
        " gets its own claim of each entry (docs/storage.md). Immutable; not with spec.job.",
        json_schema_extra=list_map("name"),
    )


class LeasePlacementSummary(StatusModel):
    """Where some replicas of a lease run."""

    provider: str = Field(description="Provider name.")
    replicas: int = Field(ge=0, description="Replicas placed on this provider.")
    ready_replicas: int = Field(default=0, ge=0, description="Of these, ready replicas.")
    price_per_hour: StatusDecimal | None = Field(
        default=None, description="Price per hour locked at placement, for these replicas."
    )
    placed_at: datetime | None = Field(default=None, description="When the placement was made.")
    namespace: str | None = Field(
        default=None, description="Hub namespace of the LeasePlacement (kommons-provider-NAME)."
    )
    placement_name: str | None = Field(default=None, description="Name of the LeasePlacement.")


class LeaseCost(StatusModel):
    """What the lease has cost so far."""

    accrued: StatusDecimal = Field(
        default="0",
        description="Accrued cost in settlement-token units: settled plus the usage of the"
        " epochs not settled yet. It only grows, except that time accepted after a provider's"
        " last heartbeat is withdrawn once the hub records that provider's outage (open epochs"
        " only).",
    )
    settled: StatusDecimal | None = Field(
        default=None,
        description="Cost of the epochs already settled on chain, in settlement-token units.",
    )
    last_metered_at: datetime | None = Field(
        default=None, description="End of the last metered interval."
    )


class LeaseUsage(StatusModel):
    """Metered usage of one placement in one settlement epoch, as the hub accepted it.

    Written by the hub only, set (never added to) from the provider's reports clipped to what
    the hub observed; frozen once the epoch is sealed, folded into ``cost.settled`` and dropped
    once the epoch is confirmed on chain.
    """

    epoch_id: int = Field(ge=0, description="The SettlementEpoch's spec.epochId.")
    provider: str = Field(description="Provider that ran the replicas.")
    placement_uid: str = Field(description="UID of the LeasePlacement metered.")
    billing_account: str = Field(description="BillingAccount charged.")
    ready_seconds: int = Field(
        ge=0, description="Replica-seconds ready within the epoch that the hub accepted."
    )
    amount: StatusDecimal = Field(
        description="ready_seconds × the placement's locked price per replica-hour / 3600,"
        " rounded down to the token's base unit, in settlement-token units."
    )


class ChosenProvider(StatusModel):
    """A provider the scheduler chose and how many replicas it got."""

    provider: str = Field(description="Provider name.")
    replicas: int = Field(ge=0, description="Replicas assigned to it.")
    price_per_hour: StatusDecimal | None = Field(
        default=None, description="Price of one replica-hour on it, locked for the placement."
    )
    list_price_per_hour: StatusDecimal | None = Field(
        default=None,
        description="Its list price of one replica-hour, shown when a Utilization provider"
        " quoted more: pricePerHour = listPricePerHour × priceMultiplier, rounded up.",
    )
    price_multiplier: StatusDecimal | None = Field(
        default=None,
        description="The utilisation multiplier of its quote (above 1, at most its"
        " maxMultiplier), shown with listPricePerHour.",
    )


class SchedulingDecision(StatusModel):
    """The scheduler's last decision, with a reason for every provider it rejected."""

    considered: int = Field(default=0, ge=0, description="Providers considered (in the pool).")
    feasible: int = Field(default=0, ge=0, description="Providers that passed every filter.")
    chosen: list[ChosenProvider] = Field(
        default_factory=list, description="Providers chosen, with their replicas."
    )
    rejected: dict[str, str] = Field(
        default_factory=dict,
        description="A sample of rejected providers (at most 10) by name, with the reason.",
    )
    rejected_counts: dict[str, int] = Field(
        default_factory=dict,
        description="How many providers each kind of reason rejected (Price, InsufficientCpu,"
        " InsufficientPods, NotReady ...), over all rejected providers.",
    )
    decided_at: datetime | None = Field(default=None, description="When the decision was made.")


class Endpoint(StatusModel):
    """An address where an exposed port of the lease is reachable."""

    name: str = Field(description="Name of the exposed port.")
    url: str = Field(
        description="scheme://host[:port]: https or http through the provider's Ingress, tcp or"
        " udp through a NodePort, a LoadBalancer or (non-public ports) the in-cluster Service."
    )
    provider: str | None = Field(default=None, description="Provider serving it.")


class LeaseHistoryEntry(StatusModel):
    """One thing that happened to a lease's placements: a move, a scale-down, an end."""

    time: datetime = Field(description="When the hub recorded it.")
    type: str = Field(
        description="What happened: FailedOver, Replaced, ScaledDown, Expired, Succeeded,"
        " Failed ..."
    )
    provider: str | None = Field(default=None, description="Provider the replicas left.")
    to: list[str] | None = Field(default=None, description="Providers the replicas went to.")
    replicas: int | None = Field(default=None, ge=0, description="Replicas concerned.")
    completions: int | None = Field(
        default=None,
        ge=0,
        description="Job leases: completions the placement that left had achieved, carried over"
        " (its replacement runs only the completions left).",
    )
    reason: str | None = Field(default=None, description="CamelCase reason.")
    message: str | None = Field(default=None, description="Human-readable cause.")


HISTORY_LIMIT = 20
"""At most this many history entries are kept on a lease (the newest)."""


class CarriedCompletions(StatusModel):
    """Completions of a Job placement that is being re-placed, recorded before it is deleted."""

    placement_uid: str = Field(description="UID of the LeasePlacement that leaves.")
    provider: str = Field(description="Provider it ran on.")
    completions: int = Field(
        ge=0,
        description="Pods it reported succeeded, at most the completions it was asked for.",
    )


class ComputeLeaseStatus(StatusModel):
    """What the hub observed and decided for a lease."""

    phase: LeasePhase | None = Field(
        default=None,
        description="Pending, Scheduled, Running, Degraded, Suspended, Succeeded, Expired,"
        " Failed or Terminating (docs/lifecycle.md says when each is shown).",
    )
    replicas: int | None = Field(
        default=None, ge=0, description="Replicas currently placed on providers."
    )
    ready_replicas: int | None = Field(default=None, ge=0, description="Replicas ready.")
    ready: str | None = Field(
        default=None,
        description="Ready replicas over desired, e.g. 2/2 (shown by kubectl get).",
    )
    providers: str | None = Field(
        default=None,
        description="Comma-separated providers running the lease (shown by kubectl get).",
    )
    placements: list[LeasePlacementSummary] | None = Field(
        default=None, description="Where the replicas run."
    )
    started_at: datetime | None = Field(
        default=None, description="When the first replica became ready."
    )
    expires_at: datetime | None = Field(
        default=None, description="When the lease term ends (startedAt + duration)."
    )
    succeeded: int | None = Field(
        default=None, ge=0, description="Job leases: pods that completed successfully."
    )
    failed: int | None = Field(
        default=None,
        ge=0,
        description="Job leases: pods that failed, on the placements that run the Job now.",
    )
    carried_completions: int | None = Field(
        default=None,
        ge=0,
        description="Job leases: completions achieved by placements that were re-placed or"
        " removed before their Job finished, kept by the hub and counted in succeeded.",
    )
    carrying: list[CarriedCompletions] | None = Field(
        default=None,
        max_length=1000,
        description="Job leases: placements being re-placed whose completions the hub recorded"
        " before deleting them (at most one per live placement); added to"
        " carriedCompletions once they are deleted.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    cost: LeaseCost | None = Field(default=None, description="Accrued cost.")
    usage: list[LeaseUsage] | None = Field(
        default=None,
        max_length=512,
        description="Metered usage per (epoch, placement) of the epochs not yet confirmed on"
        " chain.",
    )
    decision: SchedulingDecision | None = Field(
        default=None, description="The scheduler's last decision."
    )
    endpoints: list[Endpoint] | None = Field(
        default=None,
        description="Where exposed ports are reachable, per provider, as its agent reported and"
        " the hub checked them; follows the lease through failover (an EndpointChanged Event"
        " says when a URL changes). The Endpoints condition says why one is missing.",
    )
    billing_account: str | None = Field(
        default=None,
        description="The BillingAccount selecting the lease's namespace: the account charged for"
        " its metered usage (docs/payment.md).",
    )
    payment_suspended_at: datetime | None = Field(
        default=None,
        description="Set by the hub when it suspended the lease because its BillingAccount's"
        " escrow stayed short of the payment horizon past the grace period; cleared when a"
        " top-up covers it again and the lease resumes. spec.suspend is the tenant's and is"
        " never changed (docs/payment.md).",
    )
    last_fencing_token: int | None = Field(
        default=None,
        ge=0,
        description="The highest fencing token the hub issued to this lease's placements.",
    )
    history: list[LeaseHistoryEntry] | None = Field(
        default=None,
        max_length=HISTORY_LIMIT,
        description="The newest placement events (failovers, re-placements, scale-downs,"
        " ends), in time order, at most 20.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Conditions: Scheduled, Ready, PaymentOK, Endpoints (with spec.expose) ...",
        json_schema_extra=CONDITIONS_EXTRA,
    )


class ComputeLease(Resource):
    """A ComputeLease object."""

    KIND = "ComputeLease"
    api_version: str = API_VERSION
    kind: str = "ComputeLease"
    spec: ComputeLeaseSpec
    status: ComputeLeaseStatus | None = None


def ready_summary(ready: int, desired: int) -> str:
    """Return the ``status.ready`` column text, e.g. ``"1/2"``."""
    return f"{ready}/{desired}"
