"""The hub's metering step for one lease (pure): ingest placements' checkpoints into its ledger.

:func:`meter` runs after :func:`~kommons.hub.plan.plan_lease` on the same lease and amends
the plan:

- the status carries the recomputed ``usage`` and ``cost``
  (:func:`kommons.metering.ledger.ledger`) whatever the rest of the plan says;
- placements being deleted that hold only the hub's metering finalizer
  (:data:`~kommons.api_names.FINALIZER_METERING`) are released once this status is written:
  their final checkpoint (the agent writes it before removing its own finalizer) is in;
- a deleted lease whose workload is gone does not wait for its epochs to settle: its usage of
  every epoch not sealed yet (``Open``, or frozen ``Sealed`` without a root) is handed over to
  that epoch (``SettlementEpoch.status.departed``, :attr:`Metered.handover`) before its
  finalizer goes; an epoch already sealed has the usage in its leaves (the lease was there
  when it was sealed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from kommons.api import ComputeLease, ComputeLeaseStatus, LeasePlacement, LeaseUsage
from kommons.api.provider import Outage
from kommons.api_names import FINALIZER_METERING
from kommons.hub.lease_status import status_changed
from kommons.hub.placements import locked_price
from kommons.metering import outages as outage_windows
from kommons.metering.acceptance import Facts
from kommons.metering.ledger import (
    SETTLED_PHASES,
    Epoch,
    Report,
    awaiting_settlement,
    ledger,
)
from kommons.metering.timeline import seconds

HANDOVER_PHASES = ("Open", "Sealed")
"""Epoch phases whose root may not be computed yet: a going lease hands its usage over."""


@dataclass
class Metered:
    """What metering adds to a lease's plan."""

    status: ComputeLeaseStatus | None
    """The status to write (``None``: unchanged)."""
    handover: dict[int, list[LeaseUsage]] = field(default_factory=dict)
    """A deleted lease about to go: epochId → its usage there, to write into that epoch's
    ``status.departed`` before the finalizer is removed (the executor checks the epoch has no
    root yet; if it has, the seal already billed the usage)."""
    release: list[LeasePlacement] = field(default_factory=list)
    """Deleting placements whose metering finalizer may go once ``status`` is written."""
    late: dict[tuple[int, str], int] = field(default_factory=dict)
    """(epochId, placementUid) → replica-seconds reported for a Sealed or Submitted epoch
    beyond its entry (not billed; the same seconds come again on every step until it settles)."""


def only_metering_finalizer(placement: LeasePlacement) -> bool:
    """A deleting placement whose every other finalizer (the agent's) is gone."""
    meta = placement.metadata
    return meta.deletion_timestamp is not None and (meta.finalizers or []) == [FINALIZER_METERING]


def reports(
    placements: Sequence[LeasePlacement],
    outages: Mapping[str, Sequence[Outage] | None],
    *,
    now: datetime,
) -> list[Report]:
    """The placements that carry a checkpoint, with the facts the hub observed about them."""
    out = []
    for placement in placements:
        status, meta = placement.status, placement.metadata
        if status is None or status.metering is None or meta.uid is None:
            continue
        created = meta.creation_timestamp
        deleted = meta.deletion_timestamp
        facts = Facts(
            created=seconds(created) if created else seconds(now),
            deleted=seconds(deleted) if deleted else None,
            replicas=placement.spec.replicas,
            outages=outage_windows.windows(outages.get(placement.spec.provider)),
            received=seconds(now),
        )
        out.append(
            Report(
                placement_uid=meta.uid,
                provider=placement.spec.provider,
                billing_account=placement.spec.billing_account,
                price=locked_price(placement),
                metering=status.metering,
                facts=facts,
            )
        )
    return out


def meter(
    lease: ComputeLease,
    planned: ComputeLeaseStatus | None,
    placements: Sequence[LeasePlacement],
    *,
    removing_finalizer: bool,
    epochs: Mapping[int, Epoch],
    outages: Mapping[str, Sequence[Outage] | None],
    now: datetime,
) -> Metered:
    """Amend a lease's plan with its ledger.

    Args:
        lease: The lease as observed.
        planned: The status the plan writes (``None``: the plan leaves it unchanged).
        placements: The lease's placements, deleting ones included.
        removing_finalizer: The plan drops the lease's finalizer (a deleted lease is done).
        epochs: Every known SettlementEpoch by id.
        outages: Providers' hub-recorded outage windows by provider name.
        now: The hub's clock.
    """
    current = lease.status or ComputeLeaseStatus()
    base = planned if planned is not None else current
    book = ledger(current.usage, current.cost, reports(placements, outages, now=now), epochs)
    nothing = not book.usage and current.cost is None and book.cost.accrued == "0"
    cost = None if nothing else book.cost  # a lease never metered shows no cost (no write)
    desired = base.model_copy(update={"usage": book.usage or None, "cost": cost})
    handover: dict[int, list[LeaseUsage]] = {}
    if lease.metadata.deletion_timestamp is not None and removing_finalizer:
        for epoch_id in awaiting_settlement(book.usage, epochs):
            if epochs[epoch_id].phase in HANDOVER_PHASES:
                handover[epoch_id] = [u for u in book.usage if u.epoch_id == epoch_id]
    release = [p for p in placements if only_metering_finalizer(p)]
    changed = status_changed(lease.status, desired)
    return Metered(
        status=desired if changed else None,
        handover=handover,
        release=release,
        late=book.late,
    )


def to_remeter(
    epoch_id: int,
    before: Epoch | None,
    after: Epoch,
    leases: Mapping[str, ComputeLease],
    placements_of: Callable[[str], Sequence[LeasePlacement]],
) -> list[str]:
    """Keys of the leases whose ledger an epoch's change can move (the rest wait for a report).

    - An epoch newly **Confirmed or Failed**: the leases with usage in it (it folds into
      ``cost.settled``).
    - An epoch **first seen**: the leases that will send no further report, being deleted or
      with a placement being deleted, since their last report may fall in its window.
    - Any other change (sealed, submitted): none. A running placement reports at least every
      ``--metering-report-seconds``, which queues its lease anyway.

    Queueing every lease on every change instead made the hub replan the whole market four
    times per epoch (a burst of 300 leases on the bed's 20 s epochs never drained).
    """
    if after.phase in SETTLED_PHASES and (before is None or before.phase not in SETTLED_PHASES):
        return [
            key
            for key, lease in leases.items()
            if any(
                u.epoch_id == epoch_id for u in (lease.status.usage if lease.status else None) or ()
            )
        ]
    if before is None:
        return [
            key
            for key, lease in leases.items()
            if lease.metadata.deletion_timestamp is not None
            or any(p.metadata.deletion_timestamp is not None for p in placements_of(key))
        ]
    return []
