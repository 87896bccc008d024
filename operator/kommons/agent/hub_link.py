"""What the agent writes on the hub: its Provider, its heartbeat Lease, inventory reports."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from kommons import __version__
from kommons.agent.config import AgentConfig
from kommons.agent.inventory import Inventory, inventory_status
from kommons.api.provider import ProviderStatus
from kommons.api_names import API_VERSION, LABEL_PROVIDER, provider_namespace
from kommons.kube import Forbidden, Kube, NotFound
from kommons.kube import resources as r

JSON = dict[str, Any]
HEARTBEAT_LEASE = "kommons-agent"
"""Name of the ``coordination.k8s.io/Lease`` an agent renews in its hub namespace."""


class RegistrationError(RuntimeError):
    """The agent could not register its provider on the hub; the message says what to do."""


def now_micro() -> str:
    """Current time in the API's MicroTime format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    """Current time in the API's Time format (seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HubLink:
    """The agent's writes to the hub, all inside what its RBAC allows."""

    def __init__(self, hub: Kube, provider: str, config: AgentConfig) -> None:
        self.hub = hub
        self.provider = provider
        self.config = config
        self.namespace = provider_namespace(provider)
        self.identity = f"{socket.gethostname()}/{provider}"

    def register(self) -> None:
        """Create or update this provider's ``Provider`` with the agent's declared spec."""
        spec = {
            "mode": "Pull",
            "region": self.config.region,
            "payoutAddress": self.config.payout_address,
            "pricing": self.config.pricing.to_api(),
        }
        if self.config.offer is not None:
            spec["offer"] = self.config.offer.to_api()
        body = {
            "apiVersion": API_VERSION,
            "kind": "Provider",
            "metadata": {"name": self.provider, "labels": dict(self.config.labels)},
            "spec": spec,
        }
        try:
            self.hub.apply(r.PROVIDERS, body)
        except Forbidden as exc:
            raise RegistrationError(
                f"the hub refused to register provider {self.provider!r} ({exc.message}); "
                "ask the hub admin to onboard it (`kommons onboard "
                f"{self.provider}`) and use the kubeconfig that command writes"
            ) from exc
        try:
            self.hub.get(r.NAMESPACES, self.namespace)
        except NotFound as exc:
            raise RegistrationError(
                f"the hub namespace {self.namespace!r} does not exist; "
                f"onboard the provider first (`kommons onboard {self.provider}`)"
            ) from exc
        except Forbidden:
            pass  # a scoped agent may not read namespaces; the Lease write below tells.

    def heartbeat(self, duration_seconds: int) -> None:
        """Renew the heartbeat Lease (created on first use)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": HEARTBEAT_LEASE,
                "namespace": self.namespace,
                "labels": {LABEL_PROVIDER: self.provider},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration_seconds,
                "renewTime": now_micro(),
            },
        }
        self.hub.apply(r.LEASES, body)

    def report(
        self, inventory: Inventory, leases: list[str], kubernetes_version: str
    ) -> ProviderStatus:
        """Write an inventory report into the Provider's status (only inventory fields).

        Returns:
            The status written (the caller may compare the next report with it).
        """
        status = inventory_status(
            inventory,
            leases,
            namespace=self.namespace,
            agent_version=__version__,
            kubernetes_version=kubernetes_version,
            now=datetime.now(UTC),
        )
        self.write_inventory(status)
        return status

    def write_inventory(self, status: ProviderStatus) -> None:
        """Merge-patch an inventory report into the Provider's status subresource."""
        self.hub.patch(
            r.PROVIDERS, self.provider, {"status": status.to_api()}, subresource="status"
        )
