"""A seeded churn of leases while the hub and agents are SIGKILLed: plan (pure) and executor.

:func:`make_plan` turns ``(seed, rounds, leases, providers)`` into a :class:`ChaosPlan`: the
same arguments always give the same plan. Each :class:`Round` lasts ``round_seconds`` and holds
tenant operations (create, scale, suspend, resume, delete — never two on one lease in a round)
and kills (SIGKILL of the hub or an agent at a moment of the round, restarted a short delay
later), each at an offset in seconds from the round's start.

:func:`expected_state` folds a plan into what every lease's spec asks at the end;
:mod:`kommons_testbed.convergence` compares that with what the clusters show.

:class:`ChaosRunner` applies a plan to a running :class:`~kommons_testbed.stack.Stack`: tenant
writes go to the hub's API server from a thread pool (so a slow write never delays a kill), kills
through ``Stack.kill`` and restarts through ``Stack.start_hub``/``Stack.start_agent``.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kommons.kube import Conflict, Kube, NotFound
from kommons.kube import resources as r
from kommons_testbed.manifests import apply_market, apply_namespace, exists, lease_manifest

OpKind = Literal["create", "scale", "suspend", "resume", "delete"]
Progress = Callable[[str], None]

CHAOS_LABEL = "kommons.io/chaos"
"""Label of the chaos tenant namespace; the chaos pool and billing account select it."""
POOL = "chaos"
ACCOUNT = "chaos"
MAX_REPLICAS = 3
"""Replicas of one lease are drawn in 1..MAX_REPLICAS."""


@dataclass(frozen=True)
class Op:
    """One tenant write on one lease at ``at`` seconds into the round."""

    at: float
    kind: OpKind
    lease: str
    replicas: int | None = None
    """For ``create`` and ``scale``: the replicas the spec asks for."""

    def describe(self) -> str:
        """``create c001 x2`` and the like."""
        suffix = f" x{self.replicas}" if self.replicas is not None else ""
        return f"{self.kind} {self.lease}{suffix}"


@dataclass(frozen=True)
class Kill:
    """SIGKILL ``target`` (``hub`` or ``agent-<p>``) at ``at`` s; restart it ``down_for`` later."""

    at: float
    target: str
    down_for: float


@dataclass(frozen=True)
class Round:
    """One round of churn."""

    index: int
    ops: tuple[Op, ...]
    kills: tuple[Kill, ...]

    def summary(self) -> str:
        """Counts of operations by kind and the kills, on one line."""
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        ops = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no ops"
        kills = ", ".join(
            f"kill {k.target} at {k.at:.1f}s (down {k.down_for:.1f}s)" for k in self.kills
        )
        return f"round {self.index + 1:2d}: {ops}; {kills or 'no kills'}"


@dataclass(frozen=True)
class ChaosPlan:
    """A whole churn: every round, from one seed."""

    seed: int
    leases: int
    providers: tuple[str, ...]
    round_seconds: float
    rounds: tuple[Round, ...]

    @property
    def kills(self) -> int:
        """How many SIGKILLs the plan does."""
        return sum(len(r.kills) for r in self.rounds)


@dataclass(frozen=True)
class Expected:
    """What one lease's spec asks for at the end of the churn."""

    replicas: int
    suspended: bool = False
    deleted: bool = False


def lease_name(index: int) -> str:
    """Name of the ``index``-th lease of a churn (``c000`` ...)."""
    return f"c{index:03d}"


