"""kwok: simulated nodes and pods of a provider cluster.

kwok manages the nodes annotated ``kwok.x-k8s.io/node: fake`` (see :mod:`kommons_testbed.nodes`)
and drives their pods through the Stages in ``hack/testbed/kwok-stages.yaml``: kwok's "fast"
stages (scheduled pods are Running and Ready at once) plus the bed's fault stages
(:mod:`kommons_testbed.pods`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from kommons_testbed import launch, tools
from kommons_testbed.cluster import ClusterFiles, component, log_path
from kommons_testbed.processes import BedError, ProcessRecord

MANAGED_ANNOTATION = "kwok.x-k8s.io/node"
"""kwok manages nodes with this annotation set to ``fake``."""
NODE_LEASE_SECONDS = 40
"""kwok renews a ``coordination.k8s.io`` Lease per node, as a kubelet does."""
POD_CIDR = "10.244.0.0/16"


POD_LOG = tools.TESTBED_DIR / "kwok-pod.log"
"""What every simulated container "printed": kwok serves it as the container's log."""


def logs_config(files: ClusterFiles) -> Path:
    """Write the kwok ``ClusterLogs`` that serves :data:`POD_LOG` for every container."""
    path = files.dir / "kwok-logs.yaml"
    path.write_text(
        "apiVersion: kwok.x-k8s.io/v1alpha1\n"
        "kind: ClusterLogs\n"
        "metadata: {name: every-container}\n"
        "spec:\n"
        "  selector: {}\n"
        "  logs:\n"
        f"  - logsFile: {POD_LOG}\n"
    )
    return path


def argv(files: ClusterFiles, port: int, stages: Path = tools.KWOK_STAGES) -> list[str]:
    """Return kwok's command line for the cluster of ``files``.

    kwok also plays the nodes' kubelet on ``127.0.0.1:port`` (TLS with the cluster's serving
    certificate, whose SANs include 127.0.0.1): the API server reaches it there for
    ``pods/log``, so ``kubectl logs`` works on simulated pods.
    """
    return [
        str(tools.binary("kwok")),
        f"--kubeconfig={files.kubeconfig('kwok')}",
        f"--config={stages}",
        f"--config={logs_config(files)}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={MANAGED_ANNOTATION}=fake",
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1",
        f"--node-port={port}",
        f"--server-address=127.0.0.1:{port}",
        f"--tls-cert-file={files.pki.serving_cert}",
        f"--tls-private-key-file={files.pki.serving_key}",
    ]


def start_kwok(state_dir: Path, files: ClusterFiles, *, settle: float = 0.2) -> ProcessRecord:
    """Start kwok for the cluster; it is "ready" when it is still alive after ``settle`` s.

    Real readiness (nodes Ready) is checked by the caller once the nodes exist.
    """
    if not tools.KWOK_STAGES.exists():
        raise BedError(f"kwok stage file {tools.KWOK_STAGES} missing")
    started = time.monotonic()

    def ready(_: Mapping[str, int]) -> bool:
        return time.monotonic() - started >= settle

    record, _ = launch.start(
        component(files.name, "kwok"),
        lambda ports: argv(files, ports["kubelet"]),
        ports=("kubelet",),
        log=log_path(state_dir, component(files.name, "kwok")),
        ready=ready,
        timeout=settle + 10,
    )
    return record
