"""The agent's configuration file: who the provider is, where, what it charges and offers."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from kommons.api.common import ApiModel
from kommons.api.provider import Offer, Pricing


class AgentConfig(ApiModel):
    """What a provider declares about itself (``--config``, YAML, camelCase keys)."""

    region: str = Field(description="Region of the cluster, e.g. eu-west.")
    payout_address: str = Field(description="EVM address paid for this provider's work.")
    pricing: Pricing = Field(description="List prices in settlement-token units per hour.")
    offer: Offer | None = Field(default=None, description="Ceiling offered to the market.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels put on the Provider (pools select on them)."
    )
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often the agent renews its heartbeat Lease."
    )
    report_seconds: float = Field(
        default=5.0, gt=0, description="How often it reports inventory and placement status."
    )
    runtime_class_name: str | None = Field(
        default=None, description="Sandbox runtime class for tenant pods (e.g. gvisor), if any."
    )


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"agent config {path} is invalid: {problems}") from exc
