"""Build ``LeasePlacement`` objects: the hub's instruction to one provider (pure)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kommons.api_names import (
    API_VERSION,
    LABEL_LEASE_NAME,
    LABEL_LEASE_NAMESPACE,
    LABEL_LEASE_UID,
    LABEL_MANAGED_BY,
    LABEL_PROVIDER,
    MANAGER,
    provider_namespace,
)
from kommons.money import parse_units

JSON = dict[str, Any]
_PASS_THROUGH = ("expose", "configFrom", "imagePullSecrets", "storage")


def placement_name(lease: Mapping[str, Any]) -> str:
    """Deterministic name of a lease's placement in any provider namespace.

    The same lease always gives the same name, so a retried write after a crash updates the
    placement it already made instead of adding a second one.
    """
    meta = lease["metadata"]
    slug = re.sub(r"[^a-z0-9-]+", "-", str(meta["name"]).lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(f"{meta['namespace']}/{meta['uid']}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def placement_object(
    lease: Mapping[str, Any],
    *,
    provider: str,
    replicas: int,
    price_per_hour: str,
    billing_account: str,
) -> JSON:
    """The ``LeasePlacement`` that puts ``replicas`` of ``lease`` on ``provider``."""
    meta = lease["metadata"]
    spec = lease["spec"]
    placement_spec: JSON = {
        "leaseRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        "provider": provider,
        "replicas": replicas,
        "resources": spec["resources"],
        "template": spec.get("template") or {},
        "pricePerHour": price_per_hour,
        "billingAccount": billing_account,
        "suspend": bool(spec.get("suspend", False)),
        "leaseGeneration": meta.get("generation"),
    }
    for key in _PASS_THROUGH:
        if spec.get(key):
            placement_spec[key] = spec[key]
    return {
        "apiVersion": API_VERSION,
        "kind": "LeasePlacement",
        "metadata": {
            "name": placement_name(lease),
            "namespace": provider_namespace(provider),
            "labels": {
                LABEL_MANAGED_BY: MANAGER,
                LABEL_LEASE_UID: meta["uid"],
                LABEL_LEASE_NAMESPACE: meta["namespace"],
                LABEL_LEASE_NAME: str(meta["name"])[:63].rstrip("-."),
                LABEL_PROVIDER: provider,
            },
        },
        "spec": placement_spec,
    }


def needs_update(placement: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether an existing placement's spec differs from what the hub wants now."""
    current = placement.get("spec") or {}
    wanted = desired["spec"]
    # A pass-through field dropped from the lease must be dropped from the placement too.
    removed = any(k in current and k not in wanted for k in _PASS_THROUGH)
    return removed or any(current.get(k) != v for k, v in wanted.items())


def scale_down(placements: Sequence[Mapping[str, Any]], wanted: int) -> dict[str, int]:
    """Replicas per provider after removing the surplus over ``wanted``.

    The most expensive placements shrink first (ties: provider name, last first), so the
    tenant keeps the cheapest replicas. Providers that end at 0 should be deleted.
    """
    counts = {str(p["spec"]["provider"]): int(p["spec"]["replicas"]) for p in placements}
    prices = {
        str(p["spec"]["provider"]): parse_units(str(p["spec"]["pricePerHour"]), rounding="up")
        for p in placements
    }
    surplus = sum(counts.values()) - wanted
    for provider in sorted(counts, key=lambda name: (prices[name], name), reverse=True):
        if surplus <= 0:
            break
        take = min(counts[provider], surplus)
        counts[provider] -= take
        surplus -= take
    return counts
