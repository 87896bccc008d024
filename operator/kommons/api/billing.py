"""BillingAccount: who pays for the leases of some namespaces (cluster-scoped)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kommons.api.common import (
    API_VERSION,
    CONDITIONS_EXTRA,
    Address,
    ApiModel,
    Condition,
    LabelSelector,
    Resource,
    StatusDecimal,
    StatusModel,
)


class BillingAccountSpec(ApiModel):
    """The escrow account on chain and the namespaces it pays for (hub admins only)."""

    address: Address = Field(
        description="The tenant's escrow account on chain: 0x followed by 40 hex digits."
    )
    namespace_selector: LabelSelector = Field(
        description="Namespaces (by their labels) whose leases are billed to this account."
    )


class BillingAccountStatus(StatusModel):
    """Balance and health of the account (planned, issue 9: nothing writes it yet)."""

    escrow_balance: StatusDecimal | None = Field(
        default=None, description="Escrow balance on chain, in settlement-token units."
    )
    accrued_unsettled: StatusDecimal | None = Field(
        default=None, description="Metered but not yet settled, in settlement-token units."
    )
    balance_checked_at: datetime | None = Field(
        default=None, description="When the balance was read from the chain."
    )
    namespaces: list[str] | None = Field(default=None, description="Namespaces currently selected.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Conditions: PaymentOK ...",
        json_schema_extra=CONDITIONS_EXTRA,
    )


class BillingAccount(Resource):
    """A BillingAccount object."""

    KIND = "BillingAccount"
    api_version: str = API_VERSION
    kind: str = "BillingAccount"
    spec: BillingAccountSpec
    status: BillingAccountStatus | None = None
