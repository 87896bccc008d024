"""The hub's in-memory reservation ledger.

An agent reports a provider's free capacity every few seconds. Between a decision and the
next report that reflects it, the hub would otherwise see the same free capacity again and a
burst of leases could over-commit the provider. So every decision's placements are reserved
at once, and the scheduler subtracts the reservations a report does not yet include.

**The rule.** A reservation made at time ``created_at`` (hub clock) is *reflected* in a
provider's report, and stops being subtracted, when either

* the report lists the reservation's key in :attr:`.ProviderView.accounted`, or
* the report was observed at least ``settle_seconds`` after the reservation was made:
  ``observed_at >= created_at + settle_seconds`` and ``observed_at > created_at``.

``observed_at`` and ``created_at`` must come from the same clock: the hub stamps a report
with its own time when it sees it (never the agent's clock, which may be skewed).
``settle_seconds`` covers the time an agent needs to materialise a placement so that its
pods count in "available"; with the default 0 any strictly newer report counts.

Reservations are keyed by :func:`placement_key` (one per lease and provider). Reserving a
key that is still pending adds to it and restamps it, which only ever subtracts more: safe.
The ledger holds no state that matters across restarts beyond that safety margin; a new
leader rebuilds it by reserving every ``LeasePlacement`` created after its provider's last
report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kommons.scheduler.decision import Decision
from kommons.scheduler.model import LeaseRequest, ProviderView, Resources


def placement_key(lease_key: str, provider: str) -> str:
    """Ledger key of a lease's placement on a provider: ``"<namespace>/<name>@<provider>"``."""
    return f"{lease_key}@{provider}"


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """Capacity held on one provider for one placement."""

    key: str
    """Placement key, see :func:`placement_key`."""
    provider: str
    """Provider name."""
    resources: Resources
    """Capacity held."""
    created_at: float
    """When it was made (hub clock, same clock as ``ProviderView.observed_at``)."""


def is_reflected(reservation: Reservation, view: ProviderView, *, settle_seconds: float) -> bool:
    """Tell whether ``view``'s report already includes ``reservation`` (see module rule)."""
    if reservation.key in view.accounted:
        return True
    return (
        view.observed_at > reservation.created_at
        and view.observed_at >= reservation.created_at + settle_seconds
    )


def effective_available(
    view: ProviderView, reservations: Iterable[Reservation], *, settle_seconds: float = 0.0
) -> Resources:
    """Free capacity of a provider minus the reservations its report does not include.

    Args:
        view: The provider and its last report.
        reservations: Reservations (any provider's; others are ignored).
        settle_seconds: See the module rule.

    Returns:
        The capacity the scheduler may still hand out; never negative.
    """
    free = view.available
    for reservation in reservations:
        if reservation.provider == view.name and not is_reflected(
            reservation, view, settle_seconds=settle_seconds
        ):
            free = free.minus(reservation.resources)
    return free


class Reservations:
    """Mutable ledger of pending reservations, kept in memory by the hub.

    Not thread-safe: the hub mutates it from its event loop only.
    """

    def __init__(self, *, settle_seconds: float = 0.0) -> None:
        """Create an empty ledger.

        Args:
            settle_seconds: Minimum age a report must have over a reservation to be trusted
                to include it (see the module rule).
        """
        if settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, got {settle_seconds}")
        self.settle_seconds = settle_seconds
        self._by_provider: dict[str, dict[str, Reservation]] = {}

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_provider.values())

    def __iter__(self) -> Iterator[Reservation]:
        for provider in sorted(self._by_provider):
            yield from self._by_provider[provider].values()

    def get(self, key: str, provider: str) -> Reservation | None:
        """Return the pending reservation ``key`` on ``provider``, if any."""
        return self._by_provider.get(provider, {}).get(key)

    def for_provider(self, provider: str) -> tuple[Reservation, ...]:
        """Pending reservations on one provider."""
        return tuple(self._by_provider.get(provider, {}).values())

    def reserve(self, *, key: str, provider: str, resources: Resources, at: float) -> Reservation:
        """Hold capacity on a provider; adds to a pending reservation of the same key.

        Args:
            key: Placement key.
            provider: Provider name.
            resources: Capacity to hold.
            at: Current hub time.

        Returns:
            The reservation now held under ``key``.
        """
        held = self._by_provider.setdefault(provider, {})
        previous = held.get(key)
        if previous is not None:
            resources = previous.resources.plus(resources)
        reservation = Reservation(key=key, provider=provider, resources=resources, created_at=at)
        held[key] = reservation
        return reservation

    def record(self, decision: Decision, lease: LeaseRequest, *, at: float) -> list[Reservation]:
        """Reserve every placement of a decision, keyed by :func:`placement_key`.

        Args:
            decision: A decision returned by :func:`.schedule` for ``lease``.
            lease: The lease it was made for.
            at: Current hub time.

        Returns:
            The reservations held, one per chosen provider.
        """
        return [
            self.reserve(
                key=placement_key(lease.key, chosen.provider),
                provider=chosen.provider,
                resources=lease.resources.as_resources(chosen.replicas, chosen.gpu_model),
                at=at,
            )
            for chosen in decision.chosen
        ]

    def release(self, key: str, provider: str) -> Reservation | None:
        """Drop a reservation (placement failed, was deleted, or is known reflected).

        Returns:
            The dropped reservation, or ``None`` if there was none.
        """
        held = self._by_provider.get(provider)
        if not held:
            return None
        reservation = held.pop(key, None)
        if not held:
            del self._by_provider[provider]
        return reservation

    def release_lease(self, lease_key: str) -> list[Reservation]:
        """Drop every reservation of a lease (e.g. the lease was deleted)."""
        prefix = placement_key(lease_key, "")
        dropped = []
        for provider in sorted(self._by_provider):
            for key in [k for k in self._by_provider[provider] if k.startswith(prefix)]:
                released = self.release(key, provider)
                if released is not None:
                    dropped.append(released)
        return dropped

    def effective_available(self, view: ProviderView) -> Resources:
        """Free capacity of ``view`` minus its pending, unreflected reservations."""
        return effective_available(
            view, self.for_provider(view.name), settle_seconds=self.settle_seconds
        )

    def observe(self, view: ProviderView) -> list[Reservation]:
        """Forget the reservations a new report of ``view`` reflects; call on every report.

        Returns:
            The reservations dropped.
        """
        dropped = [
            r
            for r in self.for_provider(view.name)
            if is_reflected(r, view, settle_seconds=self.settle_seconds)
        ]
        for reservation in dropped:
            self.release(reservation.key, reservation.provider)
        return dropped
