"""Pure placement logic of the hub: filters, ranking, reservations. No I/O, no kopf.

The hub converts API objects into the small frozen dataclasses of :mod:`.model`, calls
:func:`schedule`, records the decision in its :class:`Reservations` ledger, writes the
``LeasePlacement`` objects and renders :meth:`Decision.to_status` into
``ComputeLease.status.decision``. See ``docs/scheduling.md``.
"""

from kommons.scheduler.decision import Decision, Placement
from kommons.scheduler.filters import Candidate, FilterContext, evaluate, fit_count
from kommons.scheduler.model import (
    LeaseRequest,
    PoolPolicy,
    Pricing,
    ProviderView,
    ReplicaResources,
    Resources,
    Strategy,
)
from kommons.scheduler.money import (
    DEFAULT_DECIMALS,
    format_bytes,
    format_price,
    format_units,
    parse_units,
    replica_price,
)
from kommons.scheduler.reservations import (
    Reservation,
    Reservations,
    effective_available,
    is_reflected,
    placement_key,
)
from kommons.scheduler.schedule import schedule
from kommons.scheduler.scoring import BALANCED_WEIGHTS, rank
from kommons.scheduler.selector import LabelSelector, Operator, Requirement, matches_selector

__all__ = [
    "BALANCED_WEIGHTS",
    "DEFAULT_DECIMALS",
    "Candidate",
    "Decision",
    "FilterContext",
    "LabelSelector",
    "LeaseRequest",
    "Operator",
    "Placement",
    "PoolPolicy",
    "Pricing",
    "ProviderView",
    "ReplicaResources",
    "Requirement",
    "Reservation",
    "Reservations",
    "Resources",
    "Strategy",
    "effective_available",
    "evaluate",
    "fit_count",
    "format_bytes",
    "format_price",
    "format_units",
    "is_reflected",
    "matches_selector",
    "parse_units",
    "placement_key",
    "rank",
    "replica_price",
    "schedule",
]
