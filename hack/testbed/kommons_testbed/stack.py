"""The Kommons stack on a running bed: CRDs, onboarded providers, the hub and one agent each.

Used by ``make run`` (``kommons-testbed run``) and by the integration tests' ``stack``
fixture. Processes are started with :func:`processes.spawn` and recorded in
``<bed>/stack.json`` so ``make stop`` stops exactly them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kommons.agent.config import load_config
from kommons.agent.hub_link import HubLink
from kommons.api.common import SecretKeyRef
from kommons.hub.onboarding import Onboarding, install_policies, onboard
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import (
    BedError,
    ProcessRecord,
    free_port,
    is_alive,
    kill,
    spawn,
    stop,
    wait_for,
)
from kommons_testbed.settlement_bed import SettlementDeployment, ensure_settlement_bed

REPO = Path(__file__).resolve().parents[3]
BED_METERING_REPORT_SECONDS = 3
"""The bed's agents write their metering checkpoint at least every 3 s (default 30 s)."""
BED_EPOCH_ARGS = ("--epoch-seconds", "20", "--seal-delay-seconds", "8")
"""Settlement epochs on the bed: 20 s, sealed 8 s after their end (the product's defaults are
1 h and 5 min). The seal delay must exceed the agents' report interval, or the ready time of an
epoch's last seconds arrives after it is sealed and is not billed (docs/metering.md). A deleted
lease waits until its epochs are settled, so this bounds that wait in tests (and in
``make run``) to about half a minute."""
CRD_DIR = REPO / "crds"
EXAMPLE_PROVIDERS = REPO / "examples" / "providers"
STATE_FILE = "stack.json"
HUB_NAMESPACE = "kommons-system"
HUB_LEASE = "kommons-hub"
"""The hub replicas' election Lease (``kommons hub`` defaults)."""
HUB_RUN_MARK = "campaigns for Lease"
STANDBY_MARK = "waits for the Lease"
LEADER_MARK = "acquired"
LOST_MARK = "leadership lost"
"""What a hub replica logs when it starts, stands by, leads (``kommons.hub.leader``)."""
Progress = Callable[[str], None]

PUSH_SECRET_NAMESPACE = "kommons-system"
"""Where the bed's hub admin keeps push providers' kubeconfig Secrets (only the hub reads it)."""
PROVIDER_LABELS = {"kommons.io/tier": "community"}
"""Labels the bed's hub admin gives every provider at onboarding (``kommons onboard --label``)."""
_GENERATED_CONFIG = {
    "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "pricing": {"cpuCoreHour": "0.03", "memoryGiBHour": "0.004", "gpuHour": {"nvidia-l4": "0.70"}},
    "heartbeatSeconds": 2,
    "reportSeconds": 2,
}


def _quiet(_: str) -> None:
    pass


