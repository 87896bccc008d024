"""One cluster's control plane: kube-apiserver, kube-controller-manager and kube-scheduler.

Every component authenticates with a static bearer token (``--token-auth-file``); the
controller-manager and scheduler as their well-known users ``system:kube-controller-manager``
and ``system:kube-scheduler``, whose RBAC roles the apiserver bootstraps.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from kommons_testbed import kube, launch, tools
from kommons_testbed.kubeconfig import KubeconfigEntry, render
from kommons_testbed.pki import ClusterPki
from kommons_testbed.processes import ProcessRecord

SERVICE_CIDR = "10.96.0.0/16"
"""Service range of every cluster (configuration only: nothing routes on loopback)."""
SERVICE_IP = "10.96.0.1"
"""The ``kubernetes`` Service's IP in :data:`SERVICE_CIDR`."""

ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "PodSecurity",
    "Priority",
    "RuntimeClass",
    "NodeRestriction",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)
"""Admission plugins enabled on every apiserver (on top of the release's defaults)."""

USERS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("kommons-testbed-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kommons-testbed-kwok", ("system:masters",)),
}
"""Token users of each cluster: key -> (user name, groups)."""


@dataclass(frozen=True)
class ClusterFiles:
    """The files of one cluster under ``<state dir>/clusters/<name>/``."""

    name: str
    dir: Path
    pki: ClusterPki
    token_file: Path
    tokens: Mapping[str, str]
    """Bearer token per :data:`USERS` key."""

    def kubeconfig(self, user: str) -> Path:
        """Return the kubeconfig of ``user`` (a :data:`USERS` key other than ``admin``)."""
        return self.dir / f"{user}.kubeconfig"


def component(cluster: str, name: str) -> str:
    """Return the bed's name of a component, e.g. ``prov-a/kube-apiserver``."""
    return f"{cluster}/{name}"


def log_path(state_dir: Path, name: str) -> Path:
    """Return the log file of component ``name`` (``logs/prov-a-kube-apiserver.log``)."""
    return state_dir / "logs" / f"{name.replace('/', '-')}.log"


def etcd_prefix(cluster: str) -> str:
    """Return the etcd key prefix of ``cluster``'s objects."""
    return f"/kommons-testbed/{cluster}"


def token_file_text(tokens: Mapping[str, str]) -> str:
    """Render ``--token-auth-file`` lines (``token,user,uid,"group1,group2"``)."""
    lines = []
    for key, token in tokens.items():
        user, groups = USERS[key]
        line = f"{token},{user},{user}"
        if groups:
            line += f',"{",".join(groups)}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def prepare(state_dir: Path, name: str, pki: ClusterPki) -> ClusterFiles:
    """Write the cluster's token file (fresh random tokens) and return its files."""
    cdir = state_dir / "clusters" / name
    cdir.mkdir(parents=True, exist_ok=True)
    tokens = {key: secrets.token_hex(24) for key in USERS}
    token_file = cdir / "tokens.csv"
    token_file.write_text(token_file_text(tokens))
    token_file.chmod(0o600)
    return ClusterFiles(name=name, dir=cdir, pki=pki, token_file=token_file, tokens=tokens)


def apiserver_argv(files: ClusterFiles, *, etcd_url: str, port: int) -> list[str]:
    """Return kube-apiserver's command line."""
    pki = files.pki
    return [
        str(tools.binary("kube-apiserver")),
        f"--etcd-servers={etcd_url}",
        f"--etcd-prefix={etcd_prefix(files.name)}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--token-auth-file={files.token_file}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        # Privileged pods are allowed by the server so that Pod Security admission is what
        # refuses them in `restricted` namespaces (as on a real cluster).
        "--allow-privileged=true",
        f"--service-account-issuer=https://{files.name}.testbed.kommons.invalid",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
        "--event-ttl=1h",
    ]


def start_apiserver(
    state_dir: Path, files: ClusterFiles, *, etcd_url: str, timeout: float = 90.0
) -> tuple[ProcessRecord, int]:
    """Start the cluster's kube-apiserver on a free port; wait for ``/readyz`` (admin token)."""
    record, ports = launch.start(
        component(files.name, "kube-apiserver"),
        lambda p: apiserver_argv(files, etcd_url=etcd_url, port=p["secure"]),
        ports=("secure",),
        log=log_path(state_dir, component(files.name, "kube-apiserver")),
        ready=lambda p: readyz(p["secure"], files),
        timeout=timeout,
    )
    return record, ports["secure"]


def readyz(port: int, files: ClusterFiles) -> bool:
    """Whether the apiserver on ``port`` answers ``/readyz`` with 200 to the admin token."""
    return launch.http_ok(
        f"https://127.0.0.1:{port}/readyz",
        token=files.tokens["admin"],
        ca_file=files.pki.ca_cert,
    )


def write_kubeconfigs(files: ClusterFiles, server: str, admin_kubeconfig: Path) -> None:
    """Write the admin kubeconfig and the components' kubeconfigs for ``server``."""
    ca_pem = files.pki.ca_cert.read_bytes()
    for key, token in files.tokens.items():
        path = admin_kubeconfig if key == "admin" else files.kubeconfig(key)
        context = files.name if key == "admin" else f"{files.name}-{key}"
        path.write_text(render([KubeconfigEntry(context, server, ca_pem, token)]))
        path.chmod(0o600)


def controller_manager_argv(files: ClusterFiles) -> list[str]:
    """Return kube-controller-manager's command line (no serving port, no leader election)."""
    kubeconfig = files.kubeconfig("controller-manager")
    return [
        str(tools.binary("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        "--secure-port=0",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={files.pki.sa_key}",
        f"--root-ca-file={files.pki.ca_cert}",
        f"--cluster-name={files.name}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--controllers=*",
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        "--concurrent-gc-syncs=20",
        "--concurrent-namespace-syncs=10",
        "--profiling=false",
    ]


def start_controller_manager(
    state_dir: Path, files: ClusterFiles, server: str, *, timeout: float = 60.0
) -> ProcessRecord:
    """Start kube-controller-manager; ready once it made ``default/default`` ServiceAccount."""
    api = kube.api_client(server, ca_file=files.pki.ca_cert, token=files.tokens["admin"])
    core = client.CoreV1Api(api)

    def ready(_: Mapping[str, int]) -> bool:
        core.read_namespaced_service_account("default", "default", _request_timeout=3)
        return True

    try:
        record, _ = launch.start(
            component(files.name, "kube-controller-manager"),
            lambda _: controller_manager_argv(files),
            log=log_path(state_dir, component(files.name, "kube-controller-manager")),
            ready=ready,
            timeout=timeout,
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
    return record


def scheduler_argv(files: ClusterFiles, port: int) -> list[str]:
    """Return kube-scheduler's command line (serving ``/readyz`` on ``port``)."""
    kubeconfig = files.kubeconfig("scheduler")
    return [
        str(tools.binary("kube-scheduler")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--profiling=false",
    ]


def start_scheduler(
    state_dir: Path, files: ClusterFiles, *, timeout: float = 60.0
) -> ProcessRecord:
    """Start kube-scheduler on a free port; ready once its ``/readyz`` answers."""
    record, _ = launch.start(
        component(files.name, "kube-scheduler"),
        lambda p: scheduler_argv(files, p["secure"]),
        ports=("secure",),
        log=log_path(state_dir, component(files.name, "kube-scheduler")),
        ready=lambda p: launch.http_ok(f"https://127.0.0.1:{p['secure']}/readyz", insecure=True),
        timeout=timeout,
    )
    return record
