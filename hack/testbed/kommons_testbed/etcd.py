"""The bed's single etcd: every cluster keeps its objects under its own ``--etcd-prefix``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kommons_testbed import launch, tools
from kommons_testbed.processes import ProcessRecord

NAME = "etcd"


def argv(data_dir: Path, ports: Mapping[str, int]) -> list[str]:
    """Return etcd's command line for ``data_dir`` and the ``client``/``peer`` ports."""
    client = f"http://127.0.0.1:{ports['client']}"
    peer = f"http://127.0.0.1:{ports['peer']}"
    return [
        str(tools.binary("etcd")),
        "--name=testbed",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        "--initial-cluster-state=new",
        # A throw-away bed: no fsync (much faster on slow disks), compact often, small logs.
        "--unsafe-no-fsync=true",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]


def start_etcd(state_dir: Path, *, timeout: float = 30.0) -> tuple[ProcessRecord, str]:
    """Start etcd with its data in ``state_dir/etcd`` and return its record and client URL."""
    data_dir = state_dir / "etcd"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    record, ports = launch.start(
        NAME,
        lambda p: argv(data_dir, p),
        ports=("client", "peer"),
        log=state_dir / "logs" / "etcd.log",
        ready=lambda p: launch.http_ok(f"http://127.0.0.1:{p['client']}/health"),
        timeout=timeout,
    )
    return record, f"http://127.0.0.1:{ports['client']}"
