"""The chaos churn's plan and its convergence check (pure; no bed).

Behaviour matrix (case -> expected):

- same seed -> the same plan; another seed -> another plan.
- every lease created exactly once, in order; no lease gets two ops in a round; nothing touched
  before its creation round or after its deletion.
- every round kills at least one agent; kills fall inside the round; restarts are short.
- ``expected_state`` folds create/scale/suspend/resume/delete in order.
- ``kommons-testbed chaos --plan-only`` prints the same plan, without a bed.
- a converged snapshot -> no violation.
- each violation kind is detected: a lost lease; two Deployments / two placements / too many
  pods for one lease (duplicate); a workload namespace whose placement is gone (orphan);
  wrong replicas placed, not Running, suspended with pods, a spec the churn did not write,
  a deleted lease still on the hub or with placements left (wrong-state).
"""

from __future__ import annotations

from typing import Any

from kommons.api_names import LABEL_LEASE_NAME, LABEL_LEASE_NAMESPACE, LABEL_PLACEMENT
from kommons_testbed.chaos import Expected, expected_state, format_plan, lease_name, make_plan
from kommons_testbed.convergence import ProviderObjects, Snapshot, check

PROVIDERS = ("prov-a", "prov-b", "prov-c")
NS = "chaos-t"


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    a = make_plan(seed=7, rounds=20, leases=500, providers=PROVIDERS)
    b = make_plan(seed=7, rounds=20, leases=500, providers=PROVIDERS)
    c = make_plan(seed=8, rounds=20, leases=500, providers=PROVIDERS)
    assert a == b
    assert format_plan(a) == format_plan(b)
    assert a.rounds != c.rounds


def test_plan_creates_each_lease_once_and_touches_only_live_ones() -> None:
    plan = make_plan(seed=3, rounds=20, leases=500, providers=PROVIDERS)
    created: list[str] = []
    live: dict[str, bool] = {}
    kinds: set[str] = set()
    for rnd in plan.rounds:
        names = [op.lease for op in rnd.ops]
        assert len(names) == len(set(names)), f"round {rnd.index}: a lease got two ops"
        for op in rnd.ops:
            kinds.add(op.kind)
            assert 0 <= op.at <= plan.round_seconds
            if op.kind == "create":
                assert op.lease not in live
                created.append(op.lease)
                continue
            assert op.lease in live, f"{op.describe()} before create or after delete"
        for op in rnd.ops:
            if op.kind == "create":
                live[op.lease] = False
            elif op.kind == "suspend":
                assert not live[op.lease]
                live[op.lease] = True
            elif op.kind == "resume":
                assert live[op.lease]
                live[op.lease] = False
            elif op.kind == "delete":
                del live[op.lease]
        assert rnd.kills, "every round kills something"
        assert any(k.target.startswith("agent-") for k in rnd.kills)
        for kill in rnd.kills:
            assert 0 <= kill.at <= plan.round_seconds
            assert 0.5 <= kill.down_for <= 5
    assert sorted(created) == [lease_name(i) for i in range(500)]
    assert kinds == {"create", "scale", "suspend", "resume", "delete"}
    assert any(k.target == "hub" for rnd in plan.rounds for k in rnd.kills)
    end = expected_state(plan)
    assert {n for n, e in end.items() if not e.deleted} == set(live)
    assert {n for n, e in end.items() if e.suspended and not e.deleted} == {
        n for n, s in live.items() if s
    }


def test_expected_state_folds_ops_in_order() -> None:
    plan = make_plan(seed=11, rounds=6, leases=40, providers=PROVIDERS)
    end = expected_state(plan)
    for rnd in plan.rounds:  # the last op on each lease decides
        for op in rnd.ops:
            if op.kind == "scale":
                last_scale = op
    assert len(end) == 40
    assert last_scale.replicas in (1, 2, 3)


# --- the checker --------------------------------------------------------------------------


def _labels(lease: str, placement: str = "") -> dict[str, str]:
    labels = {LABEL_LEASE_NAME: lease, LABEL_LEASE_NAMESPACE: NS}
    if placement:
        labels[LABEL_PLACEMENT] = placement
    return labels


def _lease(name: str, replicas: int, *, suspend: bool = False, phase: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "suspend": suspend},
        "status": {
            "phase": phase or ("Suspended" if suspend else "Running"),
            "readyReplicas": 0 if suspend else replicas,
        },
    }


