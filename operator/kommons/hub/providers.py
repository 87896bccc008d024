"""A Provider's phase as the hub sees it, from the heartbeats the hub observed (pure).

The time of a heartbeat is the hub's own clock when the agent's heartbeat Lease changed,
never a timestamp the agent wrote (its clock may be wrong or lying).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from kommons.api import Provider, ProviderStatus, set_condition

ProviderPhase = Literal["Ready", "NotReady", "Unreachable", "Cordoned"]


def provider_phase(
    provider: Provider | None,
    heartbeat_age: float | None,
    *,
    timeout: float,
    invalid: str | None = None,
) -> tuple[ProviderPhase, str, str]:
    """Phase, reason and message of a provider.

    ``Cordoned`` when its spec says so; ``Unreachable`` when the hub has seen no heartbeat
    for ``timeout`` seconds (or never); ``NotReady`` when its declaration is unusable
    (``invalid``) or it has not reported Ready nodes yet; otherwise ``Ready``.

    Args:
        provider: The provider (``None`` is Unreachable: nothing is known).
        heartbeat_age: Seconds since the hub saw the heartbeat change, ``None`` if never.
        timeout: Heartbeat timeout in seconds.
        invalid: Why the provider's declaration cannot be used, if it cannot.
    """
    if provider is not None and provider.spec.cordoned:
        return "Cordoned", "Cordoned", "spec.cordoned is true: no new placements"
    if provider is None or heartbeat_age is None:
        return "Unreachable", "NoHeartbeat", "the hub has not seen a heartbeat from the agent"
    if heartbeat_age > timeout:
        return (
            "Unreachable",
            "HeartbeatExpired",
            f"no heartbeat for {heartbeat_age:.0f}s (timeout {timeout:.0f}s)",
        )
    if invalid is not None:
        return "NotReady", "InvalidDeclaration", f"excluded from scheduling: {invalid}"
    status = provider.status
    if status is None or status.available is None or not status.nodes:
        return "NotReady", "NoInventory", "the agent has not reported Ready nodes yet"
    return "Ready", "HeartbeatFresh", f"heartbeat seen {max(heartbeat_age, 0):.0f}s ago"


def health_status_patch(
    provider: Provider,
    phase: tuple[ProviderPhase, str, str],
    *,
    last_heartbeat: datetime | None,
    now: datetime,
) -> dict[str, object] | None:
    """The status fields the hub owns on a Provider, or ``None`` when nothing changed.

    Only a change of phase or reason is written here: the hub does not rewrite the Provider
    on every heartbeat.
    """
    status = provider.status or ProviderStatus()
    name, reason, message = phase
    ready = next((c for c in status.conditions or () if c.type == "Ready"), None)
    if status.phase == name and ready is not None and ready.reason == reason:
        return None
    conditions = set_condition(
        status.conditions,
        type_="Ready",
        status="True" if name == "Ready" else "False",
        reason=reason,
        message=message,
        observed_generation=provider.metadata.generation,
        now=now,
    )
    patch: dict[str, object] = {"phase": name, "conditions": [c.to_api() for c in conditions]}
    if last_heartbeat is not None:
        patch["lastHeartbeatTime"] = last_heartbeat.strftime("%Y-%m-%dT%H:%M:%SZ")
    return patch
