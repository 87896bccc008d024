"""The bed's state file (``<dir>/state.json``): what runs where, so any process can attach.

Written by ``up`` and by the fault helpers (a restarted process has a new pid), read by
``down``, ``status``, :meth:`kommons_testbed.bed.Testbed.load` and the pytest fixtures.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kommons_testbed.handles import ChainAccount, ChainHandle, ClusterHandle, PrometheusHandle
from kommons_testbed.processes import BedError, ProcessRecord

STATE_FILE = "state.json"
FORMAT_VERSION = 1

Role = Literal["hub", "provider"]


@dataclass
class ClusterState:
    """One cluster of the bed as recorded in the state file."""

    name: str
    role: Role
    port: int
    """The API server's secure port on 127.0.0.1 (kept across apiserver restarts)."""
    etcd_prefix: str
    kubeconfig: Path
    ca_file: Path
    admin_token: str
    region: str | None = None
    nodes: list[str] = field(default_factory=list)
    """Names of the kwok nodes (providers only)."""

    @property
    def server(self) -> str:
        """The API server URL."""
        return f"https://127.0.0.1:{self.port}"

    def handle(self) -> ClusterHandle:
        """Return the typed handle tests use."""
        return ClusterHandle(
            name=self.name,
            kubeconfig=self.kubeconfig,
            server=self.server,
            ca_file=self.ca_file,
            admin_token=self.admin_token,
        )

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable form."""
        data = asdict(self)
        data["kubeconfig"] = str(self.kubeconfig)
        data["ca_file"] = str(self.ca_file)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        """Rebuild a cluster written by :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            role="hub" if data["role"] == "hub" else "provider",
            port=int(data["port"]),
            etcd_prefix=str(data["etcd_prefix"]),
            kubeconfig=Path(data["kubeconfig"]),
            ca_file=Path(data["ca_file"]),
            admin_token=str(data["admin_token"]),
            region=data.get("region"),
            nodes=[str(n) for n in data.get("nodes", [])],
        )


@dataclass
class BedState:
    """Everything the bed started, keyed by component name (``hub/kube-apiserver``, ``etcd``)."""

    dir: Path
    etcd_url: str
    clusters: dict[str, ClusterState]
    processes: dict[str, ProcessRecord]
    started_at: float
    startup_seconds: float | None = None
    chain: ChainHandle | None = None
    prometheus: PrometheusHandle | None = None
    merged_kubeconfig: Path | None = None

    @property
    def hub(self) -> ClusterState:
        """The hub cluster."""
        return self.clusters["hub"]

    @property
    def providers(self) -> dict[str, ClusterState]:
        """Provider clusters by name, in bed order."""
        return {n: c for n, c in self.clusters.items() if c.role == "provider"}

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable form."""
        return {
            "version": FORMAT_VERSION,
            "dir": str(self.dir),
            "etcd_url": self.etcd_url,
            "started_at": self.started_at,
            "startup_seconds": self.startup_seconds,
            "merged_kubeconfig": str(self.merged_kubeconfig) if self.merged_kubeconfig else None,
            "clusters": {n: c.to_json() for n, c in self.clusters.items()},
            "processes": {n: p.to_json() for n, p in self.processes.items()},
            "chain": asdict(self.chain) if self.chain else None,
            "prometheus": (
                {"url": self.prometheus.url, "config_file": str(self.prometheus.config_file)}
                if self.prometheus
                else None
            ),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BedState:
        """Rebuild a state written by :meth:`to_json`."""
        if data.get("version") != FORMAT_VERSION:
            raise BedError(
                f"state file format {data.get('version')!r} is not {FORMAT_VERSION}; "
                "stop the processes by hand and remove the state directory"
            )
        chain = data.get("chain")
        prom = data.get("prometheus")
        merged = data.get("merged_kubeconfig")
        return cls(
            dir=Path(data["dir"]),
            etcd_url=str(data["etcd_url"]),
            started_at=float(data["started_at"]),
            startup_seconds=data.get("startup_seconds"),
            merged_kubeconfig=Path(merged) if merged else None,
            clusters={n: ClusterState.from_json(c) for n, c in data["clusters"].items()},
            processes={n: ProcessRecord.from_json(p) for n, p in data["processes"].items()},
            chain=(
                ChainHandle(
                    rpc_url=str(chain["rpc_url"]),
                    chain_id=int(chain["chain_id"]),
                    accounts=tuple(ChainAccount(**a) for a in chain["accounts"]),
                )
                if chain
                else None
            ),
            prometheus=(
                PrometheusHandle(url=str(prom["url"]), config_file=Path(prom["config_file"]))
                if prom
                else None
            ),
        )

    def save(self) -> None:
        """Write ``<dir>/state.json`` atomically (readers never see half a file)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / STATE_FILE
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, target)


def state_path(directory: Path) -> Path:
    """Return the state file of the bed in ``directory``."""
    return directory / STATE_FILE


def load_state(directory: Path) -> BedState | None:
    """Read the state of the bed in ``directory``; ``None`` when there is no state file."""
    path = state_path(directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return BedState.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise BedError(f"{path} is not a valid bed state file ({exc})") from None
