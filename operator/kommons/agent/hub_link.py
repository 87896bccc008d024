"""What the agent writes on the hub: its Provider, its heartbeat Lease, inventory reports."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kommons import __version__
from kommons.agent.config import AgentConfig
from kommons.agent.inventory import Inventory, inventory_status
from kommons.api.placement import PlacementMetering
from kommons.api.provider import ProviderStatus
from kommons.api_names import provider_namespace
from kommons.config_copies import copy_name, split_key
from kommons.kube import Conflict, Forbidden, Kube, NotFound
from kommons.kube import resources as r
from kommons.trust.policies import HEARTBEAT_LEASE

JSON = dict[str, Any]
__all__ = ["HEARTBEAT_LEASE", "HubLink", "RegistrationError"]


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

    def declarations(self) -> JSON:
        """The ``Provider.spec`` fields this agent declares (prices, offer, payout, publishing).

        Region, mode and labels are the hub admin's (set at onboarding); the hub refuses an
        agent's write of them. ``cordoned`` is left as it is.
        """
        spec: JSON = {
            "payoutAddress": self.config.payout_address,
            "pricing": self.config.pricing.to_api(),
        }
        if self.config.offer is not None:
            spec["offer"] = self.config.offer.to_api()
        spec["expose"] = {"mode": self.config.expose.mode}  # the scheduler's, not the domain
        return spec

    def register(self, *, attempts: int = 5) -> None:
        """Write the agent's declarations into its ``Provider`` (created at onboarding).

        A read-modify-write with the object's resourceVersion (retried on conflict), so the
        declared fields are replaced exactly (a removed GPU price disappears) and nothing else
        is touched.
        """
        path = r.PROVIDERS.path(None, self.provider)
        for attempt in range(attempts):
            try:
                body = self.hub.get(r.PROVIDERS, self.provider)
                spec = dict(body.get("spec") or {})
                spec.pop("offer", None)
                spec.update(self.declarations())
                body["spec"] = spec
                body.pop("status", None)
                self.hub.request(
                    "PUT", path, body=body, query={"fieldManager": self.hub.field_manager}
                )
                return
            except Conflict:
                if attempt == attempts - 1:
                    raise
            except (Forbidden, NotFound) as exc:
                raise RegistrationError(
                    f"the hub refused to register provider {self.provider!r} ({exc.message}); "
                    "ask the hub admin to onboard it (`kommons onboard "
                    f"{self.provider}`) and use the kubeconfig that command writes"
                ) from exc

    def heartbeat(self, duration_seconds: int) -> None:
        """Renew the heartbeat Lease the hub pre-created at onboarding (never create one).

        The hub identifies the provider by the Lease's namespace and times the heartbeat with
        its own clock when ``renewTime`` changes; the agent sets no label.
        """
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now_micro(),
        }
        try:
            self.hub.patch(r.LEASES, HEARTBEAT_LEASE, {"spec": spec}, self.namespace)
        except NotFound as exc:
            raise RegistrationError(
                f"the heartbeat Lease {self.namespace}/{HEARTBEAT_LEASE} does not exist on the"
                f" hub; ask the hub admin to onboard provider {self.provider!r} again"
                f" (`kommons onboard {self.provider}`), which creates it"
            ) from exc

    def write_logs_answer(self, body: JSON) -> None:
        """Write (server-side apply) an answer to ``kommons logs`` in the provider's namespace."""
        self.hub.apply(r.CONFIGMAPS, body)

    def config_copies(self, placement: str, keys: Iterable[str]) -> dict[str, JSON | None]:
        """The hub's copies of a placement's ConfigMaps and Secrets (``Kind/name`` → Secret).

        Read by name from this provider's hub namespace (its RBAC there: ``get`` on Secrets,
        no write); ``None`` for a copy not written yet. Never logged.
        """
        out: dict[str, JSON | None] = {}
        for key in keys:
            kind, name = split_key(key)
            out[key] = self.hub.get_or_none(
                r.SECRETS, copy_name(placement, kind, name), self.namespace
            )
        return out

    def placements(self) -> dict[str, int | None]:
        """The placements the hub has for this provider: name → fencing token."""
        out: dict[str, int | None] = {}
        for body in self.hub.list(r.LEASE_PLACEMENTS, self.namespace):
            token = (body.get("spec") or {}).get("fencingToken")
            out[str(body["metadata"]["name"])] = token if isinstance(token, int) else None
        return out

    def placement_live(self, name: str, uid: str | None) -> bool:
        """Whether placement ``name`` (that very object: ``uid``) is on the hub, not deleting.

        A fresh read, for decisions a stale watch body must not make (re-creating a workload).
        """
        body = self.hub.get_or_none(r.LEASE_PLACEMENTS, name, self.namespace)
        if body is None:
            return False
        meta = body.get("metadata") or {}
        return not meta.get("deletionTimestamp") and (uid is None or meta.get("uid") == uid)

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

    def write_metering(self, name: str, metering: PlacementMetering) -> None:
        """Merge-patch a placement's metering checkpoint into its status subresource."""
        self.hub.patch(
            r.LEASE_PLACEMENTS,
            name,
            {"status": {"metering": metering.to_api()}},
            self.namespace,
            subresource="status",
        )
