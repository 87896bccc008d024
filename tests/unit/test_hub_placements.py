"""Unit tests of ``LeasePlacement`` objects (``kommons.hub.placements``).

Behaviour matrix:

- ``placement_name``: readable slug of the lease name (≤ 40 characters) plus a digest of
  namespace/uid; the same lease always gives the same name; a valid DNS label for any valid
  lease name; distinct uids (or namespaces) give distinct names even for the same lease name.
- ``placement_object``: in the provider's hub namespace; lease ref, provider, replicas,
  resources, template, price, billing account, suspend, lease generation; pass-through keys
  (expose, configFrom, imagePullSecrets, storage) only when set; labels are valid label
  values (long lease names trimmed to end alphanumeric).
- ``needs_update``: false when the spec matches (extra fields on the existing placement such
  as leaseGeneration don't count); true when any desired field differs, and when a
  pass-through field was removed from the lease but is still on the placement.
- ``scale_down``: the surplus over the wanted replicas is taken from the most expensive
  placements first; counts never grow; the total lands on the target (or stays if below).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.api_names import (
    API_VERSION,
    LABEL_LEASE_NAME,
    LABEL_LEASE_UID,
    LABEL_PROVIDER,
    provider_namespace,
)
from kommons.hub.placements import needs_update, placement_name, placement_object, scale_down

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# A Kubernetes object name (DNS subdomain): lowercase alphanumerics, '-' and '.', starting and
# ending alphanumeric, at most 253 characters.
subdomains = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True)
namespaces = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


def lease(
    name: str = "web", namespace: str = "team-a", uid: str = "uid-1", **spec: Any
) -> dict[str, Any]:
    body_spec: dict[str, Any] = {
        "replicas": 2,
        "resources": {"cpu": "500m", "memory": "1Gi"},
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
    }
    body_spec.update(spec)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 7},
        "spec": body_spec,
    }


def place(body: dict[str, Any], provider: str = "p1", replicas: int = 2) -> dict[str, Any]:
    return placement_object(
        body, provider=provider, replicas=replicas, price_per_hour="0.5", billing_account="acct"
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
    body = lease(name, namespace, str(uid))
    first = placement_name(body)
    assert placement_name(lease(name, namespace, str(uid))) == first
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
    obj = place(body, provider="p1", replicas=3)
    assert obj["apiVersion"] == API_VERSION
    assert obj["kind"] == "LeasePlacement"
    assert obj["metadata"]["name"] == placement_name(body)
    assert obj["metadata"]["namespace"] == provider_namespace("p1")
    labels = obj["metadata"]["labels"]
    assert labels[LABEL_LEASE_UID] == "uid-1"
    assert labels[LABEL_PROVIDER] == "p1"
    assert obj["spec"] == {
        "leaseRef": {"namespace": "team-a", "name": "web", "uid": "uid-1"},
        "provider": "p1",
        "replicas": 3,
        "resources": body["spec"]["resources"],
        "template": body["spec"]["template"],
        "pricePerHour": "0.5",
        "billingAccount": "acct",
        "suspend": False,
        "leaseGeneration": 7,
    }


def test_pass_through_fields_only_when_set() -> None:
    spec = place(
        lease(
            expose={"ports": [80]},
            imagePullSecrets=[{"name": "reg"}],
            storage=None,
            configFrom=[],
        )
    )["spec"]
    assert spec["expose"] == {"ports": [80]}
    assert spec["imagePullSecrets"] == [{"name": "reg"}]
    assert "storage" not in spec
    assert "configFrom" not in spec


def test_missing_template_is_empty_and_suspend_is_carried() -> None:
    body = lease(suspend=True)
    del body["spec"]["template"]
    spec = place(body)["spec"]
    assert spec["template"] == {}
    assert spec["suspend"] is True


@pytest.mark.parametrize("name", ["a" * 62 + ".b", "a" * 62 + "-b", "a" * 253])
def test_lease_name_label_is_a_valid_label_value(name: str) -> None:
    value = place(lease(name))["metadata"]["labels"][LABEL_LEASE_NAME]
    assert len(value) <= 63
    assert LABEL_VALUE.match(value)


# --- needs_update -------------------------------------------------------------------------


def desired_for(body: dict[str, Any]) -> dict[str, Any]:
    """What the hub compares against, as in ``hub.leases`` (without leaseGeneration)."""
    desired = place(body)
    desired["spec"].pop("leaseGeneration", None)
    return desired


def test_unchanged_placement_needs_no_update() -> None:
    existing = place(lease(expose={"ports": [80]}))
    existing["spec"]["leaseGeneration"] = 1  # older generation, same spec
    assert not needs_update(existing, desired_for(lease(expose={"ports": [80]})))


@pytest.mark.parametrize(
    "change",
    [
        {"suspend": True},
        {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}},
        {"resources": {"cpu": "1", "memory": "1Gi"}},
        {"expose": {"ports": [80]}},
    ],
)
def test_changed_lease_needs_an_update(change: dict[str, Any]) -> None:
    existing = place(lease())
    assert needs_update(existing, desired_for(lease(**change)))


@pytest.mark.parametrize("key", ["expose", "configFrom", "imagePullSecrets", "storage"])
def test_removed_pass_through_field_needs_an_update(key: str) -> None:
    existing = place(lease(**{key: [{"name": "x"}]}))
    assert key in existing["spec"]
    assert needs_update(existing, desired_for(lease()))


def test_placement_without_spec_needs_an_update() -> None:
    assert needs_update({"metadata": {}}, desired_for(lease()))


def _priced(provider: str, replicas: int, price: str) -> dict[str, Any]:
    return {"spec": {"provider": provider, "replicas": replicas, "pricePerHour": price}}


def test_scale_down_trims_most_expensive_first() -> None:
    placements = [_priced("a", 2, "0.10"), _priced("b", 2, "0.30"), _priced("c", 1, "0.20")]
    assert scale_down(placements, 5) == {"a": 2, "b": 2, "c": 1}
    assert scale_down(placements, 3) == {"a": 2, "b": 0, "c": 1}
    assert scale_down(placements, 2) == {"a": 2, "b": 0, "c": 0}
    assert scale_down(placements, 0) == {"a": 0, "b": 0, "c": 0}


@given(
    counts=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=6),
    wanted=st.integers(min_value=0, max_value=30),
)
def test_scale_down_never_grows_and_hits_the_target(counts: list[int], wanted: int) -> None:
    placements = [_priced(f"p{i}", n, f"0.{i + 1}") for i, n in enumerate(counts)]
    result = scale_down(placements, wanted)
    assert all(result[f"p{i}"] <= n for i, n in enumerate(counts))
    assert sum(result.values()) == min(sum(counts), max(wanted, 0))