def install_crds(hub: Kube, *, timeout: float = 60.0) -> list[str]:
    """Apply every CRD in ``crds/`` to the hub and wait until each is Established."""
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        hub.apply(r.CRDS, body)
        names.append(str(body["metadata"]["name"]))

    def established() -> bool:
        for name in names:
            conditions = (hub.get(r.CRDS, name).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    wait_for(established, timeout=timeout, what="Kommons CRDs to be Established")
    return names


@dataclass
class Stack:
    """The hub operator and the agents running against a bed."""

    bed_dir: Path
    hub_kubeconfig: Path
    provider_kubeconfigs: dict[str, Path]
    regions: dict[str, str]
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    push: set[str] = field(default_factory=set)
    """Providers onboarded in push mode: the hub runs their agents, no process of their own."""
    bed: Testbed | None = None
    """The bed, which adopts the stack's processes so ``make testbed-down`` stops them too."""
    settlement: SettlementDeployment | None = None
    """The token and Settlement on the bed's anvil the hub settles on (None: no chain)."""
    metrics_ports: dict[str, int] = field(default_factory=dict)
    """Process name → the loopback port of its ``/metrics`` (each hub and pull agent has one)."""
    settle: bool = True
    """Whether the stack's hub runs the settlement loop by default (with :attr:`settlement`).
    False: it reads escrow balances (payment guard) but makes no epochs, so leases are not
    metered into any and a deleted lease goes at once (the integration suite's shared hub;
    settlement tests start a settling one with :meth:`hub_with`)."""

    @property
    def dir(self) -> Path:
        """Where the stack keeps agent kubeconfigs, configs and logs."""
        return self.bed_dir / "stack"

    def hub_kube(self) -> Kube:
        """An admin client for the hub."""
        return connect(self.hub_kubeconfig, field_manager="kommons-testbed")

    # --- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        """Record the stack's processes next to the bed's state."""
        data = {
            "hubKubeconfig": str(self.hub_kubeconfig),
            "providerKubeconfigs": {k: str(v) for k, v in self.provider_kubeconfigs.items()},
            "regions": self.regions,
            "push": sorted(self.push),
            "settlement": self.settlement is not None,
            "settle": self.settle,
            "metricsPorts": self.metrics_ports,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
        }
        (self.bed_dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, bed_dir: Path, bed: Testbed | None = None) -> Stack | None:
        """The stack recorded in ``bed_dir``, or ``None``."""
        path = bed_dir / STATE_FILE
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(
            bed_dir=bed_dir,
            hub_kubeconfig=Path(data["hubKubeconfig"]),
            provider_kubeconfigs={k: Path(v) for k, v in data["providerKubeconfigs"].items()},
            regions=dict(data["regions"]),
            processes={k: ProcessRecord.from_json(v) for k, v in data["processes"].items()},
            push=set(data.get("push") or ()),
            bed=bed,
            settlement=SettlementDeployment.load(bed_dir) if data.get("settlement") else None,
            settle=bool(data.get("settle", True)),
            metrics_ports={k: int(v) for k, v in (data.get("metricsPorts") or {}).items()},
        )

    def _record(self, record: ProcessRecord) -> ProcessRecord:
        self.processes[record.name] = record
        self.save()
        if self.bed is not None:
            self.bed.adopt(record)
        return record

    # --- set-up ---------------------------------------------------------------------------

    def agent_config(self, provider: str) -> Path:
        """The agent's config: ``examples/providers/<name>.yaml``, or a generated one."""
        example = EXAMPLE_PROVIDERS / f"{provider}.yaml"
        if example.exists():
            return example
        path = self.dir / f"{provider}.agent.yaml"
        path.write_text(yaml.safe_dump(_GENERATED_CONFIG))
        return path

    def agent_kubeconfig(self, provider: str) -> Path:
        """The scoped hub kubeconfig written by onboarding."""
        return self.dir / f"{provider}.hub.kubeconfig"

    def onboard_all(self, hub: Kube) -> None:
        """Onboard every provider of the bed (idempotent), those in :attr:`push` in push mode."""
        for provider in sorted(self.provider_kubeconfigs):
            self.onboard(hub, provider, push=provider in self.push)

    def onboard(self, hub: Kube, provider: str, *, push: bool = False) -> None:
        """Onboard one provider, as a hub admin does (idempotent).

        The region (the bed's) and the labels (:data:`PROVIDER_LABELS`) are the admin's; only
        the payout address is taken from the agent's config. In push mode the admin first
        stores the provider cluster's kubeconfig in a Secret on the hub
        (:meth:`push_secret_ref`), and the provider then declares its prices with the scoped
        hub kubeconfig onboarding wrote (no agent of its own does it).
        """
        config = yaml.safe_load(self.agent_config(provider).read_text())
        ref = self.store_push_kubeconfig(hub, provider) if push else None
        text = onboard(
            hub,
            Onboarding(
                provider=provider,
                region=self.regions.get(provider) or "eu-west",
                payout_address=str(config["payoutAddress"]),
                labels=PROVIDER_LABELS,
                mode="Push" if push else "Pull",
                kubeconfig_secret=ref,
            ),
            token_seconds=7 * 24 * 3600,
        )
        path = self.agent_kubeconfig(provider)
        path.write_text(text)
        path.chmod(0o600)
        if push:
            scoped = connect(path, field_manager=f"kommons-agent-{provider}")
            HubLink(scoped, provider, load_config(self.agent_config(provider))).register()

    @staticmethod
    def push_secret_ref(provider: str) -> SecretKeyRef:
        """The Secret the bed keeps a push provider's kubeconfig in."""
        return SecretKeyRef(
            namespace=PUSH_SECRET_NAMESPACE, name=f"{provider}-kubeconfig", key="kubeconfig"
        )

    def store_push_kubeconfig(self, hub: Kube, provider: str) -> SecretKeyRef:
        """Put the provider cluster's (self-contained) kubeconfig in a Secret on the hub."""
        ref = self.push_secret_ref(provider)
        hub.apply(
            r.NAMESPACES,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ref.namespace}},
        )
        text = self.provider_kubeconfigs[provider].read_text()
        hub.apply(
            r.SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": ref.name, "namespace": ref.namespace},
                "type": "Opaque",
                "data": {ref.key: base64.b64encode(text.encode()).decode()},
            },
        )
        return ref

    def use_push(self, provider: str) -> None:
        """Switch a running provider to push mode: stop its agent process, onboard it as Push."""
        name = f"agent-{provider}"
        if name in self.processes:
            stop(self.processes.pop(name), timeout=15)
            if self.bed is not None:
                self.bed.disown(name)
        self.push.add(provider)
        self.save()
        self.onboard(self.hub_kube(), provider, push=True)

    def use_pull(self, provider: str) -> None:
        """Switch a provider back to pull mode: onboard it as Pull, start its agent process."""
        self.onboard(self.hub_kube(), provider, push=False)
        self.push.discard(provider)
        self.save()
        self.start_agent(provider)

    # --- HA hub (leader election): replicas, the Lease --------------------------------------

    def hub_names(self) -> list[str]:
        """The stack's hub processes: ``hub``, or the replicas ``hub-a``, ``hub-b`` and so on."""
        return sorted(n for n in self.processes if n == "hub" or n.startswith("hub-"))

    def start_hubs(self, replicas: int, *extra: str) -> list[ProcessRecord]:
        """Start ``replicas`` hub processes: ``hub`` alone, or ``hub-a``, ``hub-b`` … (HA).

        Each replica's ``--identity`` is its process name, so the Lease names who leads.
        """
        if replicas == 1:
            return [self.start_hub(*extra)]
        return [self.start_hub(*extra, name=f"hub-{chr(ord('a') + i)}") for i in range(replicas)]

    def leader(self) -> str | None:
        """The identity holding the hub's election Lease (``None``: none, or released)."""
        body = self.hub_kube().get_or_none(r.LEASES, HUB_LEASE, HUB_NAMESPACE)
        holder = ((body or {}).get("spec") or {}).get("holderIdentity")
        return str(holder) if holder else None

    def hub_runs(self, name: str) -> list[str]:
        """A hub replica's log cut into its runs (logs are appended across restarts)."""
        path = self.dir / "logs" / f"{name}.log"
        text = path.read_text() if path.exists() else ""
        return text.split(HUB_RUN_MARK)[1:]

    def wait_standing_by(self, name: str, *, after_runs: int = 0, timeout: float = 120) -> None:
        """Wait until run number ``after_runs + 1`` (or later) of a replica stands by."""

        def standing_by() -> bool:
            runs = self.hub_runs(name)
            last = runs[-1] if len(runs) > after_runs else ""
            return STANDBY_MARK in last and LEADER_MARK not in last

        wait_for(standing_by, timeout=timeout, what=f"hub replica {name} to stand by", every=0.2)

    def restart_lost_hubs(self) -> list[str]:
        """Restart the hub replicas that exited because they lost the Lease (as a pod would be).

        Only those: a replica killed on purpose stays down until its test restarts it.
        """
        restarted = []
        for name in self.hub_names():
            runs = self.hub_runs(name)
            if not self.alive(name) and runs and LOST_MARK in runs[-1]:
                self.start_hub(name=name)
                restarted.append(name)
        return restarted

    def stop_hubs(self) -> None:
        """Stop every hub process gracefully (each releases the Lease) and forget it."""
        for name in self.hub_names():
            stop(self.processes.pop(name), timeout=30)
            if self.bed is not None:
                self.bed.disown(name)
        self.save()

    # --- processes ------------------------------------------------------------------------

    def start_hub(
        self, *extra: str, name: str = "hub", settle: bool | None = None
    ) -> ProcessRecord:
        """Start the hub operator (``kommons hub``) as process (and Lease identity) ``name``.

        The identity is stable across restarts: a ``hub`` restarted after a crash finds the
        Lease in its own name and leads at once instead of waiting for it to expire.

        The heartbeat timeout is the product's default (30 s), so an agent restarted by a test
        (which can take 15 s on a loaded machine) is not failed over; failover tests pass a
        shorter one in ``extra`` (a later option wins).

        With :attr:`settlement`, the hub gets its chain options (before ``extra``) and the
        bed's short epochs (:data:`BED_EPOCH_ARGS`). ``settle=False`` leaves out the operator
        key: the hub still reads escrow balances (payment guard) but runs no settlement loop,
        for tests that make their own SettlementEpochs. ``None`` is :attr:`settle`.
        """
        if settle is None:
            settle = self.settle
        chain: list[str] = []
        if self.settlement is not None:
            chain = [
                *self.settlement.hub_args(operator=settle),
                *(BED_EPOCH_ARGS if settle else ()),
            ]
        argv = [
            sys.executable,
            "-m",
            "kommons.cli",
            "hub",
            "--kubeconfig",
            str(self.hub_kubeconfig),
            "--heartbeat-timeout",
            "30",
            "--retry-seconds",
            "2",
            "--ready-timeout",
            "15",
            "--identity",
            name,
            *self._metrics_args(name),
            *chain,
            *extra,
        ]
        return self._record(spawn(name, argv, self.dir / "logs" / f"{name}.log"))

    def start_agent(
        self,
        provider: str,
        *,
        hub_kubeconfig: Path | None = None,
        kubeconfig: Path | None = None,
        config: Path | None = None,
    ) -> ProcessRecord:
        """Start one provider's agent (``kommons agent``) with its scoped hub kubeconfig.

        ``hub_kubeconfig`` replaces that kubeconfig (e.g. one going through a
        :class:`~kommons_testbed.proxy.TcpProxy`); ``kubeconfig`` replaces the provider
        cluster's admin kubeconfig and ``config`` the agent config (e.g. the token of the Helm
        chart's ServiceAccount and the config the chart rendered).
        """
        argv = [
            sys.executable,
            "-m",
            "kommons.cli",
            "agent",
            "--provider",
            provider,
            "--config",
            str(config or self.agent_config(provider)),
            "--hub-kubeconfig",
            str(hub_kubeconfig or self.agent_kubeconfig(provider)),
            "--kubeconfig",
            str(kubeconfig or self.provider_kubeconfigs[provider]),
            "--metering-report-seconds",
            str(BED_METERING_REPORT_SECONDS),
            *self._metrics_args(f"agent-{provider}"),
        ]
        log = self.dir / "logs" / f"agent-{provider}.log"
        return self._record(spawn(f"agent-{provider}", argv, log))

    def _metrics_args(self, name: str) -> list[str]:
        """``/metrics`` of process ``name`` on a free loopback port (recorded for scrapes)."""
        self.metrics_ports[name] = free_port()
        return ["--metrics-port", str(self.metrics_ports[name]), "--metrics-address", "127.0.0.1"]

    def metrics_targets(self) -> dict[str, str]:
        """Running process name → ``127.0.0.1:port`` of its ``/metrics`` (scrape targets)."""
        return {
            name: f"127.0.0.1:{port}"
            for name, port in sorted(self.metrics_ports.items())
            if self.alive(name)
        }

    def kill(self, name: str) -> None:
        """SIGKILL one of the stack's processes (``hub``, ``hub-a`` or ``agent-<p>``): a crash."""
        kill(self.processes[name])

    def stop(self, name: str) -> None:
        """Stop one of the stack's processes gracefully."""
        stop(self.processes[name], timeout=15)

    def restart_hub(self, *extra: str, settle: bool | None = None) -> None:
        """Stop the hub (if it runs), start it with ``extra`` options, wait for every provider.

        A hub that will not settle first freezes the epochs a settling one left open
        (:meth:`freeze_open_epochs`).
        """
        if self.alive("hub"):
            self.stop("hub")
        if not (self.settle if settle is None else settle):
            self.freeze_open_epochs()
        self.start_hub(*extra, settle=settle)
        self.wait_providers_ready(timeout=120)

    @contextlib.contextmanager
    def hub_with(self, *extra: str, settle: bool | None = None) -> Iterator[Stack]:
        """The hub restarted with ``extra`` options for the block, the bed's default one after.

        For a test module's fixture: ``with stack.hub_with("--heartbeat-timeout", "10"): yield``;
        ``settle=True`` runs the settlement loop for the block.
        """
        self.restart_hub(*extra, settle=settle)
        try:
            yield self
        finally:
            self.restart_hub()

    def freeze_open_epochs(self) -> list[str]:
        """Move every ``Open`` SettlementEpoch to ``Sealed``; their names.

        Without a settlement loop nobody would seal them: a lease metered into one would wait
        for it forever once deleted. A settling hub started later seals and commits them.
        """
        hub = self.hub_kube()
        frozen = []
        for epoch in hub.list(r.SETTLEMENT_EPOCHS):
            if (epoch.get("status") or {}).get("phase") in (None, "Open"):
                name = str(epoch["metadata"]["name"])
                hub.patch(
                    r.SETTLEMENT_EPOCHS,
                    name,
                    {"status": {"phase": "Sealed"}},
                    subresource="status",
                )
                frozen.append(name)
        return frozen

    def alive(self, name: str) -> bool:
        """Whether a stack process is running."""
        record = self.processes.get(name)
        return record is not None and is_alive(record.pid)

    def wait_providers_ready(self, *, timeout: float = 90.0, since: datetime | None = None) -> None:
        """Wait until every provider is ``Ready`` on the hub.

        With ``since``, a provider counts only once the hub has recorded a heartbeat at or
        after that moment: on a reused bed, a ``Ready`` left by an earlier stack is stale.
        """
        hub = self.hub_kube()
        floor = since.replace(microsecond=0) if since is not None else None

        def fresh(status: dict[str, Any]) -> bool:
            if floor is None:
                return True
            seen = status.get("lastHeartbeatTime")
            return bool(seen) and datetime.fromisoformat(str(seen)) >= floor

        def ready() -> bool:
            for provider in self.provider_kubeconfigs:
                body = hub.get_or_none(r.PROVIDERS, provider)
                status = (body or {}).get("status") or {}
                if status.get("phase") != "Ready" or not fresh(status):
                    return False
            return True

        try:
            wait_for(
                ready, timeout=timeout, what="every provider to be Ready on the hub", every=0.5
            )
        except BedError as exc:
            raise BedError(f"{exc}; see the logs in {self.dir / 'logs'}") from exc

    def down(self) -> None:
        """Stop every process of the stack (agents first, then the hub)."""
        for name in sorted(self.processes, key=lambda n: n == "hub" or n.startswith("hub-")):
            stop(self.processes[name], timeout=15)
            if self.bed is not None:
                self.bed.disown(name)
        (self.bed_dir / STATE_FILE).unlink(missing_ok=True)


