"""The Kommons stack on a running bed: CRDs, onboarded providers, the hub and one agent each.

Used by ``make run`` (``kommons-testbed run``) and by the integration tests' ``stack``
fixture. Processes are started with :func:`processes.spawn` and recorded in
``<bed>/stack.json`` so ``make stop`` stops exactly them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kommons.hub.onboarding import Onboarding, install_policies, onboard
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import BedError, ProcessRecord, is_alive, kill, spawn, stop, wait_for

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
EXAMPLE_PROVIDERS = REPO / "examples" / "providers"
STATE_FILE = "stack.json"
Progress = Callable[[str], None]

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
    bed: Testbed | None = None
    """The bed, which adopts the stack's processes so ``make testbed-down`` stops them too."""

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
            bed=bed,
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
        """Onboard every provider of the bed (idempotent).

        As a hub admin does: the region (the bed's) and the labels (:data:`PROVIDER_LABELS`)
        are the admin's; only the payout address is taken from the agent's config.
        """
        for provider in sorted(self.provider_kubeconfigs):
            config = yaml.safe_load(self.agent_config(provider).read_text())
            text = onboard(
                hub,
                Onboarding(
                    provider=provider,
                    region=self.regions.get(provider) or "eu-west",
                    payout_address=str(config["payoutAddress"]),
                    labels=PROVIDER_LABELS,
                ),
                token_seconds=7 * 24 * 3600,
            )
            path = self.agent_kubeconfig(provider)
            path.write_text(text)
            path.chmod(0o600)

    # --- processes ------------------------------------------------------------------------

    def start_hub(self, *extra: str) -> ProcessRecord:
        """Start the hub operator (``kommons hub``).

        The heartbeat timeout is the product's default (30 s), so an agent restarted by a test
        (which can take 15 s on a loaded machine) is not failed over; failover tests pass a
        shorter one in ``extra`` (a later option wins).
        """
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
            *extra,
        ]
        return self._record(spawn("hub", argv, self.dir / "logs" / "hub.log"))

    def start_agent(self, provider: str, *, hub_kubeconfig: Path | None = None) -> ProcessRecord:
        """Start one provider's agent (``kommons agent``) with its scoped hub kubeconfig.

        ``hub_kubeconfig`` replaces that kubeconfig (e.g. one going through a
        :class:`~kommons_testbed.proxy.TcpProxy`).
        """
        argv = [
            sys.executable,
            "-m",
            "kommons.cli",
            "agent",
            "--provider",
            provider,
            "--config",
            str(self.agent_config(provider)),
            "--hub-kubeconfig",
            str(hub_kubeconfig or self.agent_kubeconfig(provider)),
            "--kubeconfig",
            str(self.provider_kubeconfigs[provider]),
        ]
        log = self.dir / "logs" / f"agent-{provider}.log"
        return self._record(spawn(f"agent-{provider}", argv, log))

    def kill(self, name: str) -> None:
        """SIGKILL one of the stack's processes (``hub`` or ``agent-<provider>``): a crash."""
        kill(self.processes[name])

    def stop(self, name: str) -> None:
        """Stop one of the stack's processes gracefully."""
        stop(self.processes[name], timeout=15)

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
        for name in sorted(self.processes, key=lambda n: n == "hub"):
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
) -> Stack:
    """Install CRDs and trust policies, onboard providers, start the hub and every agent.

    Args:
        bed: The running bed.
        progress: Called with a line per step.
        hub_args: Extra ``kommons hub`` options (a later option wins over the defaults).
        ready_timeout: Seconds to wait for every provider to be ``Ready``.
    """
    existing = Stack.load(bed.dir, bed)
    if existing is not None and any(existing.alive(n) for n in existing.processes):
        raise BedError(f"a Kommons stack is already running on the bed in {bed.dir}; stop it first")
    stack = Stack(
        bed_dir=bed.dir,
        hub_kubeconfig=bed.hub.kubeconfig,
        provider_kubeconfigs={name: handle.kubeconfig for name, handle in bed.providers.items()},
        regions={name: bed.state.clusters[name].region or "" for name in bed.providers},
        bed=bed,
    )
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
    try:
        stack.start_hub(*hub_args)
        for provider in sorted(stack.provider_kubeconfigs):
            stack.start_agent(provider)
        progress("started the hub operator and one agent per provider; waiting for them")
        stack.wait_providers_ready(timeout=ready_timeout, since=started_at)
    except BaseException:
        stack.down()  # leave no orphaned operator or agent behind
        raise
    progress(f"stack ready in {time.monotonic() - started:.1f}s")
    return stack
