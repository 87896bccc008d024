"""Whatever the agent's sanitiser would change is refused first, by the real hub API server.

Behaviour matrix (every case is a ComputeLease created with server-side dry-run,
``fieldValidation=Strict`` as kubectl sends it):

- corpus: one case per pod-template field a tenant might write (safe and unsafe values,
  ``tests/template_corpus.py``), plus 150 seeded random combinations of 2 to 5 of them;
- the API server's verdict is the corpus's expectation, and the same as
  ``template_violations`` (the hub's Python check);
- refused: ``changed_by_agent(template, sanitised_pod_template(...))`` is not empty, and every
  field the sanitiser would drop or change is named in the refusal (the field itself or the
  object holding it); a strict-decoding refusal (unknown field of a closed object) names the
  unknown fields, and the template sent again with ``fieldValidation=Warn`` names the rest;
- accepted: the API server stores the template exactly as written, and the sanitiser changes
  nothing of it (only the documented agent additions).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kommons.agent.workload import PlacementWork, changed_by_agent, sanitised_pod_template
from kommons.api.template import template_violations
from kommons.kube import Kube, KubeError
from kommons.kube import resources as r
from tests.integration.conftest import lease_body, make_namespace
from tests.template_corpus import Case, combined_cases, single_cases

pytestmark = [pytest.mark.bed]

CASES = single_cases() + combined_cases(150)


@pytest.fixture(scope="module")
def namespace(hub: Kube) -> Iterator[str]:
    """One tenant namespace for every dry-run of this module."""
    name = make_namespace(hub)
    yield name
    hub.delete(r.NAMESPACES, name)


def _submit(hub: Kube, namespace: str, template: dict[str, Any], validation: str) -> Any:
    """Dry-run create a lease with ``template``; the stored object, or the KubeError."""
    body = lease_body(f"parity-{uuid.uuid4().hex[:8]}", namespace)
    body["spec"]["template"] = template
    try:
        return hub.request(
            "POST",
            r.COMPUTE_LEASES.path(namespace),
            body=body,
            query={"dryRun": "All", "fieldValidation": validation},
        )
    except KubeError as exc:
        if exc.status not in (400, 422):
            raise
        return exc


def _named(change: str, message: str) -> bool:
    """Whether the refusal names the changed field or an object holding it."""
    path = "spec.template." + change.split(": ", 1)[0]
    prefixes = [path]
    for i, ch in enumerate(path):
        if ch in ".[" and i > len("spec.template"):
            prefixes.append(path[:i])
    return any(f"{p}:" in message or f'"{p}"' in message for p in prefixes)


@pytest.mark.parametrize("case", CASES, ids=[c.id[:80] for c in CASES])
def test_admission_refuses_whatever_the_agent_would_change(
    hub: Kube, namespace: str, case: Case
) -> None:
    work = PlacementWork(
        name="parity-0",
        lease_namespace=namespace,
        lease_name="parity",
        lease_uid=str(uuid.uuid4()),
        replicas=2,
        cpu="500m",
        memory="256Mi",
        gpu_count=0,
        gpu_model=None,
        template=case.template,
    )
    changes = changed_by_agent(case.template, sanitised_pod_template(work))
    violations = template_violations(case.template, path="spec.template")
    result = _submit(hub, namespace, case.template, "Strict")

    if not isinstance(result, KubeError):
        assert case.accepted, f"accepted by the API server: {case.id}"
        assert violations == [], violations
        assert result["spec"]["template"] == case.template, "the API server changed the template"
        assert changes == [], f"accepted, then changed by the agent: {changes}"
        return

    assert not case.accepted, f"refused: {result.message}"
    assert violations, f"the API server refused, template_violations did not: {result.message}"
    assert changes, f"refused, yet the agent would change nothing: {result.message}"
    messages = [result.message]
    if result.status == 400:  # strict decoding: unknown fields only; the rest comes after
        assert "unknown field" in result.message, result.message
        again = _submit(hub, namespace, case.template, "Warn")
        if isinstance(again, KubeError):
            messages.append(again.message)
    unnamed = [c for c in changes if not any(_named(c, m) for m in messages)]
    assert not unnamed, f"changed by the agent but not named: {unnamed}\n{messages}"


def test_the_corpus_is_big_enough() -> None:
    refused = sum(not c.accepted for c in CASES)
    assert len(CASES) >= 250
    assert 100 <= refused < len(CASES) - 50
