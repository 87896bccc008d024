"""The registry of Kommons kinds: names, scope, models and printer columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from kommons.api.billing import BillingAccount, BillingAccountSpec, BillingAccountStatus
from kommons.api.common import API_VERSION, CATEGORY, GROUP, VERSION, ApiModel, Resource
from kommons.api.epoch import SettlementEpoch, SettlementEpochSpec, SettlementEpochStatus
from kommons.api.lease import ComputeLease, ComputeLeaseSpec, ComputeLeaseStatus
from kommons.api.placement import LeasePlacement, LeasePlacementSpec, LeasePlacementStatus
from kommons.api.pool import ProviderPool, ProviderPoolSpec, ProviderPoolStatus
from kommons.api.provider import Provider, ProviderSpec, ProviderStatus

Scope = Literal["Namespaced", "Cluster"]


@dataclass(frozen=True)
class PrinterColumn:
    """A column of ``kubectl get``."""

    name: str
    """Column header."""
    json_path: str
    """JSONPath into the object, e.g. ``.status.phase``."""
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    """OpenAPI type of the value; ``date`` renders as an age."""
    description: str = ""
    """Shown by ``kubectl explain`` tooling."""
    priority: int = 0
    """0 = always shown; 1 = only with ``-o wide``."""


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date", "Time since creation.")


@dataclass(frozen=True)
class ScaleSubresource:
    """Paths of the ``scale`` subresource."""

    spec_replicas_path: str
    status_replicas_path: str


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD generator and the API clients need to know about one kind."""

    kind: str
    """``kind``, e.g. ``ComputeLease``."""
    plural: str
    """Resource name in URLs, e.g. ``computeleases``."""
    singular: str
    """Lower-case singular, e.g. ``computelease``."""
    scope: Scope
    """``Namespaced`` or ``Cluster``."""
    resource_model: type[Resource]
    """Model of the whole object."""
    spec_model: type[ApiModel]
    """Model of ``spec``."""
    status_model: type[BaseModel]
    """Model of ``status``."""
    description: str
    """Description of the kind (top of ``kubectl explain``)."""
    short_names: tuple[str, ...] = ()
    """Short names for ``kubectl get``."""
    printer_columns: tuple[PrinterColumn, ...] = ()
    """Columns of ``kubectl get`` (Age is appended)."""
    scale: ScaleSubresource | None = None
    """The scale subresource, if the kind scales."""
    categories: tuple[str, ...] = field(default=(CATEGORY,))
    """Categories (``kubectl get kommons``)."""

    @property
    def group(self) -> str:
        """The API group."""
        return GROUP

    @property
    def version(self) -> str:
        """The API version (without the group)."""
        return VERSION

    @property
    def api_version(self) -> str:
        """``group/version``."""
        return API_VERSION

    @property
    def crd_name(self) -> str:
        """Name of the CustomResourceDefinition, ``<plural>.<group>``."""
        return f"{self.plural}.{GROUP}"

    @property
    def list_kind(self) -> str:
        """Kind of the list, e.g. ``ComputeLeaseList``."""
        return f"{self.kind}List"

    @property
    def namespaced(self) -> bool:
        """Whether objects live in namespaces."""
        return self.scope == "Namespaced"