def _placement(lease: str, provider: str, replicas: int, *, deleting: bool = False) -> Any:
    meta: dict[str, Any] = {
        "name": f"{lease}-p",
        "namespace": f"kommons-provider-{provider}",
        "labels": _labels(lease),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    return {"metadata": meta, "spec": {"provider": provider, "replicas": replicas}}


def _objects(lease: str, pods: int, *, placement: str = "") -> ProviderObjects:
    placement = placement or f"{lease}-p"
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return ProviderObjects(
        namespaces=[{"metadata": {"name": f"k-{placement}", "labels": _labels(lease, placement)}}],
        deployments=[{"metadata": {"name": "workload", "labels": _labels(lease, placement)}}],
        pods=[
            {"metadata": {"name": f"{lease}-{i}", "labels": _labels(lease)}, "status": ready}
            for i in range(pods)
        ],
    )


def _merge(*parts: ProviderObjects) -> ProviderObjects:
    return ProviderObjects(
        namespaces=[o for p in parts for o in p.namespaces],
        deployments=[o for p in parts for o in p.deployments],
        pods=[o for p in parts for o in p.pods],
    )


EXPECTED = {
    "c000": Expected(2),
    "c001": Expected(1, suspended=True),
    "c002": Expected(3, deleted=True),
}


def _converged(**changes: Any) -> Snapshot:
    parts: dict[str, Any] = {
        "namespace": NS,
        "leases": [_lease("c000", 2), _lease("c001", 1, suspend=True)],
        "placements": [_placement("c000", "prov-a", 2), _placement("c001", "prov-b", 1)],
        "providers": {
            "prov-a": _objects("c000", 2),
            "prov-b": ProviderObjects(
                namespaces=_objects("c001", 0).namespaces,
                deployments=_objects("c001", 0).deployments,
            ),
        },
    }
    parts.update(changes)
    return Snapshot(**parts)


def test_converged_snapshot_has_no_violation() -> None:
    report = check(EXPECTED, _converged())
    assert report.ok, report.describe()
    assert report.counts == {"lost": 0, "duplicate": 0, "orphan": 0, "wrong-state": 0}


def test_lost_lease() -> None:
    snap = _converged(leases=[_lease("c001", 1, suspend=True)])
    report = check(EXPECTED, snap)
    assert report.count("lost") == 1
    assert "c000" in str(report.violations[0]) or any(
        v.kind == "lost" and "c000" in v.subject for v in report.violations
    )


def test_duplicate_deployment_on_one_provider() -> None:
    second = _objects("c000", 0, placement="c000-other")
    snap = _converged(
        providers={"prov-a": _merge(_objects("c000", 2), second), "prov-b": _objects("c001", 0)}
    )
    report = check(EXPECTED, snap)
    assert any("2 Deployments on prov-a" in v.detail for v in report.violations)
    assert report.count("duplicate") >= 1


def test_duplicate_placements_and_too_many_pods() -> None:
    snap = _converged(
        placements=[
            _placement("c000", "prov-a", 2),
            _placement("c000", "prov-a", 2),
            _placement("c001", "prov-b", 1),
        ],
        providers={"prov-a": _objects("c000", 3), "prov-b": _objects("c001", 0)},
    )
    report = check(EXPECTED, snap)
    details = [v.detail for v in report.violations if v.kind == "duplicate"]
    assert "2 placements on prov-a" in details
    assert "3 live pods for 2 replicas" in details


def test_orphan_namespace_whose_placement_is_gone() -> None:
    gone = _objects("c002", 0)
    snap = _converged(
        providers={"prov-a": _merge(_objects("c000", 2), gone), "prov-b": _objects("c001", 0)}
    )
    report = check(EXPECTED, snap)
    assert report.count("orphan") == 1
    orphan = next(v for v in report.violations if v.kind == "orphan")
    assert orphan.subject == "prov-a/namespace k-c002-p"
    assert "c002" in orphan.detail


def test_wrong_states() -> None:
    snap = _converged(
        leases=[
            _lease("c000", 2, phase="Degraded"),
            {**_lease("c001", 1, suspend=True)},
            _lease("c002", 3),
        ],
        placements=[
            _placement("c000", "prov-a", 1),
            _placement("c001", "prov-b", 1),
            _placement("c002", "prov-c", 3, deleting=True),
        ],
        providers={
            "prov-a": _objects("c000", 1),
            "prov-b": _objects("c001", 1),
            "prov-c": ProviderObjects(),
        },
    )
    details = {v.detail for v in check(EXPECTED, snap).violations if v.kind == "wrong-state"}
    assert "1 replicas placed, spec asks 2" in details
    assert "phase Degraded with 2/2 ready, want Running" in details
    assert "1/2 pods ready on providers" in details
    assert "suspended with 1 pods" in details
    assert "deleted, still on the hub" in details


def test_deleted_lease_with_placement_left_and_spec_drift() -> None:
    snap = _converged(
        leases=[_lease("c000", 3), _lease("c001", 1, suspend=True)],
        placements=[
            _placement("c000", "prov-a", 2),
            _placement("c001", "prov-b", 1),
            _placement("c002", "prov-c", 3, deleting=True),
        ],
    )
    details = {v.detail for v in check(EXPECTED, snap).violations if v.kind == "wrong-state"}
    assert "deleted, 1 placement(s) left" in details
    assert any("spec asks replicas=3 suspend=False" in d for d in details)


def test_cli_prints_the_plan_without_a_bed(tmp_path: Any, capsys: Any) -> None:
    from kommons_testbed.cli import main

    code = main(
        [
            "--dir",
            str(tmp_path),
            "chaos",
            "--seed",
            "5",
            "--rounds",
            "2",
            "--leases",
            "4",
            "--plan-only",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("chaos plan: seed 5, 2 rounds of 12s, 4 leases")
    assert "round  2:" in out
    plan = make_plan(seed=5, rounds=2, leases=4, providers=("prov-a", "prov-b", "prov-c"))
    assert format_plan(plan) in out