def start_stack(
    bed: Testbed,
    *,
    progress: Progress = _quiet,
    hub_args: Sequence[str] = (),
    ready_timeout: float = 90.0,
    push: Sequence[str] = (),
    hub_replicas: int = 1,
    settlement: bool = True,
    settle: bool = True,
) -> Stack:
    """Install CRDs and trust policies, onboard providers, start the hub and every agent.

    Args:
        bed: The running bed.
        progress: Called with a line per step.
        hub_args: Extra ``kommons hub`` options (a later option wins over the defaults).
        ready_timeout: Seconds to wait for every provider to be ``Ready``.
        push: Providers onboarded in push mode: their kubeconfig goes into a Secret on the
            hub, which runs their agents; no agent process is started for them.
        hub_replicas: 1 starts ``hub``; more start ``hub-a``, ``hub-b`` … of which the one
            holding the election Lease acts.
        settlement: When the bed runs anvil, deploy (or reuse) the TestToken and Settlement
            (:mod:`kommons_testbed.settlement_bed`) and start the hub with ``--chain-rpc``,
            ``--settlement-address`` and ``--operator-key-file``; ``Stack.settlement`` is the
            handle. False, or a bed without anvil, runs the hub without settlement.
        settle: With ``settlement``, whether the hub runs the settlement loop by default
            (:attr:`Stack.settle`); False gives it the chain for reads only.
    """
    existing = Stack.load(bed.dir, bed)
    if existing is not None and any(existing.alive(n) for n in existing.processes):
        raise BedError(f"a Kommons stack is already running on the bed in {bed.dir}; stop it first")
    stack = Stack(
        bed_dir=bed.dir,
        hub_kubeconfig=bed.hub.kubeconfig,
        provider_kubeconfigs={name: handle.kubeconfig for name, handle in bed.providers.items()},
        regions={name: bed.state.clusters[name].region or "" for name in bed.providers},
        push=set(push),
        bed=bed,
        settle=settle,
    )
    unknown = stack.push - set(stack.provider_kubeconfigs)
    if unknown:
        raise BedError(f"push providers {sorted(unknown)} are not providers of the bed")
    stack.dir.mkdir(parents=True, exist_ok=True)
    hub = stack.hub_kube()
    started = time.monotonic()
    started_at = datetime.now(UTC)
    names = install_crds(hub)
    progress(f"installed {len(names)} CRDs")
    policies = install_policies(hub)
    progress(f"installed {len(policies)} trust-boundary policies, bindings and tenant roles")
    stack.onboard_all(hub)
    progress(f"onboarded providers {', '.join(sorted(stack.provider_kubeconfigs))}")
    if settlement and bed.state.chain is not None:
        stack.settlement = ensure_settlement_bed(
            bed.chain, bed.dir, providers=sorted(stack.provider_kubeconfigs)
        )
        stack.save()
        progress(f"settlement contract {stack.settlement.settlement} on {bed.chain.rpc_url}")
    try:
        stack.start_hubs(hub_replicas, *hub_args)
        for provider in sorted(set(stack.provider_kubeconfigs) - stack.push):
            stack.start_agent(provider)
        pushed = f" (push mode, run by the hub: {', '.join(sorted(stack.push))})" if push else ""
        progress(
            f"started {hub_replicas} hub replica(s) and one agent per provider{pushed}; waiting"
        )
        stack.wait_providers_ready(timeout=ready_timeout, since=started_at)
    except BaseException:
        stack.down()  # leave no orphaned operator or agent behind
        raise
    progress(f"stack ready in {time.monotonic() - started:.1f}s")
    return stack
