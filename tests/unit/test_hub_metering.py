"""The hub's metering step for one lease (kommons.hub.metering.meter).

Behaviour matrix:

- a placement's checkpoint becomes usage/cost on the status the plan writes, and on the
  current status when the plan writes none; nothing to write when nothing changed;
- a planned status that does not carry usage (built from scratch) still gets it;
- the price is the placement's locked spec.pricePerHour, the account its spec.billingAccount;
- outages of the placement's provider are clipped;
- a deleted lease whose plan drops its finalizer hands its usage of epochs not sealed yet
  (Open, Sealed without root) over to them; none for Submitted/Confirmed/Failed epochs;
- deleting placements holding only the metering finalizer are released; others are not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kommons.api import ComputeLease, ComputeLeaseStatus, LeasePlacement
from kommons.api.provider import Outage
from kommons.api_names import FINALIZER_METERING
from kommons.hub.metering import Metered, meter, to_remeter
from kommons.metering.acceptance import EpochWindow
from kommons.metering.ledger import Epoch
from kommons.metering.timeline import instant
from kommons.money import parse_units, prorate

T0 = 1_800_000_000
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def at(offset: int) -> datetime:
    return instant(T0 + offset)


def lease(*, deleting: bool = False, status: dict[str, Any] | None = None) -> ComputeLease:
    meta: dict[str, Any] = {"namespace": "team-a", "name": "web", "uid": "u1", "generation": 1}
    if deleting:
        meta["deletionTimestamp"] = at(500).isoformat()
    body: dict[str, Any] = {
        "metadata": meta,
        "spec": {
            "poolRef": {"name": "pool"},
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "maxPricePerHour": "1",
            "template": TEMPLATE,
        },
    }
    if status is not None:
        body["status"] = status
    return ComputeLease.model_validate(body)


def placement(
    *,
    ready_since: int | None = 10,
    observed: int = 100,
    finalizers: list[str] | None = None,
    deleting: int | None = None,
) -> LeasePlacement:
    meta: dict[str, Any] = {
        "name": "web-x",
        "namespace": "kommons-provider-prov-a",
        "uid": "pl1",
        "creationTimestamp": at(0).isoformat(),
        "finalizers": finalizers or [FINALIZER_METERING],
    }
    if deleting is not None:
        meta["deletionTimestamp"] = at(deleting).isoformat()
    pods = [{"uid": "pod1", "readySince": at(ready_since).isoformat()}] if ready_since else []
    return LeasePlacement.model_validate(
        {
            "metadata": meta,
            "spec": {
                "leaseRef": {"namespace": "team-a", "name": "web", "uid": "u1"},
                "provider": "prov-a",
                "replicas": 1,
                "resources": {"cpu": "1", "memory": "1Gi"},
                "template": TEMPLATE,
                "pricePerHour": "0.36",
                "billingAccount": "acct",
            },
            "status": {"metering": {"observedAt": at(observed).isoformat(), "pods": pods}},
        }
    )


EPOCHS = {1: Epoch(EpochWindow(1, T0, T0 + 1000), "Open")}


def run(
    the_lease: ComputeLease,
    placements: list[LeasePlacement],
    *,
    planned: ComputeLeaseStatus | None = None,
    removing: bool = False,
    epochs: dict[int, Epoch] | None = None,
    outages: dict[str, list[Outage] | None] | None = None,
) -> Metered:
    return meter(
        the_lease,
        planned,
        placements,
        removing_finalizer=removing,
        epochs=EPOCHS if epochs is None else epochs,
        outages=outages or {},
        now=at(2000),
    )


def test_checkpoint_becomes_usage_and_cost_at_the_locked_price() -> None:
    done = run(lease(), [placement()])
    assert done.status is not None
    (entry,) = done.status.usage or []
    assert (entry.epoch_id, entry.placement_uid, entry.provider) == (1, "pl1", "prov-a")
    assert entry.billing_account == "acct"
    assert entry.ready_seconds == 90
    assert parse_units(entry.amount) == prorate(parse_units("0.36"), 90) == 9000
    assert done.status.cost is not None
    assert done.status.cost.accrued == "0.009"
    # the same again: nothing to write
    again = run(lease(status=done.status.to_api()), [placement()])
    assert again.status is None


def test_a_planned_status_without_usage_still_carries_it() -> None:
    first = run(lease(), [placement()])
    assert first.status is not None
    stored = lease(status=first.status.to_api())
    planned = ComputeLeaseStatus(phase="Running")  # e.g. built from scratch by the plan
    done = run(stored, [placement()], planned=planned)
    assert done.status is not None
    assert done.status.phase == "Running"
    assert done.status.usage == first.status.usage


def test_the_providers_outages_are_not_billed() -> None:
    outages: dict[str, list[Outage] | None] = {"prov-a": [Outage(start=at(40), end=at(70))]}
    done = run(lease(), [placement()], outages=outages)
    assert done.status is not None
    assert (done.status.usage or [])[0].ready_seconds == 60


def test_a_deleted_lease_hands_its_usage_of_unsealed_epochs_over() -> None:
    first = run(lease(), [placement()])
    assert first.status is not None
    deleted = lease(deleting=True, status=first.status.to_api())
    for phase in ("Open", "Sealed"):  # no root yet (Sealed: frozen, maybe not sealed)
        epochs = {1: Epoch(EpochWindow(1, T0, T0 + 1000), phase)}
        going = run(deleted, [], removing=True, epochs=epochs)
        assert going.handover == {1: first.status.usage}
    # the plan keeps the finalizer (placements still there): nothing handed over yet
    assert run(deleted, [], removing=False).handover == {}


def test_nothing_is_handed_over_to_epochs_already_sealed_or_settled() -> None:
    first = run(lease(), [placement()])
    assert first.status is not None
    deleted = lease(deleting=True, status=first.status.to_api())
    for phase in ("Submitted", "Confirmed", "Failed"):
        epochs = {1: Epoch(EpochWindow(1, T0, T0 + 1000), phase)}
        assert run(deleted, [], removing=True, epochs=epochs).handover == {}
    assert run(deleted, [], removing=True, epochs={}).handover == {}  # epoch object gone


def test_only_placements_left_with_the_metering_finalizer_are_released() -> None:
    agent_done = placement(deleting=300)
    agent_busy = placement(deleting=300, finalizers=[FINALIZER_METERING, "kommons.io/agent"])
    live = placement()
    assert run(lease(), [agent_done]).release == [agent_done]
    assert run(lease(), [agent_busy, live]).release == []


def test_deletion_ends_billing_of_a_placement() -> None:
    done = run(lease(), [placement(deleting=50, observed=400)])
    assert done.status is not None
    assert (done.status.usage or [])[0].ready_seconds == 40


def test_a_lease_never_metered_gets_no_cost_written() -> None:
    assert run(lease(), []).status is None
    assert run(lease(), [placement(ready_since=None)]).status is None


def remeter_case(
    before_phase: str | None, after_phase: str, *, epoch_id: int = 1
) -> dict[str, list[str]]:
    """Which leases a change of epoch ``epoch_id`` queues, among four kinds of lease."""
    window = EpochWindow(epoch_id, T0, T0 + 1000)
    before = None if before_phase is None else Epoch(window, before_phase)  # type: ignore[arg-type]
    after = Epoch(window, after_phase)  # type: ignore[arg-type]
    billed = run(lease(), [placement()]).status
    assert billed is not None
    assert billed.usage
    leases = {
        "team-a/billed": lease(status=billed.to_api()),
        "team-a/idle": lease(),
        "team-a/deleting": lease(deleting=True),
        "team-a/moving": lease(),
    }
    placements = {"team-a/moving": [placement(deleting=200)]}
    keys = to_remeter(epoch_id, before, after, leases, lambda key: placements.get(key, []))
    return {"queued": sorted(keys)}


def test_a_confirmed_epoch_remeters_only_the_leases_with_usage_in_it() -> None:
    assert remeter_case("Submitted", "Confirmed") == {"queued": ["team-a/billed"]}
    assert remeter_case("Submitted", "Failed") == {"queued": ["team-a/billed"]}
    assert remeter_case("Submitted", "Confirmed", epoch_id=2) == {"queued": []}


def test_a_new_epoch_remeters_only_leases_that_will_not_report_again() -> None:
    assert remeter_case(None, "Open") == {"queued": ["team-a/deleting", "team-a/moving"]}


def test_sealing_submitting_or_a_repeated_settled_phase_remeters_nothing() -> None:
    assert remeter_case("Open", "Sealed") == {"queued": []}
    assert remeter_case("Sealed", "Submitted") == {"queued": []}
    assert remeter_case("Confirmed", "Confirmed") == {"queued": []}
