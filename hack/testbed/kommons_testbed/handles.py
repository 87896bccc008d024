"""Typed handles that tests and tools use to reach the parts of a running bed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClusterHandle:
    """One real cluster of the bed (the hub or a provider)."""

    name: str
    """``hub`` or the provider's name (``prov-a``, ``prov-b`` ...)."""
    kubeconfig: Path
    """Admin kubeconfig (token auth, ``system:masters``)."""
    server: str
    """API server URL, ``https://127.0.0.1:<port>``."""
    ca_file: Path
    """CA bundle that signed the API server's serving certificate."""
    admin_token: str
    """Bearer token of the admin user in ``kubeconfig``."""


@dataclass(frozen=True)
class ChainAccount:
    """A funded account of the local chain node."""

    address: str
    """EIP-55 checksummed address."""
    private_key: str
    """0x-prefixed hex private key (test accounts only)."""


@dataclass(frozen=True)
class ChainHandle:
    """The real anvil node of the bed."""

    rpc_url: str
    chain_id: int
    accounts: tuple[ChainAccount, ...]


@dataclass(frozen=True)
class PrometheusHandle:
    """A real Prometheus server started by the bed."""

    url: str
    config_file: Path


@dataclass(frozen=True)
class NodeSpec:
    """A simulated (kwok) node of a provider cluster."""

    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    pods: int = 110
    gpus: int = 0
    gpu_product: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderSpec:
    """The simulated hardware of one provider cluster."""

    name: str
    region: str
    nodes: tuple[NodeSpec, ...]
