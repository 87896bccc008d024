"""Charges of an epoch: Σ usage per (billing account, provider), exact base units."""

from __future__ import annotations

from typing import Any

import pytest

from kommons.api import ComputeLease, DepartedUsage
from kommons.settlement.charges import epoch_charges


def _lease(name: str, usage: list[dict[str, Any]] | None) -> ComputeLease:
    body: dict[str, Any] = {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "poolRef": {"name": "pool"},
            "replicas": 1,
            "resources": {"cpu": "1", "memory": "1Gi"},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "maxPricePerHour": "1",
        },
    }
    if usage is not None:
        body["status"] = {"usage": usage}
    return ComputeLease.model_validate(body)


def _usage(epoch: int, account: str, provider: str, amount: str, uid: str = "p1") -> dict[str, Any]:
    return {
        "epochId": epoch,
        "provider": provider,
        "placementUid": uid,
        "billingAccount": account,
        "readySeconds": 10,
        "amount": amount,
    }


def test_sums_per_account_and_provider_of_the_epoch_only() -> None:
    leases = [
        _lease("a", [_usage(1, "acme", "prov-a", "0.5"), _usage(2, "acme", "prov-a", "9")]),
        _lease(
            "b", [_usage(1, "acme", "prov-a", "0.000001", "p2"), _usage(1, "acme", "prov-b", "2")]
        ),
        _lease("c", [_usage(1, "beta", "prov-a", "1.25")]),
        _lease("d", None),
        _lease("e", []),
    ]
    assert epoch_charges(leases, 1) == {
        ("acme", "prov-a"): 500_001,
        ("acme", "prov-b"): 2_000_000,
        ("beta", "prov-a"): 1_250_000,
    }
    assert epoch_charges(leases, 2) == {("acme", "prov-a"): 9_000_000}
    assert epoch_charges(leases, 3) == {}


def test_zero_amounts_make_no_charge() -> None:
    assert epoch_charges([_lease("a", [_usage(1, "acme", "prov-a", "0")])], 1) == {}


def test_decimals_of_the_token() -> None:
    leases = [_lease("a", [_usage(1, "acme", "prov-a", "1.5")])]
    assert epoch_charges(leases, 1, decimals=18) == {("acme", "prov-a"): 1_500_000_000_000_000_000}


def test_an_amount_finer_than_the_token_names_the_lease() -> None:
    leases = [_lease("a", [_usage(1, "acme", "prov-a", "0.0000001")])]
    with pytest.raises(ValueError, match="team-a/a"):
        epoch_charges(leases, 1)


def _departed(uid: str, amount: str, account: str = "acme", provider: str = "prov-a") -> Any:
    return DepartedUsage(
        lease="team-a/gone",
        lease_uid="lease-gone",
        placement_uid=uid,
        provider=provider,
        billing_account=account,
        ready_seconds=10,
        amount=amount,
    )


def test_usage_of_deleted_leases_is_charged_with_the_others() -> None:
    leases = [_lease("a", [_usage(1, "acme", "prov-a", "0.5", "p1")])]
    departed = [_departed("p9", "0.25"), _departed("p8", "1", account="beta")]
    assert epoch_charges(leases, 1, departed=departed) == {
        ("acme", "prov-a"): 750_000,
        ("beta", "prov-a"): 1_000_000,
    }


def test_a_departed_entry_still_on_its_lease_counts_once() -> None:
    # the lease was read before it went: its own entry and the handed-over copy are one usage
    leases = [_lease("gone", [_usage(1, "acme", "prov-a", "0.5", "p1")])]
    departed = [_departed("p1", "0.5"), _departed("p1", "0.5")]
    assert epoch_charges(leases, 1, departed=departed) == {("acme", "prov-a"): 500_000}
    assert epoch_charges([], 1, departed=departed) == {("acme", "prov-a"): 500_000}


def test_a_bad_departed_amount_names_the_epoch_and_the_lease() -> None:
    with pytest.raises(ValueError, match=r"SettlementEpoch 1 status.departed \(team-a/gone\)"):
        epoch_charges([], 1, departed=[_departed("p1", "0.0000001")])