def make_plan(
    *,
    seed: int,
    rounds: int,
    leases: int,
    providers: Sequence[str],
    round_seconds: float = 12.0,
    scale_share: float = 0.08,
    suspend_share: float = 0.05,
    resume_share: float = 0.5,
    delete_share: float = 0.06,
) -> ChaosPlan:
    """The churn for ``seed``: pure, the same arguments give the same plan.

    Every round creates its share of the ``leases`` (spread evenly), then touches leases
    created in earlier rounds: ``scale_share`` of the live ones get new replicas,
    ``suspend_share`` are suspended, ``resume_share`` of the suspended ones resume,
    ``delete_share`` are deleted. A lease gets at most one operation per round. Kills: the hub
    with probability 1/2, and one or two agents, each at a random moment of the round's first
    two thirds, down for 0.5-5 s.
    """
    if rounds < 1 or leases < 0:
        raise ValueError(f"rounds must be >= 1 and leases >= 0 (got {rounds}, {leases})")
    rng = random.Random(seed)
    live: dict[str, bool] = {}  # lease -> suspended
    made = 0
    out: list[Round] = []
    for index in range(rounds):
        ops: list[Op] = []
        window = round_seconds * 2 / 3

        def at(window: float = window) -> float:
            return round(rng.uniform(0, window), 2)

        touchable = sorted(live)
        rng.shuffle(touchable)
        chosen = iter(touchable)
        for _ in range(round(len(live) * delete_share)):
            name = next(chosen)
            ops.append(Op(at(), "delete", name))
            del live[name]
        suspended = [n for n in touchable if live.get(n)]
        for name in suspended[: round(len(suspended) * resume_share)]:
            ops.append(Op(at(), "resume", name))
            live[name] = False
        touched = {op.lease for op in ops}
        rest = [n for n in chosen if n not in touched]
        n_suspend = round(len(live) * suspend_share)
        for name in [n for n in rest if not live[n]][:n_suspend]:
            ops.append(Op(at(), "suspend", name))
            live[name] = True
            touched.add(name)
        rest = [n for n in rest if n not in touched]
        for name in rest[: round(len(live) * scale_share)]:
            ops.append(Op(at(), "scale", name, rng.randint(1, MAX_REPLICAS)))
        target = leases * (index + 1) // rounds
        while made < target:
            name = lease_name(made)
            ops.append(Op(at(), "create", name, rng.randint(1, MAX_REPLICAS)))
            live[name] = False
            made += 1
        kills: list[Kill] = []
        if rng.random() < 0.5:
            kills.append(Kill(at(), "hub", round(rng.uniform(0.5, 5.0), 2)))
        if providers:
            for provider in rng.sample(sorted(providers), k=min(len(providers), rng.randint(1, 2))):
                kills.append(Kill(at(), f"agent-{provider}", round(rng.uniform(0.5, 5.0), 2)))
        out.append(
            Round(
                index,
                tuple(sorted(ops, key=lambda o: (o.at, o.lease))),
                tuple(sorted(kills, key=lambda k: (k.at, k.target))),
            )
        )
    return ChaosPlan(seed, leases, tuple(providers), round_seconds, tuple(out))


def expected_state(plan: ChaosPlan) -> dict[str, Expected]:
    """What each lease's spec asks for once every round was applied."""
    state: dict[str, Expected] = {}
    for rnd in plan.rounds:
        for op in rnd.ops:
            old = state.get(op.lease, Expected(0))
            if op.kind == "create":
                state[op.lease] = Expected(op.replicas or 1)
            elif op.kind == "scale":
                state[op.lease] = Expected(op.replicas or 1, old.suspended)
            elif op.kind in ("suspend", "resume"):
                state[op.lease] = Expected(old.replicas, op.kind == "suspend")
            else:
                state[op.lease] = Expected(old.replicas, old.suspended, deleted=True)
    return state


def format_plan(plan: ChaosPlan) -> str:
    """The plan as text: one line per round, then the expected end state in figures."""
    lines = [
        f"chaos plan: seed {plan.seed}, {len(plan.rounds)} rounds of {plan.round_seconds:.0f}s,"
        f" {plan.leases} leases, providers {', '.join(plan.providers)}, {plan.kills} kills"
    ]
    lines += [rnd.summary() for rnd in plan.rounds]
    end = expected_state(plan)
    live = [e for e in end.values() if not e.deleted]
    lines.append(
        f"expected at the end: {len(live)} leases live ({sum(e.suspended for e in live)}"
        f" suspended), {len(end) - len(live)} deleted, "
        f"{sum(e.replicas for e in live if not e.suspended)} replicas running"
    )
    return "\n".join(lines)


# --- on the bed -----------------------------------------------------------------------------


def lease_body(name: str, namespace: str, *, replicas: int) -> dict[str, Any]:
    """A tiny restricted-compliant lease of the chaos pool (10m cpu, 16Mi per replica)."""
    return lease_manifest(name, namespace, pool=POOL, replicas=replicas, cpu="10m", memory="16Mi")


def prepare(hub: Kube, namespace: str) -> None:
    """The chaos pool (strategy Spread), billing account and tenant namespace (idempotent)."""
    selector = exists(CHAOS_LABEL)
    apply_market(
        hub, pool=POOL, strategy="Spread", tenants=selector, account=ACCOUNT, billed=selector
    )
    apply_namespace(hub, namespace, {CHAOS_LABEL: "yes"})


class StackControl(Protocol):
    """What the runner needs of a stack (:class:`kommons_testbed.stack.Stack` has it)."""

    def kill(self, name: str) -> None:
        """SIGKILL a process (``hub`` or ``agent-<provider>``)."""

    def start_hub(self, *extra: str) -> object:
        """Start the hub with extra options."""

    def start_agent(self, provider: str) -> object:
        """Start one provider's agent."""

    def restart_lost_hubs(self) -> list[str]:
        """Restart hub replicas that exited on losing the Lease (what a Deployment does)."""


