"""BillingAccount: who pays for the leases of some namespaces (cluster-scoped)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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


Standing = Literal["Covered", "Low", "Suspended"]
"""Whether an account's escrow covers its leases (docs/payment.md)."""


class BillingAccountStatus(StatusModel):
    """The account's escrow against its leases' burn, as the hub's payment guard last saw it.

    Written by the hub only (docs/payment.md). Without ``--chain-rpc`` nothing writes it.
    """

    standing: Standing | None = Field(
        default=None,
        description="Covered: the escrow, less what is metered but not settled, committed but"
        " not claimed, or asked for in a withdrawal, pays the"
        " projected burn for the payment horizon. Low: it does not; the leases run on until"
        " graceEndsAt. Suspended: the grace ended; the account's leases are suspended until a"
        " top-up covers the horizon again. Absent: the balance was never read.",
    )
    escrow_balance: StatusDecimal | None = Field(
        default=None,
        description="Escrow balance on chain, in settlement-token units, as last read.",
    )
    accrued_unsettled: StatusDecimal | None = Field(
        default=None,
        description="Metered but not yet settled (usage of epochs not confirmed on chain), in"
        " settlement-token units.",
    )
    committed_unclaimed: StatusDecimal | None = Field(
        default=None,
        description="Committed on chain in confirmed epochs but not claimed yet: a claim will"
        " debit it from the escrow. Absent when none.",
    )
    pending_withdrawal: StatusDecimal | None = Field(
        default=None,
        description="Asked for by the payer (requestWithdrawal) and not withdrawn yet. Absent"
        " when none.",
    )
    burn_per_hour: StatusDecimal | None = Field(
        default=None,
        description="Projected burn: the sum, over the leases it pays for that are not"
        " suspended by their tenant, of placed replicas × locked price per replica-hour.",
    )
    balance_checked_at: datetime | None = Field(
        default=None,
        description="When escrowBalance was read from the chain (refreshed at least every 5"
        " minutes while nothing changes).",
    )
    balance_stale: bool | None = Field(
        default=None,
        description="true when the last attempt to read the balance failed: the figures are"
        " the last known ones, and no lease is suspended on them.",
    )
    low_since: datetime | None = Field(
        default=None,
        description="When a fresh read first found the escrow short of the horizon (cleared"
        " once it covers it again).",
    )
    grace_ends_at: datetime | None = Field(
        default=None,
        description="lowSince plus the grace period: the leases are suspended at the first"
        " fresh read after it that still finds the escrow short.",
    )
    namespaces: list[str] | None = Field(
        default=None, description="Namespaces whose leases are billed to this account."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Conditions: PaymentOK, with the balance, the burn and the horizon in its"
        " message.",
        json_schema_extra=CONDITIONS_EXTRA,
    )


class BillingAccount(Resource):
    """A BillingAccount object."""

    KIND = "BillingAccount"
    api_version: str = API_VERSION
    kind: str = "BillingAccount"
    spec: BillingAccountSpec
    status: BillingAccountStatus | None = None
