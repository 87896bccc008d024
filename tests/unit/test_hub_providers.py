"""Unit tests of a Provider's phase as the hub sees it (``kommons.hub.providers``).

The heartbeat age is measured by the hub (its clock when the agent's heartbeat Lease last
changed), so these functions take an age in seconds, never a timestamp the agent wrote.

Behaviour matrix (``provider_phase``), in order:

- ``spec.cordoned`` → Cordoned (whatever the heartbeat or the declaration);
- no provider, or no heartbeat seen → Unreachable/NoHeartbeat; a heartbeat older than the
  timeout → Unreachable/HeartbeatExpired saying how old (exactly at the timeout is fresh);
- an unusable declaration (``invalid``) → NotReady/InvalidDeclaration quoting it;
- no inventory (``available``) or no Ready nodes → NotReady/NoInventory;
- otherwise Ready/HeartbeatFresh (a negative age says 0 s).

``health_status_patch``:

- sets phase and the ``Ready`` condition (True only when Ready, observed generation), and
  ``lastHeartbeatTime`` (to the second, ``Z``) when the hub saw one;
- keeps other conditions; ``lastTransitionTime`` moves only when Ready flips;
- is ``None`` (no write) when phase and reason are unchanged, whatever the message or the
  heartbeat time; a change of phase or of reason alone gives a patch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kommons.api import Provider
from kommons.hub.providers import ProviderPhase, health_status_patch, provider_phase

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BEAT = datetime(2026, 1, 2, 3, 4, 1, 123456, tzinfo=UTC)
TIMEOUT = 30.0


def provider(
    *, cordoned: bool = False, available: bool = True, nodes: int | None = 2, **status: Any
) -> Provider:
    body_status: dict[str, Any] = {**status}
    if nodes is not None:
        body_status["nodes"] = nodes
    if available:
        body_status["available"] = {"cpu": "4", "memory": "8Gi", "pods": 10}
    return Provider.model_validate(
        {
            "metadata": {"name": "p1", "generation": 4},
            "spec": {
                "region": "eu",
                "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
                "pricing": {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001"},
                "cordoned": cordoned,
            },
            "status": body_status,
        }
    )


def phase_of(
    body: Provider | None, age: float | None, invalid: str | None = None
) -> tuple[ProviderPhase, str, str]:
    return provider_phase(body, age, timeout=TIMEOUT, invalid=invalid)


@pytest.mark.parametrize(
    ("body", "age", "invalid", "phase", "reason"),
    [
        (provider(cordoned=True), 1.0, None, "Cordoned", "Cordoned"),
        (provider(cordoned=True), None, None, "Cordoned", "Cordoned"),
        (provider(cordoned=True), 3600.0, None, "Cordoned", "Cordoned"),
        (provider(cordoned=True), 1.0, "bad", "Cordoned", "Cordoned"),
        (None, 1.0, None, "Unreachable", "NoHeartbeat"),
        (None, None, None, "Unreachable", "NoHeartbeat"),
        (provider(), None, None, "Unreachable", "NoHeartbeat"),
        (provider(), TIMEOUT + 1, None, "Unreachable", "HeartbeatExpired"),
        (provider(available=False), TIMEOUT + 1, None, "Unreachable", "HeartbeatExpired"),
        (provider(), TIMEOUT + 1, "bad", "Unreachable", "HeartbeatExpired"),
        (provider(), TIMEOUT, None, "Ready", "HeartbeatFresh"),
        (provider(), 1.0, "bad", "NotReady", "InvalidDeclaration"),
        (provider(available=False), 1.0, "bad", "NotReady", "InvalidDeclaration"),
        (provider(available=False), 1.0, None, "NotReady", "NoInventory"),
        (provider(nodes=0), 1.0, None, "NotReady", "NoInventory"),
        (provider(nodes=None), 1.0, None, "NotReady", "NoInventory"),
        (provider(), 1.0, None, "Ready", "HeartbeatFresh"),
        (provider(), -5.0, None, "Ready", "HeartbeatFresh"),
    ],
)
def test_provider_phase(
    body: Provider | None, age: float | None, invalid: str | None, phase: str, reason: str
) -> None:
    assert phase_of(body, age, invalid)[:2] == (phase, reason)


def test_provider_without_status_has_no_inventory() -> None:
    body = provider()
    body.status = None
    assert phase_of(body, 1.0)[:2] == ("NotReady", "NoInventory")


def test_messages_say_why() -> None:
    assert phase_of(provider(), 95.4)[2] == "no heartbeat for 95s (timeout 30s)"
    assert phase_of(provider(), 2.0)[2] == "heartbeat seen 2s ago"
    assert phase_of(provider(), -5.0)[2] == "heartbeat seen 0s ago"
    assert phase_of(provider(), 2.0, "quotes a zero price")[2] == (
        "excluded from scheduling: quotes a zero price"
    )
    assert "spec.cordoned" in phase_of(provider(cordoned=True), 2.0)[2]


# --- health_status_patch -------------------------------------------------------------------


def patch_of(
    body: Provider,
    age: float | None,
    *,
    beat: datetime | None = BEAT,
    now: datetime = NOW,
    invalid: str | None = None,
) -> dict[str, Any] | None:
    return health_status_patch(body, phase_of(body, age, invalid), last_heartbeat=beat, now=now)


def applied(body: Provider, patch: dict[str, Any] | None) -> Provider:
    """``body`` as the API server serves it after the merge patch of its status."""
    assert patch is not None
    wire = body.to_api()
    wire["status"] = {**wire.get("status", {}), **patch}
    return Provider.model_validate(wire)


def test_patch_of_a_new_provider() -> None:
    patch = patch_of(provider(), 2.0)
    assert patch is not None
    assert patch["phase"] == "Ready"
    assert patch["lastHeartbeatTime"] == "2026-01-02T03:04:01Z"
    (ready,) = patch["conditions"]
    assert ready["type"] == "Ready"
    assert ready["status"] == "True"
    assert ready["reason"] == "HeartbeatFresh"
    assert ready["message"] == "heartbeat seen 2s ago"
    assert ready["observedGeneration"] == 4
    assert ready["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_patch_without_heartbeat_has_no_heartbeat_time() -> None:
    patch = patch_of(provider(), None, beat=None)
    assert patch is not None
    assert patch["phase"] == "Unreachable"
    assert "lastHeartbeatTime" not in patch
    assert patch["conditions"][0]["status"] == "False"
    assert patch["conditions"][0]["reason"] == "NoHeartbeat"


def test_nothing_to_write_when_phase_and_reason_are_unchanged() -> None:
    body = applied(provider(), patch_of(provider(), 2.0))
    later = NOW + timedelta(seconds=10)
    # the message's age moved and a newer heartbeat was seen: still no write
    assert patch_of(body, 12.0, now=later, beat=later) is None


def test_expiry_flips_ready_and_moves_its_transition_time() -> None:
    body = applied(provider(), patch_of(provider(), 2.0))
    later = NOW + timedelta(minutes=5)
    patch = patch_of(body, 302.0, now=later)
    assert patch is not None
    assert patch["phase"] == "Unreachable"
    (ready,) = patch["conditions"]
    assert ready["status"] == "False"
    assert ready["reason"] == "HeartbeatExpired"
    assert ready["message"] == "no heartbeat for 302s (timeout 30s)"
    assert ready["lastTransitionTime"] == "2026-01-02T03:09:05Z"


def test_reason_change_alone_is_written() -> None:
    """Unreachable for lack of a heartbeat, then for an expired one: same phase, new reason."""
    body = applied(provider(), patch_of(provider(), None, beat=None))
    patch = patch_of(body, 60.0, now=NOW + timedelta(seconds=1))
    assert patch is not None
    assert patch["phase"] == "Unreachable"
    (ready,) = patch["conditions"]
    assert ready["reason"] == "HeartbeatExpired"
    assert ready["lastTransitionTime"] == "2026-01-02T03:04:05Z"  # still False: not moved


def test_an_invalid_declaration_is_written() -> None:
    body = applied(provider(), patch_of(provider(), 2.0))
    patch = patch_of(body, 2.0, invalid="quotes a zero price")
    assert patch is not None
    assert patch["phase"] == "NotReady"
    assert patch["conditions"][0]["reason"] == "InvalidDeclaration"


def test_a_phase_without_a_ready_condition_is_written() -> None:
    """A status written by someone else (phase set, no Ready condition) is corrected."""
    body = provider(phase="Ready")
    assert patch_of(body, 2.0) is not None


def test_cordoning_is_written_and_other_conditions_are_kept() -> None:
    other = {
        "type": "Registered",
        "status": "True",
        "reason": "Joined",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    body = applied(provider(), patch_of(provider(), 1.0))
    wire = body.to_api()
    wire["status"]["conditions"] = [other, *wire["status"]["conditions"]]
    wire["spec"]["cordoned"] = True
    patch = patch_of(Provider.model_validate(wire), 1.0)
    assert patch is not None
    assert patch["phase"] == "Cordoned"
    assert [c["type"] for c in patch["conditions"]] == ["Registered", "Ready"]
    assert patch["conditions"][0] == other
    assert patch["conditions"][1]["status"] == "False"
