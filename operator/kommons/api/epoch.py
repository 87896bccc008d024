"""SettlementEpoch: one settled billing period (cluster-scoped)."""

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
    Resource,
    StatusAddress,
    StatusDecimal,
    StatusModel,
    cel_rules,
)

EpochPhase = Literal["Open", "Sealed", "Submitted", "Confirmed", "Failed"]
"""Phase of a settlement epoch."""

Hash32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", min_length=66, max_length=66)]


class SettlementEpochSpec(ApiModel):
    """The billing period."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            Cel("self.end > self.start", "end must be after start", field_path=".end")
        )
    )

    start: datetime = Field(description="Start of the period (inclusive).")
    end: datetime = Field(description="End of the period (exclusive).")
    epoch_id: int | None = Field(
        default=None, ge=0, description="Epoch id committed on chain (strictly increasing)."
    )


class SettlementLeaf(StatusModel):
    """One (billing account, provider) amount of the epoch's Merkle tree."""

    billing_account: str = Field(description="BillingAccount name.")
    payer: StatusAddress | None = Field(default=None, description="The account's escrow address.")
    provider: str = Field(description="Provider name.")
    payee: StatusAddress | None = Field(default=None, description="The provider's payout address.")
    amount: StatusDecimal = Field(description="Amount in settlement-token units.")
    amount_units: StatusDecimal | None = Field(
        default=None,
        description="The same amount in the token's base units: the integer the leaf commits.",
    )
    proof: list[Hash32] | None = Field(
        default=None,
        description="Merkle proof of the leaf (epochId, payer, payee, amountUnits) against the"
        " root: what `kommons claim` submits. Omitted beyond 1000 leaves (rebuilt from the"
        " leaves then).",
    )
    claimed: bool | None = Field(
        default=None, description="True once the hub saw the leaf claimed on chain."
    )


class DepartedUsage(StatusModel):
    """Usage of a deleted lease in this epoch, handed over by the hub as the lease went.

    A deleted lease does not wait for its epochs to settle: before its finalizer goes, the hub
    copies its usage of every epoch not sealed yet here, and the seal bills it with the usage
    of the leases still there (one entry per placement: never twice).
    """

    lease: str = Field(description="The lease's namespace/name (for the record).")
    lease_uid: str = Field(description="The lease's UID.")
    placement_uid: str = Field(description="UID of the LeasePlacement metered.")
    provider: str = Field(description="Provider that ran the replicas.")
    billing_account: str = Field(description="BillingAccount charged.")
    ready_seconds: int = Field(ge=0, description="Replica-seconds ready the hub accepted.")
    amount: StatusDecimal = Field(description="Amount in settlement-token units.")


class SettlementEpochStatus(StatusModel):
    """The epoch's settlement: leaves with proofs, Merkle root, total, commit transaction."""

    phase: EpochPhase | None = Field(
        default=None, description="Open, Sealed, Submitted, Confirmed or Failed."
    )
    root: Hash32 | None = Field(default=None, description="Merkle root of the leaves.")
    total: StatusDecimal | None = Field(
        default=None, description="Sum of the leaves in settlement-token units."
    )
    leaves: list[SettlementLeaf] | None = Field(
        default=None, description="The amounts settled, one per (account, provider)."
    )
    leaf_count: int | None = Field(default=None, ge=0, description="Number of leaves.")
    departed: list[DepartedUsage] | None = Field(
        default=None,
        description="Usage of leases deleted before the epoch was sealed, written by the hub"
        " as they went; sealed with the leases' own usage.",
    )
    tx_hash: Hash32 | None = Field(
        default=None,
        description="The commit transaction last signed; recorded before it is sent, so a"
        " crashed hub finds it again.",
    )
    tx_nonce: int | None = Field(default=None, ge=0, description="Nonce of that transaction.")
    raw_tx: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^0x[0-9a-fA-F]*$",
        description="That signed transaction (public once sent), re-broadcast if it was dropped.",
    )
    tx_hashes: list[Hash32] | None = Field(
        default=None,
        description="Every commit transaction signed for the epoch, oldest first (at most one"
        " of them can commit it: the contract refuses a second commit of an epoch id).",
    )
    attempts: int | None = Field(
        default=None, ge=0, description="Commit transactions signed (1 unless one was replaced)."
    )
    block_number: int | None = Field(
        default=None, ge=0, description="Block that included the transaction."
    )
    confirmations: int | None = Field(default=None, ge=0, description="Confirmations seen.")
    sealed_at: datetime | None = Field(default=None, description="When the epoch was sealed.")
    submitted_at: datetime | None = Field(default=None, description="When it was submitted.")
    confirmed_at: datetime | None = Field(default=None, description="When it was confirmed.")
    claims_published_at: datetime | None = Field(
        default=None,
        description="When the hub wrote every provider's claims (ConfigMap kommons-claims-<epochId>"
        " in the provider's hub namespace: its leaves and proofs, readable with its agent"
        " credentials).",
    )
    message: str | None = Field(default=None, description="Detail, e.g. the failure.")
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions.", json_schema_extra=CONDITIONS_EXTRA
    )


class SettlementEpoch(Resource):
    """A SettlementEpoch object."""

    KIND = "SettlementEpoch"
    api_version: str = API_VERSION
    kind: str = "SettlementEpoch"
    spec: SettlementEpochSpec
    status: SettlementEpochStatus | None = None
