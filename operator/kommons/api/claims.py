"""ProviderClaims: one provider's leaves and proofs of a confirmed epoch (a hub-written document).

Not a custom resource: the hub stores it as JSON in the ConfigMap ``kommons-claims-<epochId>``
of the provider's hub namespace (:mod:`kommons.settlement.proofs`), which the provider's agent
credentials may read. It holds only that provider's leaves, so publishing it shows a provider
nothing of anyone else's amounts but what its own leaves' proofs (hashes) carry.
"""

from __future__ import annotations

from pydantic import Field

from kommons.api.common import StatusAddress, StatusDecimal, StatusModel
from kommons.api.epoch import Hash32

BaseUnits = str
"""An integer amount of token base units, as a decimal string (``"4500000"``)."""


class ClaimLeaf(StatusModel):
    """One leaf the provider can claim, with the names it was billed under.

    ``payer``, ``payee``, ``amountUnits`` and ``proof`` are what the contract's
    ``claim(epochId, payer, provider, amount, proof)`` takes.
    """

    billing_account: str = Field(description="BillingAccount name(s), comma-separated if shared.")
    provider: str = Field(description="Provider name(s) paid by this leaf, comma-separated.")
    payer: StatusAddress = Field(description="The account's escrow address.")
    payee: StatusAddress = Field(description="The provider's payout address.")
    amount: StatusDecimal = Field(description="Amount in settlement-token units (for reading).")
    amount_units: BaseUnits = Field(
        pattern=r"^[0-9]+$", max_length=78, description="The amount in base units: what is claimed."
    )
    proof: list[Hash32] = Field(description="Merkle proof of the leaf against the epoch's root.")


class ProviderClaims(StatusModel):
    """A provider's claimable leaves of one Confirmed epoch, with the root they verify against."""

    epoch_id: int = Field(ge=0, description="The epoch id committed on chain.")
    provider: str = Field(description="The Provider this document is for.")
    root: Hash32 = Field(description="The epoch's Merkle root (committed on chain).")
    chain_id: int | None = Field(
        default=None, ge=0, description="Chain id of the chain the root is committed on."
    )
    settlement_address: StatusAddress | None = Field(
        default=None, description="Address of the Settlement contract holding the root."
    )
    leaves: list[ClaimLeaf] = Field(description="The provider's leaves of the epoch.")
