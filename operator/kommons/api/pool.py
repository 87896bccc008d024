"""ProviderPool: a market segment of providers (cluster-scoped, short name ``pp``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kommons.api.common import (
    API_VERSION,
    CONDITIONS_EXTRA,
    ApiModel,
    Condition,
    LabelSelector,
    LabelValue,
    Resource,
    StatusModel,
)
from kommons.api.provider import ResourceSummary

Strategy = Literal["LowestPrice", "Spread", "BinPack", "Balanced"]
"""How the scheduler scores feasible providers."""
STRATEGIES: tuple[Strategy, ...] = ("LowestPrice", "Spread", "BinPack", "Balanced")


class ProviderPoolSpec(ApiModel):
    """Which providers form the pool, how leases are placed in it, and who may use it."""

    provider_selector: LabelSelector | None = Field(
        default=None,
        description="Providers (by their labels) in the pool; absent or empty = all providers.",
    )
    regions: list[LabelValue] | None = Field(
        default=None,
        max_length=32,
        description="Regions of the pool; absent or empty = any region.",
    )
    min_reputation: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Providers with a reputation score below this (0 to 1) are left out.",
    )
    strategy: Strategy = Field(
        default="LowestPrice",
        description="Scoring: LowestPrice, Spread (distinct providers), BinPack (fill"
        " providers) or Balanced (price, reputation and headroom).",
    )
    tenant_namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces (by their labels) whose leases may use the pool; absent ="
        " every namespace.",
    )


class ProviderPoolStatus(StatusModel):
    """Members and capacity of the pool (nothing writes it yet)."""

    providers: list[str] | None = Field(default=None, description="Member providers.")
    ready_providers: int | None = Field(default=None, ge=0, description="Members Ready.")
    capacity: ResourceSummary | None = Field(
        default=None, description="Allocatable of the members."
    )
    available: ResourceSummary | None = Field(default=None, description="Available on the members.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Conditions: Ready ...", json_schema_extra=CONDITIONS_EXTRA
    )


class ProviderPool(Resource):
    """A ProviderPool object."""

    KIND = "ProviderPool"
    api_version: str = API_VERSION
    kind: str = "ProviderPool"
    spec: ProviderPoolSpec
    status: ProviderPoolStatus | None = None
