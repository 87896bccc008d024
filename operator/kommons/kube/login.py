"""Kopf's credentials for a cluster named by a kubeconfig file (the hub, for hub and agent)."""

from __future__ import annotations

from pathlib import Path

import kopf
import kubernetes.client

from kommons.kube.rest import load_api_client


def connection_info(kubeconfig: Path | None) -> kopf.ConnectionInfo:
    """Translate a kubeconfig (or the in-cluster service account) to kopf's ConnectionInfo."""
    api_client: kubernetes.client.ApiClient = load_api_client(kubeconfig)
    config = api_client.configuration
    token: str | None = None
    auth = config.api_key.get("authorization") or config.api_key.get("BearerToken")
    if auth:
        token = auth.removeprefix("Bearer ").strip()
    return kopf.ConnectionInfo(
        server=str(config.host),
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        scheme="Bearer" if token else None,
        token=token,
        default_namespace=None,
    )
