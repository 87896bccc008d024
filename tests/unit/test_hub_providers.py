"""Unit tests of a Provider's phase as the hub sees it (``kommons.hub.providers``).

Behaviour matrix (``provider_phase``), in order:

- ``spec.cordoned`` → Cordoned (whatever the heartbeat);
- no heartbeat → Unreachable/NoHeartbeat; heartbeat older than the timeout →
  Unreachable/HeartbeatExpired (exactly at the timeout is still fresh);
- no inventory (``available``) or no Ready nodes → NotReady/NoInventory;
- otherwise Ready/HeartbeatFresh (a heartbeat from the future counts as 0 s old).

``provider_status_patch``:

- sets phase, the ``Ready`` condition (True only when Ready, observed generation) and
  ``lastHeartbeatTime`` (MicroTime cut to seconds, ``Z``);
- keeps other conditions; ``lastTransitionTime`` moves only when Ready flips;
- is ``None`` (no write) when phase, reason and heartbeat time are unchanged, also when only
  the message's age moved; any change of one of them gives a patch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.hub.providers import provider_phase, provider_status_patch

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TIMEOUT = 30.0


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def provider(
    *, cordoned: bool = False, available: bool = True, nodes: int = 2, **status: Any
) -> dict[str, Any]:
    body_status: dict[str, Any] = {"nodes": nodes, **status}
    if available:
        body_status["available"] = {"cpu": "4", "memory": "8Gi"}
    return {
        "metadata": {"name": "p1", "generation": 4},
        "spec": {"cordoned": cordoned},
        "status": body_status,
    }


@pytest.mark.parametrize(
    ("body", "renew", "phase", "reason"),
    [
        (provider(cordoned=True), ago(1), "Cordoned", "Cordoned"),
        (provider(cordoned=True), None, "Cordoned", "Cordoned"),
        (provider(cordoned=True), ago(3600), "Cordoned", "Cordoned"),
        (provider(), None, "Unreachable", "NoHeartbeat"),
        (provider(), ago(TIMEOUT + 1), "Unreachable", "HeartbeatExpired"),
        (provider(available=False), ago(TIMEOUT + 1), "Unreachable", "HeartbeatExpired"),
        (provider(), ago(TIMEOUT), "Ready", "HeartbeatFresh"),
        (provider(available=False), ago(1), "NotReady", "NoInventory"),
        (provider(nodes=0), ago(1), "NotReady", "NoInventory"),
        (provider(), ago(1), "Ready", "HeartbeatFresh"),
        (provider(), ago(-5), "Ready", "HeartbeatFresh"),
    ],
)
def test_provider_phase(body: dict[str, Any], renew: str | None, phase: str, reason: str) -> None:
    assert provider_phase(body, renew, now=NOW, timeout=TIMEOUT)[:2] == (phase, reason)


def test_messages_say_why() -> None:
    _, _, expired = provider_phase(provider(), ago(95), now=NOW, timeout=TIMEOUT)
    assert expired == "last heartbeat 95s ago (timeout 30s)"
    _, _, fresh = provider_phase(provider(), ago(-5), now=NOW, timeout=TIMEOUT)
    assert fresh == "heartbeat 0s ago"


def test_empty_provider_is_unreachable() -> None:
    assert provider_phase({}, None, now=NOW, timeout=TIMEOUT)[0] == "Unreachable"


# --- provider_status_patch -----------------------------------------------------------------


def test_patch_of_a_new_provider() -> None:
    patch = provider_status_patch(provider(), "2026-01-02T03:04:01.123456Z", now=NOW, timeout=30)
    assert patch is not None
    assert patch["phase"] == "Ready"
    assert patch["lastHeartbeatTime"] == "2026-01-02T03:04:01Z"
    (ready,) = patch["conditions"]
    assert ready["type"] == "Ready"
    assert ready["status"] == "True"
    assert ready["reason"] == "HeartbeatFresh"
    assert ready["observedGeneration"] == 4


def test_patch_without_heartbeat_has_no_heartbeat_time() -> None:
    patch = provider_status_patch(provider(), None, now=NOW, timeout=TIMEOUT)
    assert patch is not None
    assert patch["phase"] == "Unreachable"
    assert "lastHeartbeatTime" not in patch
    assert patch["conditions"][0]["status"] == "False"


def applied(body: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    assert patch is not None
    return {**body, "status": {**body["status"], **patch}}


def test_nothing_to_write_when_nothing_changed() -> None:
    renew = ago(2)
    body = applied(provider(), provider_status_patch(provider(), renew, now=NOW, timeout=30))
    later = NOW + timedelta(seconds=10)  # only the message's age moves
    assert provider_status_patch(body, renew, now=later, timeout=TIMEOUT) is None


def test_a_new_heartbeat_is_written() -> None:
    body = applied(provider(), provider_status_patch(provider(), ago(7), now=NOW, timeout=30))
    patch = provider_status_patch(body, ago(1), now=NOW, timeout=TIMEOUT)
    assert patch is not None
    assert patch["lastHeartbeatTime"] == ago(1)[:19] + "Z"


def test_expiry_flips_ready_and_moves_its_transition_time() -> None:
    renew = ago(2)
    first = provider_status_patch(provider(), renew, now=NOW, timeout=TIMEOUT)
    body = applied(provider(), first)
    later = NOW + timedelta(minutes=5)
    patch = provider_status_patch(body, renew, now=later, timeout=TIMEOUT)
    assert patch is not None
    assert patch["phase"] == "Unreachable"
    (ready,) = patch["conditions"]
    assert ready["status"] == "False"
    assert ready["reason"] == "HeartbeatExpired"
    assert first is not None
    assert ready["lastTransitionTime"] != first["conditions"][0]["lastTransitionTime"]


def test_reason_change_alone_is_written() -> None:
    """Unreachable for lack of a heartbeat, then for an expired one: same phase, new reason."""
    body = applied(provider(), provider_status_patch(provider(), None, now=NOW, timeout=30))
    body["status"]["lastHeartbeatTime"] = ago(60)[:19] + "Z"
    patch = provider_status_patch(body, ago(60), now=NOW, timeout=TIMEOUT)
    assert patch is not None
    assert patch["conditions"][0]["reason"] == "HeartbeatExpired"


def test_cordoning_is_written_and_other_conditions_are_kept() -> None:
    other = {
        "type": "Registered",
        "status": "True",
        "reason": "Joined",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    renew = ago(1)
    body = applied(provider(), provider_status_patch(provider(), renew, now=NOW, timeout=30))
    body["status"]["conditions"] = [other, *body["status"]["conditions"]]
    body["spec"] = {"cordoned": True}
    patch = provider_status_patch(body, renew, now=NOW, timeout=TIMEOUT)
    assert patch is not None
    assert patch["phase"] == "Cordoned"
    assert [c["type"] for c in patch["conditions"]] == ["Registered", "Ready"]
    assert patch["conditions"][0] == other
