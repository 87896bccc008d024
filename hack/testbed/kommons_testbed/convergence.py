"""Has the market converged to what the tenants asked? A pure check over listed objects.

:func:`check` compares what each lease's spec asks at the end of a churn
(:class:`~kommons_testbed.chaos.Expected`) with a :class:`Snapshot` of the hub (leases,
placements) and of every provider cluster (Kommons namespaces, Deployments, pods), all scoped to
one tenant namespace, and returns every :class:`Violation`:

=============  ===========================================================================
kind           when
=============  ===========================================================================
lost           a lease the churn created and did not delete is missing on the hub
duplicate      more than one live placement, workload namespace or Deployment for one
               (lease, provider); or more live pods of a lease than its spec's replicas
orphan         a workload namespace on a provider whose placement no longer exists on the
               hub (or whose lease was deleted)
wrong-state    a live lease whose spec differs from the churn's; not suspended: whose placed
               replicas differ from ``spec.replicas`` or that is not ``Running`` with every
               replica ready (lease status and pods); suspended: not ``Suspended`` or with a
               live pod; a deleted lease still on the hub or with placements left
=============  ===========================================================================

:func:`collect` is the I/O half: it lists those objects; :func:`wait_converged` polls both.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kommons.api_names import (
    LABEL_LEASE_NAME,
    LABEL_LEASE_NAMESPACE,
    LABEL_MANAGED_BY,
    LABEL_PLACEMENT,
    MANAGER,
    PROVIDER_NAMESPACE_PREFIX,
)
from kommons.kube import Kube
from kommons.kube import resources as r
from kommons_testbed.chaos import Expected

JSON = dict[str, Any]
ViolationKind = Literal["lost", "duplicate", "orphan", "wrong-state"]
KINDS: tuple[ViolationKind, ...] = ("lost", "duplicate", "orphan", "wrong-state")


@dataclass(frozen=True)
class ProviderObjects:
    """Kommons objects on one provider cluster (of the checked tenant namespace)."""

    namespaces: list[JSON] = field(default_factory=list)
    deployments: list[JSON] = field(default_factory=list)
    pods: list[JSON] = field(default_factory=list)


@dataclass(frozen=True)
class Snapshot:
    """Everything the check reads, listed at (about) one moment."""

    namespace: str
    """The tenant namespace on the hub whose leases are checked."""
    leases: list[JSON]
    placements: list[JSON]
    """Placements of those leases, in every provider namespace of the hub."""
    providers: Mapping[str, ProviderObjects]


@dataclass(frozen=True)
class Violation:
    """One way the market differs from what was asked."""

    kind: ViolationKind
    subject: str
    """``lease c001``, ``prov-a/namespace kommons-x`` ..."""
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """Every violation found."""

    violations: list[Violation]

    def count(self, kind: ViolationKind) -> int:
        """How many violations of one kind."""
        return sum(1 for v in self.violations if v.kind == kind)

    @property
    def counts(self) -> dict[str, int]:
        """Violations by kind (every kind present, 0 when none)."""
        return {kind: self.count(kind) for kind in KINDS}

    @property
    def ok(self) -> bool:
        """No violation at all."""
        return not self.violations

    def describe(self, limit: int = 20) -> str:
        """Counts, then up to ``limit`` violations, one per line."""
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts.items())
        lines = [counts] + [f"  {v}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more")
        return "\n".join(lines)


def _meta(obj: JSON) -> JSON:
    return dict(obj.get("metadata") or {})


def _labels(obj: JSON) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def _lease_of(obj: JSON) -> str:
    return _labels(obj).get(LABEL_LEASE_NAME, "")


def _deleting(obj: JSON) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _live_pod(pod: JSON) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return not _deleting(pod) and phase not in ("Succeeded", "Failed")


def check(expected: Mapping[str, Expected], snap: Snapshot) -> Report:
    """Every violation of the end state ``expected`` in ``snap`` (see the module table)."""
    out: list[Violation] = []
    leases = {str(_meta(lease).get("name")): lease for lease in snap.leases}
    placement_keys: set[tuple[str, str]] = set()  # (provider, placement name), any state
    any_placements: Counter[str] = Counter()
    live_placements: dict[str, list[JSON]] = {}
    for placement in snap.placements:
        provider = str((placement.get("spec") or {}).get("provider"))
        placement_keys.add((provider, str(_meta(placement).get("name"))))
        any_placements[_lease_of(placement)] += 1
        if not _deleting(placement):
            live_placements.setdefault(_lease_of(placement), []).append(placement)

    # duplicates: per (lease, provider) on the hub and on each provider
    for lease, placements in sorted(live_placements.items()):
        for provider, n in sorted(Counter(p["spec"]["provider"] for p in placements).items()):
            if n > 1:
                out.append(
                    Violation("duplicate", f"lease {lease}", f"{n} placements on {provider}")
                )
    pods_per_lease: Counter[str] = Counter()
    ready_per_lease: Counter[str] = Counter()
    for provider, objs in sorted(snap.providers.items()):
        for what, items in (("namespaces", objs.namespaces), ("Deployments", objs.deployments)):
            live = Counter(_lease_of(o) for o in items if not _deleting(o))
            for lease, n in sorted(live.items()):
                if n > 1:
                    out.append(
                        Violation("duplicate", f"lease {lease}", f"{n} {what} on {provider}")
                    )
        for pod in objs.pods:
            if _live_pod(pod):
                pods_per_lease[_lease_of(pod)] += 1
                conditions = (pod.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                    ready_per_lease[_lease_of(pod)] += 1
        # orphans: workload namespaces whose placement is gone from the hub
        for ns in objs.namespaces:
            owner = _labels(ns).get(LABEL_PLACEMENT, "")
            if (provider, owner) not in placement_keys:
                state = " (terminating)" if _deleting(ns) else ""
                out.append(
                    Violation(
                        "orphan",
                        f"{provider}/namespace {_meta(ns).get('name')}{state}",
                        f"lease {_lease_of(ns)}: placement {owner} is not on the hub",
                    )
                )

    for name, want in sorted(expected.items()):
        found = leases.get(name)
        subject = f"lease {name}"
        if want.deleted:
            if found is not None:
                out.append(Violation("wrong-state", subject, "deleted, still on the hub"))
            elif any_placements[name]:
                out.append(
                    Violation(
                        "wrong-state", subject, f"deleted, {any_placements[name]} placement(s) left"
                    )
                )
            continue
        if found is None:
            out.append(Violation("lost", subject, "created and never deleted, missing on hub"))
            continue
        out.extend(_lease_state(name, want, found, live_placements.get(name, []), pods_per_lease))
        pods = pods_per_lease[name]
        if pods > want.replicas:
            out.append(
                Violation("duplicate", subject, f"{pods} live pods for {want.replicas} replicas")
            )
        elif not want.suspended and ready_per_lease[name] < want.replicas:
            out.append(
                Violation(
                    "wrong-state",
                    subject,
                    f"{ready_per_lease[name]}/{want.replicas} pods ready on providers",
                )
            )
    return Report(out)


def _lease_state(
    name: str, want: Expected, lease: JSON, placements: list[JSON], pods: Counter[str]
) -> list[Violation]:
    subject = f"lease {name}"
    spec = lease.get("spec") or {}
    status = lease.get("status") or {}
    out: list[Violation] = []
    asked = (spec.get("replicas"), bool(spec.get("suspend")))
    if asked != (want.replicas, want.suspended):
        out.append(
            Violation(
                "wrong-state",
                subject,
                f"spec asks replicas={asked[0]} suspend={asked[1]}, the churn wrote"
                f" replicas={want.replicas} suspend={want.suspended}",
            )
        )
    if _deleting(lease):
        out.append(Violation("wrong-state", subject, "Terminating though never deleted"))
    placed = sum(int((p.get("spec") or {}).get("replicas") or 0) for p in placements)
    if placed != want.replicas and not want.suspended:
        out.append(
            Violation(
                "wrong-state", subject, f"{placed} replicas placed, spec asks {want.replicas}"
            )
        )
    phase = status.get("phase")
    if want.suspended:
        if phase != "Suspended":
            out.append(Violation("wrong-state", subject, f"phase {phase}, want Suspended"))
        if pods[name]:
            out.append(Violation("wrong-state", subject, f"suspended with {pods[name]} pods"))
    else:
        ready = status.get("readyReplicas") or 0
        if phase != "Running" or ready != want.replicas:
            out.append(
                Violation(
                    "wrong-state",
                    subject,
                    f"phase {phase} with {ready}/{want.replicas} ready, want Running",
                )
            )
    return out


def collect(hub: Kube, providers: Mapping[str, Kube], namespace: str) -> Snapshot:
    """List what :func:`check` reads: the tenant's leases and placements, providers' objects.

    Providers first: a workload namespace is made after its placement, so a placement created
    between the two listings is never mistaken for an orphan's missing owner.
    """
    selector = f"{LABEL_LEASE_NAMESPACE}={namespace}"
    objs: dict[str, ProviderObjects] = {}
    kommons = f"{LABEL_MANAGED_BY}={MANAGER},{selector}"
    for name, kube in sorted(providers.items()):
        objs[name] = ProviderObjects(
            namespaces=kube.list(r.NAMESPACES, label_selector=kommons),
            deployments=kube.list(r.DEPLOYMENTS, label_selector=kommons),
            pods=kube.list(r.PODS, label_selector=kommons),
        )
    placements = [
        p
        for p in hub.list(r.LEASE_PLACEMENTS, label_selector=selector)
        if str(_meta(p).get("namespace", "")).startswith(PROVIDER_NAMESPACE_PREFIX)
    ]
    return Snapshot(
        namespace=namespace,
        leases=hub.list(r.COMPUTE_LEASES, namespace),
        placements=placements,
        providers=objs,
    )


def wait_converged(
    expected: Mapping[str, Expected],
    hub: Kube,
    providers: Mapping[str, Kube],
    namespace: str,
    *,
    deadline: float,
    progress: Callable[[str], None],
    every: float = 15.0,
    between: Callable[[], object] = lambda: None,
) -> tuple[Report, float]:
    """Check until no violation is left or ``deadline`` seconds passed.

    ``between`` runs after each check that found violations (e.g. restart hub replicas that
    exited on losing the Lease, as their Deployment would).

    Returns:
        The last report and the seconds waited. Progress is reported every 30 s.
    """
    started = time.monotonic()
    said = 0.0
    report = Report([Violation("wrong-state", "market", "not checked yet")])
    while True:
        try:
            report = check(expected, collect(hub, providers, namespace))
        except Exception as exc:  # an overloaded API server times out: look again later
            progress(f"listing failed, trying again: {exc}")
        waited = time.monotonic() - started
        if report.ok or waited > deadline:
            return report, waited
        if waited - said >= 30:
            progress(f"[{waited:5.0f}s] not converged yet: {report.describe(limit=5)}")
            said = waited
        between()
        time.sleep(every)
