"""Provider: one community cluster offering capacity (cluster-scoped, short name ``prov``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from kommons.api.common import (
    API_VERSION,
    CONDITIONS_EXTRA,
    LABEL_VALUE_PATTERN,
    Address,
    ApiModel,
    Cel,
    Condition,
    Decimal,
    LabelValue,
    Multiplier,
    PositiveQuantity,
    Quantity,
    Resource,
    SecretKeyRef,
    StatusModel,
    cel_rules,
)

ProviderPhase = Literal["Ready", "NotReady", "Unreachable", "Cordoned"]
"""Health of a Provider as the hub sees it."""

_KEYS_ARE_LABEL_VALUES = Cel(
    "self.all(k, size(k) <= 63 && k.matches('" + LABEL_VALUE_PATTERN + "'))",
    "keys must be GPU models or tiers: letters, digits, '-', '_' and '.', at most 63 characters",
)

PriceMap = Annotated[dict[str, Decimal], _KEYS_ARE_LABEL_VALUES]

_ONE = re.compile(r"0*1(\.0+)?")


class PricingPolicy(ApiModel):
    """How the provider's prices move with its utilisation (evaluated by the hub)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            Cel(
                "self.type == 'Utilization' || !has(self.maxMultiplier)"
                " || self.maxMultiplier.matches(r'^0*1(\\.0+)?$')",
                "maxMultiplier applies to type Utilization only: set type: Utilization or"
                " leave maxMultiplier out",
                field_path=".maxMultiplier",
            )
        )
    )

    type: Literal["Static", "Utilization"] = Field(
        default="Static",
        description="Static: list prices. Utilization: the hub quotes list prices times a"
        " multiplier from 1 (idle) to maxMultiplier (full), linear in the utilisation of the"
        " scarcest dimension the lease asks for (cpu, memory, GPUs of its model), measured at"
        " decision time against allocatable capped by the offer (docs/scheduling.md).",
    )
    max_multiplier: Multiplier = Field(
        default="1",
        description="Utilization only: the factor applied to list prices when full, from 1 to"
        " 10 with at most 4 decimals.",
    )

    @model_validator(mode="after")
    def _multiplier_needs_utilization(self) -> PricingPolicy:
        if self.type != "Utilization" and not _ONE.fullmatch(self.max_multiplier):
            raise ValueError(
                "maxMultiplier applies to type Utilization only: set type: Utilization or"
                " leave maxMultiplier out"
            )
        return self


class Pricing(ApiModel):
    """List prices in settlement-token units per hour, as decimal strings."""

    cpu_core_hour: Decimal = Field(description="Price of one CPU core for one hour.")
    memory_gib_hour: Decimal = Field(
        alias="memoryGiBHour", description="Price of one GiB of memory for one hour."
    )
    gpu_hour: PriceMap | None = Field(
        default=None,
        max_length=32,
        description="Price of one GPU for one hour, by model (nvidia.com/gpu.product).",
    )
    storage_gib_hour: PriceMap | None = Field(
        default=None,
        alias="storageGiBHour",
        max_length=16,
        description="Price of one GiB of persistent storage for one hour, by tier (the tiers"
        " of spec.storage of leases). A tier without a price is not offered. Billed with the"
        " replica while it is ready (docs/storage.md).",
    )
    policy: PricingPolicy | None = Field(
        default=None,
        description="Price policy: Static (list prices) or Utilization (list prices times a"
        " bounded multiplier rising as free capacity falls); absent = Static.",
    )


class Offer(ApiModel):
    """The ceiling the provider offers to the market (less than or equal to its capacity)."""

    cpu: PositiveQuantity | None = Field(default=None, description="CPU offered, e.g. 64.")
    memory: PositiveQuantity | None = Field(default=None, description="Memory offered, e.g. 256Gi.")
    gpus: int | None = Field(default=None, ge=0, le=4096, description="GPUs offered in total.")


PublishMode = Literal["None", "Ingress", "NodePort", "LoadBalancer"]
"""How a provider publishes a lease's public ports (docs/endpoints.md)."""


class ProviderExpose(ApiModel):
    """How the provider publishes the public ports of the leases it runs (its agent declares it)."""

    mode: PublishMode = Field(
        default="None",
        description="None (no public ports), Ingress (public TCP ports as HTTP hosts under the"
        " provider's domain), NodePort or LoadBalancer. The scheduler places a lease with public"
        " ports only where the mode can publish them.",
    )


