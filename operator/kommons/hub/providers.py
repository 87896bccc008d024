"""A Provider's phase as the hub sees it, from its heartbeat and spec (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kommons.api.common import Condition, set_condition
from kommons.hub.views import heartbeat_age

JSON = dict[str, Any]


def provider_phase(
    body: Mapping[str, Any], renew_time: str | None, *, now: datetime, timeout: float
) -> tuple[str, str, str]:
    """Phase, reason and message for a Provider.

    ``Cordoned`` when the spec says so; ``Unreachable`` when the heartbeat is older than
    ``timeout`` (or never came); ``NotReady`` until the agent has reported inventory with at
    least one Ready node; otherwise ``Ready``.
    """
    status = body.get("status") or {}
    age = heartbeat_age(renew_time, now)
    if (body.get("spec") or {}).get("cordoned"):
        return "Cordoned", "Cordoned", "spec.cordoned is true: no new placements"
    if age is None:
        return "Unreachable", "NoHeartbeat", "the agent has not sent a heartbeat yet"
    if age > timeout:
        return (
            "Unreachable",
            "HeartbeatExpired",
            f"last heartbeat {age:.0f}s ago (timeout {timeout:.0f}s)",
        )
    if not status.get("available") or not status.get("nodes"):
        return "NotReady", "NoInventory", "the agent has not reported Ready nodes yet"
    return "Ready", "HeartbeatFresh", f"heartbeat {max(age, 0):.0f}s ago"


def provider_status_patch(
    body: Mapping[str, Any], renew_time: str | None, *, now: datetime, timeout: float
) -> JSON | None:
    """The status fields the hub owns on a Provider, or ``None`` when nothing changed."""
    status = body.get("status") or {}
    phase, reason, message = provider_phase(body, renew_time, now=now, timeout=timeout)
    conditions = set_condition(
        [Condition.model_validate(c) for c in status.get("conditions") or ()],
        type_="Ready",
        status="True" if phase == "Ready" else "False",
        reason=reason,
        message=message,
        observed_generation=(body.get("metadata") or {}).get("generation"),
        now=now,
    )
    patch: JSON = {
        "phase": phase,
        "conditions": [c.to_api() for c in conditions],
    }
    if renew_time:
        patch["lastHeartbeatTime"] = renew_time[:19] + "Z"
    old_ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or () if c.get("type") == "Ready"), {}
    )
    unchanged = (
        status.get("phase") == phase
        and old_ready.get("reason") == reason
        and status.get("lastHeartbeatTime") == patch.get("lastHeartbeatTime")
    )
    return None if unchanged else patch