@dataclass
class RunFigures:
    """What a run did."""

    ops: int = 0
    failed_ops: list[str] = field(default_factory=list)
    """Tenant writes the API server refused (``op: error``); each is retried once."""
    kills: int = 0
    hub_restarts: list[str] = field(default_factory=list)
    """Hub replicas that exited on losing the Lease and were restarted, as a pod would be."""
    seconds: float = 0.0


class ChaosRunner:
    """Apply a :class:`ChaosPlan` to a running stack."""

    def __init__(
        self,
        plan: ChaosPlan,
        *,
        hub: Kube,
        stack: StackControl,
        namespace: str,
        hub_args: Sequence[str] = (),
        progress: Progress = print,
        threads: int = 8,
    ) -> None:
        self.plan = plan
        self.hub = hub
        self.stack = stack
        self.namespace = namespace
        self.hub_args = tuple(hub_args)
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chaos")
        self.figures = RunFigures()

    def _write(self, op: Op) -> None:
        name, ns = op.lease, self.namespace
        if op.kind == "create":
            body = lease_body(name, ns, replicas=op.replicas or 1)
            self.hub.create(r.COMPUTE_LEASES, body, ns)
        elif op.kind == "scale":
            self.hub.patch(r.COMPUTE_LEASES, name, {"spec": {"replicas": op.replicas}}, ns)
        elif op.kind in ("suspend", "resume"):
            patch = {"spec": {"suspend": op.kind == "suspend"}}
            self.hub.patch(r.COMPUTE_LEASES, name, patch, ns)
        else:
            with contextlib.suppress(NotFound):
                self.hub.delete(r.COMPUTE_LEASES, name, ns)

    def _apply(self, op: Op) -> None:
        error = ""
        for _ in range(3):
            try:
                self._write(op)
                return
            except Conflict as exc:
                if op.kind == "create":
                    return  # an earlier attempt went through after all (names are unique)
                error = str(exc)
            except Exception as exc:  # a refused write is retried, then recorded
                error = str(exc)
            time.sleep(0.5)
        self.figures.failed_ops.append(f"{op.describe()}: {error}")

    def _restart(self, target: str) -> None:
        if target == "hub":
            self.stack.start_hub(*self.hub_args)
        else:
            self.stack.start_agent(target.removeprefix("agent-"))

    def run_round(self, rnd: Round) -> None:
        """Apply one round: ops in threads at their moments, kills and restarts on time."""
        timeline: list[tuple[float, int, Any]] = [(op.at, 1, op) for op in rnd.ops]
        for kill in rnd.kills:
            timeline.append((kill.at, 0, ("kill", kill.target)))
            timeline.append((kill.at + kill.down_for, 0, ("start", kill.target)))
        timeline.sort(key=lambda item: (item[0], item[1]))
        start = time.monotonic()
        futures: list[Future[None]] = []
        down: set[str] = set()
        for offset, _, item in timeline:
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if isinstance(item, Op):
                futures.append(self.pool.submit(self._apply, item))
                self.figures.ops += 1
            elif item[0] == "kill":
                self.stack.kill(item[1])
                down.add(item[1])
                self.figures.kills += 1
            elif item[1] in down:
                self._restart(item[1])
                down.discard(item[1])
        for future in futures:
            future.result()
        for target in sorted(down):  # pragma: no cover - every kill has its restart above
            self._restart(target)
        for name in self.stack.restart_lost_hubs():
            self.progress(f"{name} had exited on losing the Lease: restarted (as a pod would be)")
            self.figures.hub_restarts.append(name)
        rest = start + self.plan.round_seconds - time.monotonic()
        if rest > 0:
            time.sleep(rest)

    def run(self) -> RunFigures:
        """Apply every round; print one line per round."""
        started = time.monotonic()
        try:
            for rnd in self.plan.rounds:
                t0 = time.monotonic()
                self.run_round(rnd)
                self.progress(
                    f"[{time.monotonic() - started:6.1f}s] {rnd.summary()}"
                    f" — done in {time.monotonic() - t0:.1f}s"
                )
        finally:
            self.pool.shutdown(wait=True)
        self.figures.seconds = time.monotonic() - started
        return self.figures


def lease_states(expected: Mapping[str, Expected]) -> dict[str, int]:
    """Counts of the expected end states (``running``, ``suspended``, ``deleted``)."""
    counts = {"running": 0, "suspended": 0, "deleted": 0}
    for e in expected.values():
        counts["deleted" if e.deleted else "suspended" if e.suspended else "running"] += 1
    return counts
