"""Kubernetes API clients for the bed's clusters, and namespace helpers for tests."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client

from kommons_testbed.handles import ClusterHandle
from kommons_testbed.processes import BedError, wait_for


def api_client(server: str, *, ca_file: Path, token: str) -> client.ApiClient:
    """Return an :class:`kubernetes.client.ApiClient` for ``server`` with a bearer ``token``.

    Args:
        server: ``https://127.0.0.1:<port>``.
        ca_file: CA bundle that verifies the server.
        token: bearer token (the admin token, or a service account's).
    """
    config = client.Configuration()
    config.host = server
    config.ssl_ca_cert = str(ca_file)
    config.verify_ssl = True
    config.api_key = {"BearerToken": token}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(config)


def handle_client(handle: ClusterHandle) -> client.ApiClient:
    """Return an admin :class:`kubernetes.client.ApiClient` for a cluster handle."""
    return api_client(handle.server, ca_file=handle.ca_file, token=handle.admin_token)


def wait_service_account(
    api: client.ApiClient, namespace: str, name: str = "default", *, timeout: float = 30.0
) -> None:
    """Wait until the controller-manager made ServiceAccount ``name`` in ``namespace``.

    Pods can only be created once their namespace's ``default`` ServiceAccount exists.
    """
    core = client.CoreV1Api(api)

    def exists() -> bool:
        core.read_namespaced_service_account(name, namespace, _request_timeout=5)
        return True

    wait_for(exists, timeout=timeout, what=f"service account {namespace}/{name}")


def create_namespace(
    api: client.ApiClient,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    wait_default_sa: bool = True,
) -> client.V1Namespace:
    """Create namespace ``name`` and (by default) wait for its ``default`` ServiceAccount."""
    core = client.CoreV1Api(api)
    ns = core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or {}))
    )
    if wait_default_sa:
        wait_service_account(api, name)
    return ns


def delete_namespace(api: client.ApiClient, name: str, *, wait: float = 0.0) -> None:
    """Delete namespace ``name`` (gone already is fine); wait up to ``wait`` s until it is gone."""
    core = client.CoreV1Api(api)
    try:
        core.delete_namespace(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    if wait <= 0:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)
    raise BedError(f"namespace {name} still exists {wait:.0f}s after deletion")
