"""Parity of the Python admission check and the agent's sanitiser (no bed).

Behaviour matrix:

- every corpus case (one field each, safe and unsafe values) is accepted by
  ``template_violations`` exactly when the corpus says so;
- a template ``template_violations`` accepts comes through ``sanitised_pod_template``
  unchanged (``changed_by_agent`` is empty: only the documented additions);
- a template it refuses is changed by the sanitiser, and every change lies at a refused field
  (or inside one);
- the same for seeded random combinations and for hypothesis-generated combinations of the
  corpus changes, with and without a GPU model and a sandbox runtime class;
- every rule of ``TEMPLATE_RULES`` is a CEL rule of the committed CRDs;
- ``changed_by_agent`` itself: nulls are ignored, additions outside ``AGENT_ADDITIONS`` are
  changes, only ``ALL`` may be appended to ``capabilities.drop``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.agent.workload import PlacementWork, changed_by_agent, sanitised_pod_template
from kommons.api.template import TEMPLATE_RULES, sanitise_template, template_violations
from tests.template_corpus import CHANGES, Case, base_template, combined_cases, single_cases

CRDS = Path(__file__).resolve().parents[2] / "crds"
SINGLE = single_cases()
COMBINED = combined_cases(150)


def work(template: dict[str, Any], **overrides: Any) -> PlacementWork:
    values: dict[str, Any] = {
        "name": "web-1a2b3c4d",
        "lease_namespace": "team-a",
        "lease_name": "web",
        "lease_uid": "0b6f3c4e-1111-2222-3333-444455556666",
        "replicas": 2,
        "cpu": "500m",
        "memory": "256Mi",
        "gpu_count": 0,
        "gpu_model": None,
        "template": template,
    }
    values.update(overrides)
    return PlacementWork(**values)


def covered(change: str, refused: list[str]) -> bool:
    """Whether a change (``"path: how"``) lies at or inside a refused field path."""
    path = change.split(": ", 1)[0]
    return any(path == f or path.startswith((f + ".", f + "[")) for f in refused)


def check_parity(template: dict[str, Any], **overrides: Any) -> bool:
    """Assert the parity of one template; return whether it is acceptable."""
    violations = template_violations(template, path="")
    refused = [v.split(": ", 1)[0].lstrip(".") for v in violations]
    before = copy.deepcopy(template)
    changes = changed_by_agent(template, sanitised_pod_template(work(template, **overrides)))
    assert template == before, "the sanitiser mutated its input"
    if not violations:
        assert changes == [], changes
    else:
        assert changes, f"refused but the agent would change nothing: {violations}"
        uncovered = [c for c in changes if not covered(c, refused)]
        assert not uncovered, (uncovered, violations)
    return not violations


@pytest.mark.parametrize("case", SINGLE, ids=[c.id for c in SINGLE])
def test_single_field_case(case: Case) -> None:
    assert check_parity(case.template) == case.accepted, template_violations(case.template)


@pytest.mark.parametrize("case", COMBINED, ids=[c.id[:60] for c in COMBINED])
def test_combined_case(case: Case) -> None:
    assert check_parity(case.template) == case.accepted


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(CHANGES), min_size=1, max_size=6),
    st.sampled_from([(0, None), (1, "nvidia-a100")]),
    st.sampled_from([None, "gvisor"]),
)
def test_any_combination_keeps_parity(
    changes: list[Any], gpu: tuple[int, str | None], runtime_class: str | None
) -> None:
    template = base_template()
    for change in changes:
        change.apply(template)
    check_parity(template, gpu_count=gpu[0], gpu_model=gpu[1], runtime_class=runtime_class)


def test_the_corpus_touches_every_rule() -> None:
    touched = {"labels" if c.where == "labels" else c.key for c in CHANGES if not c.accepted}
    missing = {r.field for r in TEMPLATE_RULES} - touched
    assert not missing, f"no refused corpus case for {sorted(missing)}"


def _validations(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _validations(value)
    elif isinstance(node, list):
        for value in node:
            yield from _validations(value)


@pytest.mark.parametrize("kind", ["computeleases", "leaseplacements"])
def test_every_rule_is_a_cel_rule_of_the_crds(kind: str) -> None:
    crd = yaml.safe_load((CRDS / f"kommons.io_{kind}.yaml").read_text())
    found = list(_validations(crd))
    for rule in TEMPLATE_RULES:
        assert rule.cel().render() in found, rule


def test_sanitising_an_accepted_template_is_the_identity() -> None:
    for case in SINGLE:
        if case.accepted:
            assert sanitise_template(case.template) == case.template, case.id


def test_changed_by_agent_ignores_nulls_and_documented_additions() -> None:
    assert changed_by_agent({"spec": {"a": None}}, {"spec": {}}) == []
    assert changed_by_agent({}, {"spec": {"automountServiceAccountToken": False}}) == []
    assert changed_by_agent({}, {"metadata": {"labels": {"kommons.io/x": "y"}}}) == []


def test_changed_by_agent_reports_drops_changes_and_undocumented_additions() -> None:
    assert changed_by_agent({"spec": {"a": 1}}, {"spec": {}}) == ["spec.a: dropped"]
    assert changed_by_agent({"spec": {"a": 1}}, {"spec": {"a": 2}}) == [
        "spec.a: changed from 1 to 2"
    ]
    assert changed_by_agent({"spec": {}}, {"spec": {"hostNetwork": False}}) == [
        "spec.hostNetwork: added"
    ]
    assert changed_by_agent({"spec": {"v": [1, 2]}}, {"spec": {"v": [1]}}) == [
        "spec.v: list changed from [1, 2] to [1]"
    ]


def test_only_all_may_be_appended_to_dropped_capabilities() -> None:
    def tpl(drop: list[str]) -> dict[str, Any]:
        caps = {"capabilities": {"drop": drop}}
        return {"spec": {"containers": [{"securityContext": caps}]}}

    assert changed_by_agent(tpl(["NET_RAW"]), tpl(["NET_RAW", "ALL"])) == []
    assert changed_by_agent(tpl(["NET_RAW"]), tpl(["ALL"])) != []
    assert changed_by_agent(tpl(["NET_RAW"]), tpl(["NET_RAW", "SYS_ADMIN"])) != []
