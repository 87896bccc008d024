"""The agent's configuration file: what the provider charges and offers, where it is paid.

A provider's region and labels (e.g. its tier) are its identity on the market: the hub admin
sets them at onboarding (``kommons onboard --region R --label K=V``) and the agent cannot change
them (the hub refuses the write). A config that still carries them is refused with that advice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from kommons.api.common import (
    DNS_SUBDOMAIN_PATTERN,
    ApiModel,
    LabelValue,
    ObjectName,
    PositiveQuantity,
)
from kommons.api.provider import Offer, Pricing, PublishMode

ADDRESS_PATTERN = DNS_SUBDOMAIN_PATTERN + r"|^[0-9a-fA-F:]+$"
"""A DNS name, an IPv4 address (both DNS-subdomain shaped) or an IPv6 literal."""


class ExposeConfig(ApiModel):
    """How this provider publishes the ``public: true`` ports of the leases it runs.

    ``None``: no way in (public ports are reported as not publishable); ``Ingress``: one
    ``Ingress`` per placement, a host ``<port>-<id>.<domain>`` per public TCP port (HTTP only,
    so a public UDP port is not publishable); ``NodePort``: a ``NodePort`` Service reached at
    ``address``; ``LoadBalancer``: a ``LoadBalancer`` Service, reached at the address the
    provider's load balancer assigns.
    """

    mode: PublishMode = Field(
        default="None", description="None, Ingress, NodePort or LoadBalancer."
    )
    domain: str | None = Field(
        default=None,
        max_length=200,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Ingress: the DNS domain whose subdomains route to the provider's ingress"
        " controller (a wildcard record), e.g. apps.prov-a.example.org.",
    )
    ingress_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Ingress: the ingressClassName of the Ingresses; absent = the cluster's"
        " default class.",
    )
    scheme: Literal["http", "https"] = Field(
        default="https",
        description="Ingress: the scheme tenants use (https: the controller terminates TLS"
        " for the domain, e.g. with a wildcard certificate).",
    )
    address: str | None = Field(
        default=None,
        max_length=253,
        pattern=ADDRESS_PATTERN,
        description="NodePort: the public address (DNS name or IP) at which the provider's"
        " nodes are reached.",
    )

    @model_validator(mode="after")
    def _complete(self) -> ExposeConfig:
        """Ingress needs a domain, NodePort an address."""
        if self.mode == "Ingress" and not self.domain:
            raise ValueError("expose.domain is required with mode Ingress")
        if self.mode == "NodePort" and not self.address:
            raise ValueError("expose.address is required with mode NodePort")
        return self


class StorageTier(ApiModel):
    """One storage tier the provider offers: its storage class and the capacity sold."""

    storage_class_name: ObjectName = Field(
        description="StorageClass of the provider cluster the tier's claims use."
    )
    capacity: PositiveQuantity = Field(
        description="Storage offered to the market in this tier (e.g. 500Gi): the sum of the"
        " claims placements may hold."
    )


class AgentConfig(ApiModel):
    """What a provider declares about itself (``--config``, YAML, camelCase keys)."""

    payout_address: str = Field(description="EVM address paid for this provider's work.")
    pricing: Pricing = Field(description="List prices in settlement-token units per hour.")
    offer: Offer | None = Field(default=None, description="Ceiling offered to the market.")
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often the agent renews its heartbeat Lease."
    )
    report_seconds: float = Field(
        default=5.0, gt=0, description="How often it reports inventory and placement status."
    )
    runtime_class_name: str | None = Field(
        default=None, description="Sandbox runtime class for tenant pods (e.g. gvisor), if any."
    )
    storage: dict[LabelValue, StorageTier] | None = Field(
        default=None,
        max_length=16,
        description="Persistent storage offered, by tier (the tiers leases ask for in"
        " spec.storage[].tier; price them in pricing.storageGiBHour). Absent = none.",
    )

    expose: ExposeConfig = Field(
        default_factory=ExposeConfig,
        description="How the provider publishes the public ports of the leases it runs.",
    )

    @model_validator(mode="after")
    def _one_class_per_tier(self) -> AgentConfig:
        """Refuse two tiers on one storage class: the quota counts claims per class."""
        seen: dict[str, str] = {}
        for tier, entry in sorted((self.storage or {}).items()):
            other = seen.setdefault(entry.storage_class_name, tier)
            if other != tier:
                raise ValueError(
                    f"storage: tiers {other} and {tier} both use storage class"
                    f" {entry.storage_class_name}; give each tier its own class"
                )
        return self

    def storage_classes(self) -> dict[str, str]:
        """Storage class by tier."""
        return {tier: t.storage_class_name for tier, t in (self.storage or {}).items()}

    @model_validator(mode="before")
    @classmethod
    def _no_identity(cls, data: Any) -> Any:
        """Refuse ``labels`` and ``region``: the hub admin sets them at onboarding."""
        if isinstance(data, dict):
            for key, advice in MOVED_TO_ONBOARDING.items():
                if key in data:
                    raise ValueError(f"{key}: {advice}; remove `{key}` from the agent config")
        return data


MOVED_TO_ONBOARDING = {
    "labels": "a provider's labels (e.g. kommons.io/tier) are set by the hub admin at onboarding"
    " (`kommons onboard NAME --label KEY=VALUE`), not by the agent",
    "region": "a provider's region is set by the hub admin at onboarding"
    " (`kommons onboard NAME --region REGION`), not by the agent",
}
"""Keys older agent configs had, now set only by the hub admin (``kommons onboard``)."""


class ConfigError(ValueError):
    """The agent's configuration file is missing or invalid; the message says where."""


def load_config(path: Path) -> AgentConfig:
    """Read and validate an agent configuration file."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read agent config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"agent config {path} is not UTF-8 text: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"agent config {path} is not valid YAML: {exc}") from exc
    try:
        return AgentConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigError(f"agent config {path} is invalid: {problems}") from exc


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message
