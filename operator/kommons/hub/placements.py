"""Build ``LeasePlacement`` objects: the hub's instruction to one provider (pure, typed)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from kommons.api import (
    ComputeLease,
    JobSpec,
    LeaseHistoryEntry,
    LeasePlacement,
    LeasePlacementSpec,
    LeaseRef,
    ObjectMeta,
)
from kommons.api_names import (
    FINALIZER_METERING,
    LABEL_LEASE_NAME,
    LABEL_LEASE_NAMESPACE,
    LABEL_LEASE_UID,
    LABEL_MANAGED_BY,
    LABEL_PROVIDER,
    MANAGER,
    provider_namespace,
)
from kommons.money import format_units, parse_units

SPEC_FIELDS_COPIED = (
    "resources",
    "template",
    "suspend",
    "expose",
    "config_from",
    "image_pull_secrets",
    "storage",
)
"""Lease spec fields a placement carries as they are (everything else is the hub's)."""


def placement_name(lease: ComputeLease) -> str:
    """Deterministic name of a lease's placement in any provider namespace.

    The same lease always gives the same name, so a retried write after a crash updates the
    placement it already made instead of adding a second one.
    """
    meta = lease.metadata
    slug = re.sub(r"[^a-z0-9-]+", "-", str(meta.name).lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(f"{meta.namespace}/{meta.uid}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def placement_spec(
    lease: ComputeLease,
    *,
    provider: str,
    replicas: int,
    price_per_hour: int,
    account: str,
    expires_at: datetime | None = None,
    job: JobSpec | None = None,
    fencing_token: int | None = None,
    config_revisions: dict[str, str] | None = None,
) -> LeasePlacementSpec:
    """The spec of the placement putting ``replicas`` of ``lease`` on ``provider``.

    ``expires_at`` is the lease's term end and ``job`` this provider's share of a Job lease
    (:mod:`kommons.hub.lifecycle`); ``fencing_token`` is the hub's token for it
    (:mod:`kommons.hub.failover`); ``config_revisions`` the versions of the ConfigMaps and
    Secrets it takes along (:mod:`kommons.config_copies`).
    """
    meta = lease.metadata
    copied = {name: getattr(lease.spec, name) for name in SPEC_FIELDS_COPIED}
    return LeasePlacementSpec(
        lease_ref=LeaseRef(namespace=str(meta.namespace), name=str(meta.name), uid=str(meta.uid)),
        provider=provider,
        replicas=replicas,
        price_per_hour=format_units(price_per_hour),
        billing_account=account,
        lease_generation=meta.generation,
        expires_at=expires_at,
        job=job,
        fencing_token=fencing_token,
        config_revisions=config_revisions,
        **copied,
    )


def placement_object(
    lease: ComputeLease,
    *,
    provider: str,
    replicas: int,
    price_per_hour: int,
    account: str,
    expires_at: datetime | None = None,
    job: JobSpec | None = None,
    fencing_token: int | None = None,
    config_revisions: dict[str, str] | None = None,
) -> LeasePlacement:
    """A new ``LeasePlacement`` for ``replicas`` of ``lease`` on ``provider``."""
    meta = lease.metadata
    return LeasePlacement(
        metadata=ObjectMeta(
            name=placement_name(lease),
            namespace=provider_namespace(provider),
            finalizers=[FINALIZER_METERING],
            labels={
                LABEL_MANAGED_BY: MANAGER,
                LABEL_LEASE_UID: str(meta.uid),
                LABEL_LEASE_NAMESPACE: str(meta.namespace),
                LABEL_LEASE_NAME: str(meta.name)[:63].rstrip("-."),
                LABEL_PROVIDER: provider,
            },
        ),
        spec=placement_spec(
            lease,
            provider=provider,
            replicas=replicas,
            price_per_hour=price_per_hour,
            account=account,
            expires_at=expires_at,
            job=job,
            fencing_token=fencing_token,
            config_revisions=config_revisions,
        ),
    )


def locked_price(placement: LeasePlacement) -> int:
    """The price per replica-hour locked in a placement, in base units."""
    return parse_units(placement.spec.price_per_hour, rounding="up")


def same_spec(a: LeasePlacementSpec, b: LeasePlacementSpec) -> bool:
    """Whether two placement specs ask the provider for the same thing (generation aside)."""
    skip = {"lease_generation"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip)


def scale_down(placements: Sequence[LeasePlacement], wanted: int) -> dict[str, int]:
    """Replicas per provider after removing the surplus over ``wanted``.

    The most expensive placements shrink first (ties: provider name, last first), so the
    tenant keeps the cheapest replicas. Providers that end at 0 should be deleted.
    """
    counts = {p.spec.provider: p.spec.replicas for p in placements}
    prices: Mapping[str, int] = {p.spec.provider: locked_price(p) for p in placements}
    surplus = sum(counts.values()) - wanted
    for provider in sorted(counts, key=lambda name: (prices[name], name), reverse=True):
        if surplus <= 0:
            break
        take = min(counts[provider], surplus)
        counts[provider] -= take
        surplus -= take
    return counts


SCALED_DOWN = "ScaledDown"
"""``status.history`` type, reason and Event reason of replicas a scale-down removed."""


def scaled_down_entry(
    placement: LeasePlacement, *, left: int, wanted: int, now: datetime
) -> LeaseHistoryEntry:
    """The ``status.history`` entry of a scale-down that takes replicas off one provider.

    Args:
        placement: The placement as it was before the scale-down.
        left: Replicas it keeps (0: the placement is deleted).
        wanted: The lease's ``spec.replicas`` now.
        now: The hub's clock.
    """
    provider = placement.spec.provider
    removed = placement.spec.replicas - left
    kept = f"{left} left there" if left else "its placement deleted"
    return LeaseHistoryEntry(
        time=now.replace(microsecond=0),
        type=SCALED_DOWN,
        provider=provider,
        replicas=removed,
        reason=SCALED_DOWN,
        message=f"{removed} replica(s) removed from {provider} ({kept}): spec.replicas lowered"
        f" to {wanted}",
    )
