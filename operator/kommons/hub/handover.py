"""A deleted lease's usage handed over to its epochs, so the lease need not wait for them.

Sealing bills what leases show in ``status.usage``. A deleted lease would have to stay until
every epoch it has usage in is sealed (an hour or more with the product's defaults) — instead,
once its workload is gone, the hub copies its usage of each epoch not sealed yet into that
epoch's ``status.departed`` (:func:`hand_over_to_epoch`) and only then removes its finalizer.

Both this write and the seal's are conditional on the epoch's resourceVersion: whichever comes
second sees the other's, so the usage is sealed exactly once — through the lease (it was still
there when the epoch was read for the seal) or through ``departed`` (the sealing counts an entry
a lease still shows once: :func:`kommons.settlement.charges.epoch_charges`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kommons.hub.metering import HANDOVER_PHASES
from kommons.kube import Conflict, Kube
from kommons.kube import resources as r
from kommons.settlement.epochs import epoch_name

log = logging.getLogger("kommons.hub.handover")
JSON = dict[str, Any]
ATTEMPTS = 5
"""Conditional writes tried before giving up for this step (the lease retries later)."""


def merged_departed(existing: Sequence[JSON], entries: Sequence[JSON]) -> list[JSON] | None:
    """``existing`` departed entries with ``entries`` in place of theirs (same placement).

    ``None`` when nothing would change (a retried hand-over writes nothing).
    """
    new = {e["placementUid"]: e for e in entries}
    kept = [e for e in existing if e.get("placementUid") not in new]
    merged = kept + [new[uid] for uid in sorted(new)]
    return None if merged == list(existing) else merged


def hand_over_to_epoch(kube: Kube, epoch_id: int, entries: Sequence[JSON]) -> bool:
    """Write ``entries`` (DepartedUsage bodies) into the epoch's ``status.departed``.

    Returns True when the usage is the epoch's: written, already there, the epoch already has
    a root (sealed while the lease was there, so its leaves bill it), or the epoch is gone.
    False when every attempt conflicted with another write (the caller retries later).
    """
    name = epoch_name(epoch_id)
    for _ in range(ATTEMPTS):
        body = kube.get_or_none(r.SETTLEMENT_EPOCHS, name)
        if body is None:
            return True  # nothing settles it any more (the same as a lease's usage there)
        status = body.get("status") or {}
        if status.get("root") or (status.get("phase") or "Open") not in HANDOVER_PHASES:
            return True
        merged = merged_departed(status.get("departed") or [], entries)
        if merged is None:
            return True
        patch = {
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
            "status": {"departed": merged},
        }
        try:
            kube.patch(r.SETTLEMENT_EPOCHS, name, patch, subresource="status")
        except Conflict:
            continue
        return True
    log.info("epoch %d: usage not handed over, %d conflicting writes in a row", epoch_id, ATTEMPTS)
    return False
