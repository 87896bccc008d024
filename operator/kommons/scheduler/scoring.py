"""Ranking of feasible providers by the pool's strategy.

Every strategy produces a total order: its own key first, then the remaining signals, and the
provider name last, so the same inputs always give the same ranking whatever their order.
*Headroom* is the number of replicas of this lease that still fit on a provider
(:attr:`.filters.Candidate.slots`); it compares providers in the lease's own terms, across
cpu, memory and gpus at once.

=============  =====================================================================
strategy       sort key (ascending; the first provider gets replicas first)
=============  =====================================================================
LowestPrice    price, -reputation, name
BinPack        headroom, price, -reputation, name
Spread         -headroom, price, -reputation, name
Balanced       cost, price, -reputation, name, where
               cost = 0.5 * price_norm + 0.3 * (1 - reputation) + 0.2 * (1 - headroom_norm)
=============  =====================================================================

For ``Balanced``, ``price_norm = (price - min) / (max - min)`` over the feasible providers
(0 when all prices are equal) and ``headroom_norm = headroom / max headroom``. It is computed
exactly in integers (reputation quantised to 1e-6), so ties are real ties and fall through to
the next key.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Final

from kommons.scheduler.filters import Candidate
from kommons.scheduler.model import Strategy

BALANCED_WEIGHTS: Final = (Fraction(5, 10), Fraction(3, 10), Fraction(2, 10))
"""Weights of (normalised price, 1 - reputation, 1 - normalised headroom) for Balanced."""

REPUTATION_SCALE: Final = 1_000_000
"""Balanced compares reputations quantised to this many steps (1e-6)."""


def _tail(c: Candidate) -> tuple[int, float, str]:
    # negating a float is exact, so comparing -reputation is as deterministic as a Fraction
    return (c.price, -c.view.reputation, c.name)


def _balanced_costs(candidates: Sequence[Candidate]) -> dict[str, int]:
    """Balanced costs scaled by a positive constant to integers (same order, exact).

    ``cost × 10·span·most·R`` with ``span = max - min price`` (1 if equal), ``most`` the
    largest headroom and ``R = REPUTATION_SCALE`` (reputation is quantised to 1e-6).
    """
    low = min(c.price for c in candidates)
    span = max(c.price for c in candidates) - low or 1
    most = max(c.slots for c in candidates)
    scale = REPUTATION_SCALE
    w_price, w_reputation, w_headroom = (int(w * 10) for w in BALANCED_WEIGHTS)
    return {
        c.name: w_price * (c.price - low) * most * scale
        + w_reputation * (scale - round(c.view.reputation * scale)) * span * most
        + w_headroom * (most - c.slots) * span * scale
        for c in candidates
    }


def rank(candidates: Sequence[Candidate], strategy: Strategy) -> list[Candidate]:
    """Order feasible providers best first.

    Args:
        candidates: Feasible providers (names unique).
        strategy: The pool's strategy.

    Returns:
        A new list, best first; deterministic and independent of the input order.
    """
    if not candidates:
        return []
    if strategy is Strategy.LOWEST_PRICE:
        return sorted(candidates, key=_tail)
    if strategy is Strategy.BIN_PACK:
        return sorted(candidates, key=lambda c: (c.slots, *_tail(c)))
    if strategy is Strategy.SPREAD:
        return sorted(candidates, key=lambda c: (-c.slots, *_tail(c)))
    costs = _balanced_costs(candidates)
    return sorted(candidates, key=lambda c: (costs[c.name], *_tail(c)))
