"""Kopf's credentials: from a kubeconfig file (hub, pull agent) or a bearer token (push agent)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import kopf
import kubernetes.client

from kommons.kube.rest import Kube, load_api_client


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


def bearer_connection_info(
    base: Kube, token: str, *, expiration: datetime | None = None
) -> kopf.ConnectionInfo:
    """Kopf's credentials for ``base``'s API server (URL and CA) with only a bearer ``token``.

    ``expiration`` tells kopf when to log in again (it calls the login handler anew).
    """
    config = base.api_client.configuration
    return kopf.ConnectionInfo(
        server=str(config.host),
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme="Bearer",
        token=token,
        expiration=expiration,
        default_namespace=None,
    )
