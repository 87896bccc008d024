"""Unit tests of typed ``LeasePlacement`` objects (``kommons.hub.placements``).

Behaviour matrix:

- ``placement_name``: readable slug of the lease name (≤ 40 characters) plus a digest of
  namespace/uid; the same lease always gives the same name; a valid DNS label for any valid
  lease name; distinct uids (or namespaces) give distinct names even for the same lease name;
  the spec does not matter.
- ``placement_object``: in the provider's hub namespace, named by ``placement_name``; labels
  (managed-by, lease uid/namespace/name, provider) are valid label values (long lease names
  trimmed to end alphanumeric); spec: lease ref, provider, replicas, resources, template,
  price formatted from base units, billing account, suspend, lease generation; expose,
  configFrom, imagePullSecrets, storage copied as they are (absent stays absent).
- ``same_spec``: true for the same lease at another generation; false when any other field
  differs, including a copied field removed from the lease but still on the placement.
- ``locked_price``: the placement's price in base units, rounded up.
- ``scale_down``: the surplus over the wanted replicas is taken from the most expensive
  placements first (ties: the later provider name first); properties: counts never grow, the
  total lands on the target (or stays if below), and a placement shrinks only once every
  dearer one is at zero.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.api import ComputeLease, LeasePlacement
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
from kommons.hub.placements import (
    locked_price,
    placement_name,
    placement_object,
    same_spec,
    scale_down,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}

# A Kubernetes object name (DNS subdomain): lowercase alphanumerics, '-' and '.', starting and
# ending alphanumeric, at most 253 characters.
subdomains = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True)
namespaces = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


def lease(
    name: str = "web",
    namespace: str = "team-a",
    uid: str = "uid-1",
    generation: int = 7,
    **spec: Any,
) -> ComputeLease:
    body_spec: dict[str, Any] = {
        "poolRef": {"name": "pool"},
        "replicas": 2,
        "resources": {"cpu": "500m", "memory": "1Gi"},
        "maxPricePerHour": "1",
        "template": TEMPLATE,
    }
    body_spec.update(spec)
    return ComputeLease.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "generation": generation,
            },
            "spec": body_spec,
        }
    )


def place(
    body: ComputeLease, provider: str = "p1", replicas: int = 2, price: int = 500_000
) -> LeasePlacement:
    return placement_object(
        body, provider=provider, replicas=replicas, price_per_hour=price, account="acct"
    )


# --- placement_name -----------------------------------------------------------------------


def test_placement_name_is_slug_and_digest() -> None:
    name = placement_name(lease("web.app"))
    slug, digest = name.rsplit("-", 1)
    assert slug == "web-app"
    assert re.fullmatch(r"[0-9a-f]{8}", digest)


def test_long_lease_name_is_trimmed_to_a_label() -> None:
    name = placement_name(lease("a" * 39 + "-" + "b" * 200))
    assert DNS_LABEL.match(name)
    assert name.startswith("a" * 39 + "-")
    assert len(name) == 39 + 1 + 8


@settings(max_examples=150, deadline=None)
@given(subdomains, namespaces, st.uuids())
def test_placement_name_is_deterministic_and_a_dns_label(
    name: str, namespace: str, uid: object
) -> None:
    first = placement_name(lease(name, namespace, str(uid)))
    assert placement_name(lease(name, namespace, str(uid), generation=8)) == first
    assert DNS_LABEL.match(first), first
    assert len(first) <= 63


@settings(max_examples=150, deadline=None)
@given(subdomains, namespaces, st.uuids(), st.uuids())
def test_distinct_uids_give_distinct_names(
    name: str, namespace: str, uid_a: object, uid_b: object
) -> None:
    if uid_a == uid_b:
        return
    a = placement_name(lease(name, namespace, str(uid_a)))
    b = placement_name(lease(name, namespace, str(uid_b)))
    assert a != b


def test_same_uid_in_another_namespace_gives_another_name() -> None:
    assert placement_name(lease(namespace="a")) != placement_name(lease(namespace="b"))


def test_name_does_not_depend_on_the_spec() -> None:
    assert placement_name(lease(replicas=1)) == placement_name(lease(replicas=9, suspend=True))


# --- placement_object ---------------------------------------------------------------------


def test_placement_object() -> None:
    body = lease()
    obj = place(body, provider="p1", replicas=3, price=1_250_000)
    wire = obj.to_api()
    assert wire["apiVersion"] == API_VERSION
    assert wire["kind"] == "LeasePlacement"
    assert obj.metadata.name == placement_name(body)
    assert obj.metadata.namespace == provider_namespace("p1")
    assert obj.metadata.labels == {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_LEASE_UID: "uid-1",
        LABEL_LEASE_NAMESPACE: "team-a",
        LABEL_LEASE_NAME: "web",
        LABEL_PROVIDER: "p1",
    }
    assert wire["spec"] == {
        "leaseRef": {"namespace": "team-a", "name": "web", "uid": "uid-1"},
        "provider": "p1",
        "replicas": 3,
        "resources": {"cpu": "500m", "memory": "1Gi"},
        "template": TEMPLATE,
        "pricePerHour": "1.25",
        "billingAccount": "acct",
        "suspend": False,
        "leaseGeneration": 7,
    }


def test_copied_fields_are_carried_as_they_are() -> None:
    copied: dict[str, Any] = {
        "expose": [{"name": "http", "port": 80, "public": True}],
        "configFrom": [{"kind": "Secret", "name": "db"}],
        "imagePullSecrets": [{"name": "reg"}],
        "storage": [{"name": "data", "size": "5Gi", "mountPath": "/data"}],
        "suspend": True,
    }
    body = lease(**copied)
    spec = place(body).to_api()["spec"]
    assert spec["expose"] == [{"name": "http", "port": 80, "protocol": "TCP", "public": True}]
    assert spec["configFrom"] == copied["configFrom"]
    assert spec["imagePullSecrets"] == copied["imagePullSecrets"]
    assert spec["storage"] == [
        {
            "name": "data",
            "size": "5Gi",
            "tier": "standard",
            "mountPath": "/data",
            "reclaimPolicy": "Delete",
        }
    ]
    assert spec["suspend"] is True


def test_fields_the_lease_does_not_set_are_absent() -> None:
    spec = place(lease()).to_api()["spec"]
    for key in ("expose", "configFrom", "imagePullSecrets", "storage", "expiresAt"):
        assert key not in spec


def test_hub_only_lease_fields_are_not_copied() -> None:
    spec = place(lease(maxPricePerHour="9", duration="2h", placement={"spread": True})).to_api()[
        "spec"
    ]
    assert not {"maxPricePerHour", "duration", "placement", "poolRef"} & spec.keys()
    assert spec["leaseRef"] == {"namespace": "team-a", "name": "web", "uid": "uid-1"}


@pytest.mark.parametrize("name", ["a" * 62 + ".b", "a" * 62 + "-b", "a" * 253, "a.b-c"])
def test_lease_name_label_is_a_valid_label_value(name: str) -> None:
    value = (place(lease(name)).metadata.labels or {})[LABEL_LEASE_NAME]
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)
    assert name.startswith(value)


# --- same_spec ----------------------------------------------------------------------------


def test_another_generation_is_the_same_spec() -> None:
    old = place(lease(generation=1, expose=[{"name": "http", "port": 80}]))
    new = place(lease(generation=2, expose=[{"name": "http", "port": 80}]))
    assert old.spec.lease_generation != new.spec.lease_generation
    assert same_spec(old.spec, new.spec)


@pytest.mark.parametrize(
    "change",
    [
        {"suspend": True},
        {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}},
        {"resources": {"cpu": "1", "memory": "1Gi"}},
        {"expose": [{"name": "http", "port": 80}]},
        {"configFrom": [{"kind": "ConfigMap", "name": "cfg"}]},
    ],
)
def test_changed_lease_is_another_spec(change: dict[str, Any]) -> None:
    assert not same_spec(place(lease()).spec, place(lease(**change)).spec)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expose", [{"name": "http", "port": 80}]),
        ("configFrom", [{"kind": "Secret", "name": "x"}]),
        ("imagePullSecrets", [{"name": "x"}]),
        ("storage", [{"name": "x", "size": "1Gi", "mountPath": "/x"}]),
    ],
)
def test_removed_copied_field_is_another_spec(field: str, value: Any) -> None:
    existing = place(lease(**{field: value}))
    assert field in existing.to_api()["spec"]
    assert not same_spec(existing.spec, place(lease()).spec)


def test_replicas_price_provider_and_account_are_part_of_the_spec() -> None:
    base = place(lease())
    assert not same_spec(base.spec, place(lease(), replicas=3).spec)
    assert not same_spec(base.spec, place(lease(), price=600_000).spec)
    assert not same_spec(base.spec, place(lease(), provider="p2").spec)
    other_account = placement_object(
        lease(), provider="p1", replicas=2, price_per_hour=500_000, account="other"
    )
    assert not same_spec(base.spec, other_account.spec)


# --- locked_price -------------------------------------------------------------------------


def test_locked_price_in_base_units() -> None:
    assert locked_price(place(lease(), price=500_000)) == 500_000
    sub_unit = place(lease())
    sub_unit.spec.price_per_hour = "0.0000001"
    assert locked_price(sub_unit) == 1  # rounded up


# --- scale_down ---------------------------------------------------------------------------


def priced(provider: str, replicas: int, price: int) -> LeasePlacement:
    return place(lease(), provider=provider, replicas=replicas, price=price)


def test_scale_down_trims_most_expensive_first() -> None:
    placements = [priced("a", 2, 100_000), priced("b", 2, 300_000), priced("c", 1, 200_000)]
    assert scale_down(placements, 5) == {"a": 2, "b": 2, "c": 1}
    assert scale_down(placements, 6) == {"a": 2, "b": 2, "c": 1}
    assert scale_down(placements, 4) == {"a": 2, "b": 1, "c": 1}
    assert scale_down(placements, 3) == {"a": 2, "b": 0, "c": 1}
    assert scale_down(placements, 2) == {"a": 2, "b": 0, "c": 0}
    assert scale_down(placements, 0) == {"a": 0, "b": 0, "c": 0}


def test_scale_down_ties_take_the_later_name_first() -> None:
    placements = [priced("a", 2, 100_000), priced("b", 2, 100_000)]
    assert scale_down(placements, 3) == {"a": 2, "b": 1}


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 4)), min_size=1, max_size=6),
    wanted=st.integers(min_value=0, max_value=30),
)
def test_scale_down_invariants(rows: list[tuple[int, int]], wanted: int) -> None:
    counts = {f"p{i}": n for i, (n, _) in enumerate(rows)}
    prices = {f"p{i}": price * 100_000 for i, (_, price) in enumerate(rows)}
    placements = [priced(name, counts[name], prices[name]) for name in counts]
    result = scale_down(placements, wanted)

    assert result.keys() == counts.keys()
    assert all(0 <= result[name] <= counts[name] for name in counts)
    assert sum(result.values()) == min(sum(counts.values()), wanted)
    for name in counts:
        if result[name] < counts[name]:  # shrunk: every dearer placement is gone
            dearer = [q for q in counts if (prices[q], q) > (prices[name], name)]
            assert all(result[q] == 0 for q in dearer), (name, dearer, result)
