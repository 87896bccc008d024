"""The API models: wire names, strictness, Python-side checks and helpers.

Behaviour matrix:

- every example in ``examples/`` parses into its model and serialises back to the same spec
  (plus defaults); camelCase on the wire, snake_case in Python, irregular names kept
  (``memoryGiBHour``, ``hostPID``);
- spec models refuse unknown fields, status models ignore them, open models (pod template)
  keep them;
- Python-side checks mirror admission for scalars (quantities, decimals, durations, addresses);
- ``template_violations`` finds exactly the template problems the CEL corpus is refused for,
  and nothing in the good examples;
- helpers: ``build_object`` (scope checks, validation), ``LabelSelector.matches``,
  ``set_condition`` (transition time moves only on status change), ``parse_duration``,
  the kind registry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kommons.api import (
    KINDS,
    ComputeLease,
    ComputeLeaseSpec,
    ComputeLeaseStatus,
    Condition,
    LabelSelector,
    Pricing,
    ProviderSpec,
    build_object,
    get_condition,
    kind_info,
    parse_duration,
    ready_summary,
    set_condition,
    template_violations,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
BAD = sorted((ROOT / "tests" / "fixtures" / "bad-manifests").glob("*.yaml"))

LEASE_SPEC: dict[str, Any] = {
    "poolRef": {"name": "default"},
    "resources": {"cpu": "500m", "memory": "256Mi"},
    "maxPricePerHour": "1.00",
    "template": {"spec": {"containers": [{"name": "app", "image": "busybox"}]}},
}


def _kommons_docs() -> list[dict[str, Any]]:
    docs = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("kommons.io/"):
                docs.append(doc)
    return docs


def _subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and _subset(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(_subset, small, big))
    return bool(small == big)


@pytest.mark.parametrize(
    "doc", _kommons_docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_examples_parse_and_round_trip(doc: dict[str, Any]) -> None:
    model = kind_info(doc["kind"]).resource_model.model_validate(doc)
    wire = model.to_api()
    assert wire["kind"] == doc["kind"]
    assert _subset(doc["spec"], wire["spec"]), (doc["spec"], wire["spec"])


def test_wire_names_are_camel_case_including_irregular_ones() -> None:
    pricing = Pricing(cpu_core_hour="0.02", memory_gib_hour="0.003", storage_gib_hour={"fast": "1"})
    assert pricing.to_api() == {
        "cpuCoreHour": "0.02",
        "memoryGiBHour": "0.003",
        "storageGiBHour": {"fast": "1"},
    }
    spec = ComputeLeaseSpec.model_validate(
        {**LEASE_SPEC, "template": {"spec": {"containers": [{}], "hostPID": False}}}
    )
    assert spec.template.spec.host_pid is False
    assert spec.to_api()["template"]["spec"]["hostPID"] is False


def test_spec_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="replica"):
        ComputeLeaseSpec.model_validate({**LEASE_SPEC, "replica": 2})


def test_status_ignores_unknown_fields() -> None:
    status = ComputeLeaseStatus.model_validate({"phase": "Running", "futureField": {"x": 1}})
    assert status.phase == "Running"


def test_pod_template_keeps_every_kubernetes_field() -> None:
    container = {"name": "app", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
    spec = ComputeLeaseSpec.model_validate(
        {**LEASE_SPEC, "template": {"spec": {"containers": [container], "restartPolicy": "Always"}}}
    )
    wire = spec.to_api()["template"]["spec"]
    assert wire["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert wire["restartPolicy"] == "Always"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("resources", "cpu"), "0"),
        (("resources", "cpu"), "lots"),
        (("resources", "memory"), "-1Gi"),
        (("maxPricePerHour",), "0.000"),
        (("maxPricePerHour",), "-1"),
        (("maxPricePerHour",), "1.0000000000000000001"),
        (("duration",), "2 hours"),
        (("replicas",), 1001),
        (("replicas",), -1),
    ],
)
def test_python_side_checks_mirror_admission(path: tuple[str, ...], value: Any) -> None:
    spec: dict[str, Any] = {**LEASE_SPEC, "resources": dict(LEASE_SPEC["resources"])}
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        ComputeLeaseSpec.model_validate(spec)


def test_provider_payout_address_must_be_40_hex() -> None:
    base = {
        "region": "eu-west",
        "payoutAddress": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "pricing": {"cpuCoreHour": "0.02", "memoryGiBHour": "0.003"},
    }
    assert ProviderSpec.model_validate(base).mode == "Pull"
    with pytest.raises(ValidationError, match="payoutAddress"):
        ProviderSpec.model_validate({**base, "payoutAddress": "0x1234"})


def _bad_templates() -> list[tuple[str, dict[str, Any], str]]:
    out = []
    for path in BAD:
        text = path.read_text()
        field = next(
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("# expect-field:")
        )
        doc = yaml.safe_load(text)
        if "job" in doc["spec"]:
            continue  # a rule of Job leases on the whole spec, not a template rule
        if field.startswith("spec.template.spec.") and field != "spec.template.spec.containers":
            out.append((path.stem, doc["spec"]["template"], field))
    return out


@pytest.mark.parametrize(("name", "template", "field"), _bad_templates(), ids=lambda x: str(x)[:40])
def test_template_violations_agree_with_the_cel_corpus(
    name: str, template: dict[str, Any], field: str
) -> None:
    found = template_violations(template, path="spec.template")
    assert any(v.startswith(field) for v in found), (name, found)


def test_template_violations_accept_the_examples() -> None:
    for doc in _kommons_docs():
        if doc["kind"] == "ComputeLease":
            assert template_violations(doc["spec"]["template"]) == []


def test_build_object_validates_and_checks_scope() -> None:
    body = build_object("ComputeLease", name="web", namespace="team-a", spec=LEASE_SPEC)
    assert body["apiVersion"] == "kommons.io/v1alpha1"
    assert body["metadata"] == {"name": "web", "namespace": "team-a"}
    assert body["spec"]["replicas"] == 1
    assert ComputeLease.model_validate(body).spec.pool_ref.name == "default"
    with pytest.raises(ValueError, match="namespaced"):
        build_object(ComputeLease, name="web", spec=LEASE_SPEC)
    with pytest.raises(ValueError, match="cluster-scoped"):
        build_object("ProviderPool", name="p", namespace="x", spec={})
    with pytest.raises(ValidationError):
        build_object("ComputeLease", name="web", namespace="a", spec={**LEASE_SPEC, "x": 1})
    with pytest.raises(KeyError, match="not a Kommons kind"):
        kind_info("Pod")


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        (
            {"matchLabels": {"t": "x"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]},
            {"t": "x"},
            False,
        ),
    ],
)
def test_label_selector_matches(
    selector: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is selected


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=1)
    conds = set_condition(None, type_="Ready", status="False", reason="Pending", now=t0)
    conds = set_condition(conds, type_="Scheduled", status="True", reason="Placed", now=t0)
    conds = set_condition(conds, type_="Ready", status="False", reason="Waiting", now=t1)
    ready = get_condition(conds, "Ready")
    assert ready is not None
    assert ready.reason == "Waiting"
    assert ready.last_transition_time == t0
    conds = set_condition(
        conds, type_="Ready", status="True", reason="Ready", now=t1, observed_generation=3
    )
    ready = get_condition(conds, "Ready")
    assert ready is not None
    assert ready.last_transition_time == t1
    assert ready.observed_generation == 3
    assert [c.type for c in conds] == ["Ready", "Scheduled"]
    assert get_condition(conds, "PaymentOK") is None
    wire = Condition.model_validate(ready.to_api())
    assert wire == ready
    assert ready.to_api()["lastTransitionTime"] == "2026-01-01T00:01:00Z"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30m", 1800), ("2h", 7200), ("1d12h", 129600), ("1h1h", 7200)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2 h", "1.5h", "2w"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_registry_has_the_six_kinds_of_the_design() -> None:
    got = {(k.kind, k.scope, k.short_names) for k in KINDS}
    assert got == {
        ("ComputeLease", "Namespaced", ("cl",)),
        ("Provider", "Cluster", ("prov",)),
        ("ProviderPool", "Cluster", ("pp",)),
        ("BillingAccount", "Cluster", ()),
        ("LeasePlacement", "Namespaced", ()),
        ("SettlementEpoch", "Cluster", ()),
    }
    assert all(k.categories == ("kommons",) for k in KINDS)
    assert kind_info(ComputeLease).crd_name == "computeleases.kommons.io"
    assert ready_summary(1, 2) == "1/2"