COMPUTE_LEASE = KindInfo(
    kind="ComputeLease",
    plural="computeleases",
    singular="computelease",
    scope="Namespaced",
    resource_model=ComputeLease,
    spec_model=ComputeLeaseSpec,
    status_model=ComputeLeaseStatus,
    description="ComputeLease is a tenant's rental of compute from a ProviderPool: replicas of"
    " a pod, placed by Kommons on community clusters, billed while ready.",
    short_names=("cl",),
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", description="Lifecycle phase."),
        PrinterColumn("Ready", ".status.ready", description="Ready replicas / desired."),
        PrinterColumn("Providers", ".status.providers", description="Providers running it."),
        PrinterColumn("Cost", ".status.cost.accrued", description="Accrued cost (tokens)."),
        PrinterColumn("Pool", ".spec.poolRef.name", description="ProviderPool.", priority=1),
        PrinterColumn(
            "MaxPrice", ".spec.maxPricePerHour", description="Price cap per hour.", priority=1
        ),
        PrinterColumn("Expires", ".status.expiresAt", "date", "End of term.", priority=1),
    ),
    scale=ScaleSubresource(".spec.replicas", ".status.replicas"),
)
PROVIDER = KindInfo(
    kind="Provider",
    plural="providers",
    singular="provider",
    scope="Cluster",
    resource_model=Provider,
    spec_model=ProviderSpec,
    status_model=ProviderStatus,
    description="Provider is one community Kubernetes cluster offering capacity to the market;"
    " written by its agent, read by the hub scheduler.",
    short_names=("prov",),
    printer_columns=(
        PrinterColumn("Region", ".spec.region", description="Region."),
        PrinterColumn("Phase", ".status.phase", description="Health."),
        PrinterColumn("Heartbeat", ".status.lastHeartbeatTime", "date", "Last heartbeat."),
        PrinterColumn("Mode", ".spec.mode", description="Pull or Push.", priority=1),
        PrinterColumn("Cordoned", ".spec.cordoned", "boolean", "No new placements.", 1),
    ),
)
PROVIDER_POOL = KindInfo(
    kind="ProviderPool",
    plural="providerpools",
    singular="providerpool",
    scope="Cluster",
    resource_model=ProviderPool,
    spec_model=ProviderPoolSpec,
    status_model=ProviderPoolStatus,
    description="ProviderPool is a market segment: the providers a lease may be placed on, the"
    " scoring strategy and the tenants allowed to use it.",
    short_names=("pp",),
    printer_columns=(
        PrinterColumn("Strategy", ".spec.strategy", description="Scoring strategy."),
        PrinterColumn("Ready", ".status.readyProviders", "integer", "Ready members."),
    ),
)
BILLING_ACCOUNT = KindInfo(
    kind="BillingAccount",
    plural="billingaccounts",
    singular="billingaccount",
    scope="Cluster",
    resource_model=BillingAccount,
    spec_model=BillingAccountSpec,
    status_model=BillingAccountStatus,
    description="BillingAccount says who pays: the escrow address on chain billed for the"
    " leases of the namespaces it selects. Created by hub admins, never by tenants.",
    printer_columns=(
        PrinterColumn("Address", ".spec.address", description="Escrow address."),
        PrinterColumn("Balance", ".status.escrowBalance", description="Escrow balance."),
        PrinterColumn(
            "Unsettled", ".status.accruedUnsettled", description="Metered, not yet settled."
        ),
        PrinterColumn("Burn/h", ".status.burnPerHour", description="Projected burn per hour."),
        PrinterColumn("Standing", ".status.standing", description="Covered, Low or Suspended."),
    ),
)
LEASE_PLACEMENT = KindInfo(
    kind="LeasePlacement",
    plural="leaseplacements",
    singular="leaseplacement",
    scope="Namespaced",
    resource_model=LeasePlacement,
    spec_model=LeasePlacementSpec,
    status_model=LeasePlacementStatus,
    description="LeasePlacement is the hub's instruction to one provider: the replicas of a"
    " lease it runs, at the price locked at placement; its status is what the agent observed.",
    printer_columns=(
        PrinterColumn("Lease", ".spec.leaseRef.name", description="The lease."),
        PrinterColumn("Provider", ".spec.provider", description="The provider."),
        PrinterColumn("Replicas", ".spec.replicas", "integer", "Replicas to run."),
        PrinterColumn("Ready", ".status.readyReplicas", "integer", "Replicas ready."),
        PrinterColumn("Phase", ".status.phase", description="Phase."),
        PrinterColumn(
            "Reason",
            '.status.conditions[?(@.type=="Ready")].reason',
            description="Why replicas are (not) ready, as the provider sees it.",
        ),
        PrinterColumn("Price", ".spec.pricePerHour", description="Locked price.", priority=1),
    ),
)
SETTLEMENT_EPOCH = KindInfo(
    kind="SettlementEpoch",
    plural="settlementepochs",
    singular="settlementepoch",
    scope="Cluster",
    resource_model=SettlementEpoch,
    spec_model=SettlementEpochSpec,
    status_model=SettlementEpochStatus,
    description="SettlementEpoch is one settled billing period: the Merkle root of what each"
    " account owes each provider, committed on chain. The audit trail of what was charged.",
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", description="Phase."),
        PrinterColumn("Total", ".status.total", description="Total settled (tokens)."),
        PrinterColumn("Tx", ".status.txHash", description="Transaction hash."),
        PrinterColumn("Start", ".spec.start", "date", "Start of the period.", priority=1),
        PrinterColumn("End", ".spec.end", "date", "End of the period.", priority=1),
    ),
)

KINDS: tuple[KindInfo, ...] = (
    COMPUTE_LEASE,
    PROVIDER,
    PROVIDER_POOL,
    BILLING_ACCOUNT,
    LEASE_PLACEMENT,
    SETTLEMENT_EPOCH,
)
"""Every Kommons kind, in a stable order."""

_BY_KIND = {k.kind: k for k in KINDS}


def kind_info(kind: str | type[Resource]) -> KindInfo:
    """Return the registry entry of a kind, by name (``"ComputeLease"``) or model class.

    Raises:
        KeyError: if the kind is not a Kommons kind.
    """
    name = kind if isinstance(kind, str) else kind.KIND
    try:
        return _BY_KIND[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a Kommons kind; known: {sorted(_BY_KIND)}") from None


def build_object(
    kind: str | type[Resource],
    *,
    name: str,
    spec: ApiModel | Mapping[str, Any],
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner_references: list[dict[str, Any]] | None = None,
    status: BaseModel | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the wire form of a Kommons object, ready for the Kubernetes API.

    The spec is validated against its model (a mapping is parsed first), so a typo fails here
    rather than at the API server.

    Args:
        kind: ``"ComputeLease"`` or the model class.
        name: ``metadata.name``.
        spec: the spec, as its model or a camelCase mapping.
        namespace: ``metadata.namespace``; required for namespaced kinds, refused otherwise.
        labels: ``metadata.labels``.
        annotations: ``metadata.annotations``.
        owner_references: ``metadata.ownerReferences``.
        status: optional status (only honoured by the status subresource).

    Returns:
        ``{"apiVersion", "kind", "metadata", "spec"[, "status"]}``.

    Raises:
        ValueError: if the namespace does not match the kind's scope.
        pydantic.ValidationError: if the spec does not validate.
    """
    info = kind_info(kind)
    if info.namespaced and not namespace:
        raise ValueError(f"{info.kind} is namespaced: pass namespace=")
    if not info.namespaced and namespace:
        raise ValueError(f"{info.kind} is cluster-scoped: do not pass namespace=")
    spec_model = spec if isinstance(spec, ApiModel) else info.spec_model.model_validate(dict(spec))
    if not isinstance(spec_model, info.spec_model):
        raise TypeError(f"spec of a {info.kind} must be a {info.spec_model.__name__}")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner_references:
        metadata["ownerReferences"] = owner_references
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": info.kind,
        "metadata": metadata,
        "spec": spec_model.to_api(),
    }
    if status is not None:
        status_model = (
            status
            if isinstance(status, BaseModel)
            else info.status_model.model_validate(dict(status))
        )
        body["status"] = status_model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body
