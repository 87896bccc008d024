"""Pure placement logic of the hub: filters, ranking, reservations. No I/O, no kopf.

The hub keeps a :class:`Market` (providers and holds, updated per watch event), calls
:meth:`Market.decide` for a lease, :meth:`Market.commit` s the decision, writes the
``LeasePlacement`` objects and renders :meth:`Decision.to_status` into
``ComputeLease.status.decision``. :func:`schedule` with a :class:`Reservations` ledger is the
reference implementation the market agrees with. See ``docs/scheduling.md``.
"""

from kommons.scheduler.decision import (
    MAX_REJECTED_SAMPLES,
    MESSAGE_REASONS,
    Decision,
    Placement,
    format_multiplier,
    pick_samples,
    price_text,
)
from kommons.scheduler.filters import (
    Candidate,
    FilterContext,
    RejectionKind,
    capacity_reason,
    classify,
    evaluate,
    fit_count,
)
from kommons.scheduler.market import Market
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
from kommons.scheduler.quote import (
    MAX_MULTIPLIER,
    MULTIPLIER_ONE,
    Quote,
    provider_quote,
    quote,
    utilization_multiplier,
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
    "MAX_MULTIPLIER",
    "MAX_REJECTED_SAMPLES",
    "MESSAGE_REASONS",
    "MULTIPLIER_ONE",
    "Candidate",
    "Decision",
    "FilterContext",
    "LabelSelector",
    "LeaseRequest",
    "Market",
    "Operator",
    "Placement",
    "PoolPolicy",
    "Pricing",
    "ProviderView",
    "Quote",
    "RejectionKind",
    "ReplicaResources",
    "Requirement",
    "Reservation",
    "Reservations",
    "Resources",
    "Strategy",
    "capacity_reason",
    "classify",
    "effective_available",
    "evaluate",
    "fit_count",
    "format_bytes",
    "format_multiplier",
    "format_price",
    "format_units",
    "is_reflected",
    "matches_selector",
    "parse_units",
    "pick_samples",
    "placement_key",
    "price_text",
    "provider_quote",
    "quote",
    "rank",
    "replica_price",
    "schedule",
    "utilization_multiplier",
]
