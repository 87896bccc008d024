"""Fencing on the provider side (pure): which workloads the agent must remove on its own.

The hub supersedes a placement by deleting it (after writing its replacement elsewhere). The
agent removes a placement's workload when:

- the placement is being deleted (its kopf deletion handler, :mod:`kommons.agent.runner`);
- the placement is gone from the hub altogether (the hub did not wait for this agent, e.g.
  a lease deleted while the provider was Unreachable, or a crash between steps): the
  *sweep* below, run at start and periodically, removes every workload namespace on the
  provider cluster whose placement the hub no longer has.

Every workload namespace carries the placement's name (label ``kommons.io/placement``) and
its fencing token (label :data:`LABEL_FENCING_TOKEN`). A placement's name is unique in the
agent's hub namespace, and a new placement of the same lease on the same provider can only
be created once the old one is gone (its deletion waits for this agent): so one provider
never holds two workloads of one lease, and a superseded one is always one whose placement is
deleting or gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kommons.api_names import LABEL_PLACEMENT, PREFIX

LABEL_FENCING_TOKEN = f"{PREFIX}/fencing-token"
"""Label on a workload namespace: the fencing token of the placement it materialises."""


def orphaned(
    namespaces: Iterable[Mapping[str, Any]], placements: Mapping[str, int | None]
) -> list[str]:
    """Workload namespaces to remove: their placement is gone from the hub.

    Args:
        namespaces: Namespace objects on the provider cluster labelled as Kommons workloads,
            listed *before* ``placements`` (so a namespace made for a brand-new placement is
            never taken for an orphan).
        placements: The placements the hub has in the agent's namespace: name → fencing token.
    """
    out = []
    for body in namespaces:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        placement = labels.get(LABEL_PLACEMENT)
        if not placement or meta.get("deletionTimestamp"):
            continue
        if placement not in placements:
            out.append(str(meta["name"]))
    return sorted(out)


__all__ = ["LABEL_FENCING_TOKEN", "orphaned"]
