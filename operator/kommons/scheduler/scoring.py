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
with exact fractions, so ties are real ties and fall through to the next key.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Final

from kommons.scheduler.filters import Candidate
from kommons.scheduler.model import Strategy

BALANCED_WEIGHTS: Final = (Fraction(5, 10), Fraction(3, 10), Fraction(2, 10))
"""Weights of (normalised price, 1 - reputation, 1 - normalised headroom) for Balanced."""


def _tail(c: Candidate) -> tuple[int, Fraction, str]:
    return (c.price, -Fraction(c.view.reputation), c.name)


def _balanced_costs(candidates: Sequence[Candidate]) -> dict[str, Fraction]:
    low = min(c.price for c in candidates)
    high = max(c.price for c in candidates)
    most = max(c.slots for c in candidates)
    w_price, w_reputation, w_headroom = BALANCED_WEIGHTS
    costs = {}
    for c in candidates:
        price_norm = Fraction(c.price - low, high - low) if high > low else Fraction(0)
        headroom_norm = Fraction(c.slots, most)
        costs[c.name] = (
            w_price * price_norm
            + w_reputation * (1 - Fraction(c.view.reputation))
            + w_headroom * (1 - headroom_norm)
        )
    return costs


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