class ProviderSpec(ApiModel):
    """A community cluster: how the hub reaches it, where it is, what it charges and offers."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            Cel(
                "self.mode != 'Push' || has(self.kubeconfigSecretRef)",
                "kubeconfigSecretRef is required when mode is Push: the hub needs a kubeconfig"
                " to reach the provider cluster",
                field_path=".kubeconfigSecretRef",
                reason="FieldValueRequired",
            )
        )
    )

    mode: Literal["Pull", "Push"] = Field(
        default="Pull",
        description="Pull: an agent in the provider cluster connects to the hub (default)."
        " Push: the hub runs the same agent loop itself, reaching the provider cluster with the"
        " kubeconfig of kubeconfigSecretRef and acting on the hub as the provider's agent"
        " ServiceAccount; condition PushAgent says whether it runs, and if not, why.",
    )
    kubeconfig_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Push only: the Secret on the hub holding the provider cluster's kubeconfig"
        " (self-contained: inline certificates and token, no exec or file references); keep"
        " it in a namespace only the hub can read. A change of it restarts the agent.",
    )
    region: LabelValue = Field(description="Region of the cluster, e.g. eu-west.")
    payout_address: Address = Field(
        description="EVM address paid for this provider's work: 0x followed by 40 hex digits"
        " (EIP-55 checksummed)."
    )
    pricing: Pricing = Field(description="List prices.")
    offer: Offer | None = Field(
        default=None, description="Ceiling offered to the market; absent = all allocatable."
    )
    cordoned: bool = Field(default=False, description="Accept no new placements.")
    expose: ProviderExpose | None = Field(
        default=None,
        description="How the provider publishes leases' public ports, as its agent declares it"
        " (agent config expose.mode); absent = None: it publishes none.",
    )


class ResourceSummary(StatusModel):
    """An amount of cpu, memory, GPUs by model and pod slots."""

    cpu: Quantity | None = Field(default=None, description="CPU, as a quantity.")
    memory: Quantity | None = Field(default=None, description="Memory, as a quantity.")
    gpus: dict[str, int] | None = Field(
        default=None, description="GPUs by model (nvidia.com/gpu.product)."
    )
    pods: int | None = Field(
        default=None,
        ge=0,
        description="Pod slots: the nodes' pods allowance; in available, what is left after"
        " other pods and one slot per replica of every materialised placement.",
    )
    storage: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Persistent storage by tier, as quantities: in capacity, what the agent"
        " config offers per tier; in available, that minus the claims of every materialised"
        " placement (suspended ones included: their volumes are kept).",
    )


class Reputation(StatusModel):
    """The hub's record of the provider, computed from what the hub observed.

    ``score = uptimeRatio x successRatio`` (docs/reputation.md has the formula and a worked
    example). Written by the hub only; restored from here when the hub restarts.
    """

    score: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="uptimeRatio x the Bayesian success ratio of its placements, from 0 to 1;"
        " a new provider starts at 0.9. Pools leave out providers below minReputation.",
    )
    uptime_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of the observed time (decaying window, with a prior of reachable"
        " time) in which the hub saw the provider's heartbeat within the timeout.",
    )
    completed_leases: int = Field(
        default=0, ge=0, description="Placements that ended normally (lease done or scaled down)."
    )
    failed_leases: int = Field(
        default=0, ge=0, description="Placements whose workload failed on the provider."
    )
    failovers: int = Field(
        default=0,
        ge=0,
        description="Placements moved elsewhere because the provider was unreachable or its"
        " replicas never became ready.",
    )
    reachable_seconds: int = Field(
        default=0,
        ge=0,
        description="Decayed seconds in which the hub saw a fresh heartbeat (the hub's clock).",
    )
    unreachable_seconds: int = Field(
        default=0,
        ge=0,
        description="Decayed seconds in which the hub saw the heartbeat expired (the hub's clock).",
    )
    updated_at: datetime | None = Field(
        default=None, description="When the hub computed this record (the hub's clock)."
    )


OUTAGE_LIMIT = 20
"""At most this many outage windows are kept on a provider (the newest)."""


class Outage(StatusModel):
    """A window in which the hub saw the provider Unreachable (hub-written, the hub's clock)."""

    start: datetime = Field(
        description="The last heartbeat the hub observed before the provider became"
        " Unreachable: billing for its placements stops here."
    )
    end: datetime | None = Field(
        default=None,
        description="When the hub saw the provider's heartbeat again; absent while it is"
        " still Unreachable.",
    )


class ProviderStatus(StatusModel):
    """What the hub knows about the provider: health, capacity, reputation."""

    phase: ProviderPhase | None = Field(
        default=None, description="Ready, NotReady, Unreachable or Cordoned."
    )
    last_heartbeat_time: datetime | None = Field(
        default=None, description="Last heartbeat received from the agent."
    )
    capacity: ResourceSummary | None = Field(default=None, description="Total of the nodes.")
    allocatable: ResourceSummary | None = Field(
        default=None, description="Allocatable on the nodes."
    )
    available: ResourceSummary | None = Field(
        default=None,
        description="Allocatable minus what other pods request and what placements hold,"
        " capped by the offer (pods: not capped by the offer).",
    )
    reputation: Reputation | None = Field(
        default=None,
        description="The hub's record of the provider (written by the hub only): uptime from"
        " the heartbeats the hub observed, placements completed, failed and failed over. The"
        " scheduler reads score; absent = 0.9, a new provider's score.",
    )
    outages: list[Outage] | None = Field(
        default=None,
        max_length=OUTAGE_LIMIT,
        description="The newest windows (at most 20) in which the hub saw the provider"
        " Unreachable, written by the hub only; its placements are not billed inside them.",
    )
    namespace: str | None = Field(
        default=None, description="The provider's hub namespace, kommons-provider-NAME."
    )
    nodes: int | None = Field(default=None, ge=0, description="Ready nodes.")
    agent_version: str | None = Field(default=None, description="Version of the agent.")
    kubernetes_version: str | None = Field(
        default=None, description="Kubernetes version of the provider cluster."
    )
    inventory_time: datetime | None = Field(
        default=None,
        description="When the agent last wrote its inventory: on every change, and at least"
        " every 30 seconds.",
    )
    accounted_leases: list[Annotated[str, Field(max_length=328)]] | None = Field(
        default=None,
        max_length=10000,
        description="Placements the reported availability already subtracts, as"
        " namespace/name=replicas of their lease; the hub holds capacity only for replicas"
        " beyond that count (a bare namespace/name, from an older agent, counts them all).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Conditions: Ready (health as the hub sees it); PushAgent (push mode: is the"
        " hub running this provider's agent, and if not, why).",
        json_schema_extra=CONDITIONS_EXTRA,
    )


class Provider(Resource):
    """A Provider object."""

    KIND = "Provider"
    api_version: str = API_VERSION
    kind: str = "Provider"
    spec: ProviderSpec
    status: ProviderStatus | None = None
