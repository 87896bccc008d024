"""Credentials other than a kubeconfig file: short-lived ServiceAccount tokens, kubeconfig text.

Used by push mode: the hub acts on its own API server as a provider's agent with a token it
requests for that agent's ServiceAccount (TokenRequest API), never with its own credentials,
and reaches the provider cluster with a kubeconfig read from a Secret.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
import yaml

from kommons.kube import resources as r
from kommons.kube.rest import Kube

JSON = dict[str, Any]


class KubeconfigError(ValueError):
    """A kubeconfig cannot be loaded; the message says why."""


class ServiceAccountToken:
    """Tokens for one ServiceAccount, requested with the TokenRequest API and renewed early.

    A token is renewed once ``renew_fraction`` of its lifetime has passed (default 80 %), so
    a client that asks for :meth:`token` before each request never sends an expired one.
    Thread-safe: the Kubernetes client calls it from worker threads.
    """

    def __init__(
        self,
        issuer: Kube,
        namespace: str,
        name: str,
        *,
        seconds: int = 3600,
        renew_fraction: float = 0.8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.namespace = namespace
        self.name = name
        self.seconds = seconds
        self.renew_fraction = renew_fraction
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    @property
    def username(self) -> str:
        """The user the API server authenticates these tokens as."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def token(self) -> str:
        """A valid token (requests a new one when none is held or the held one is due)."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._request()
            assert self._token is not None
            return self._token

    @property
    def renew_at(self) -> datetime:
        """When the held token is renewed (clients should re-authenticate by then)."""
        with self._lock:
            return datetime.fromtimestamp(self._renew_at, UTC)

    def _request(self) -> None:
        issued = self.clock()
        response = self.issuer.request(
            "POST",
            r.SERVICE_ACCOUNTS.path(self.namespace, self.name) + "/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": self.seconds},
            },
        )
        status = response.get("status") or {}
        lifetime = float(self.seconds)
        expires = status.get("expirationTimestamp")
        if expires:
            stamp = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
            lifetime = max(0.0, stamp - issued)
        self._token = str(status["token"])
        self._renew_at = issued + lifetime * self.renew_fraction


def bearer_kube(
    base: Kube, token: Callable[[], str], *, field_manager: str, connections: int | None = None
) -> Kube:
    """A client for ``base``'s API server (same URL and CA) that sends only ``token()``.

    No client certificate or other credential of ``base`` is carried over; ``token`` is called
    before every request, so a renewing source (:class:`ServiceAccountToken`) keeps it valid.
    """
    source = base.api_client.configuration
    config = kubernetes.client.Configuration()
    config.host = source.host
    config.ssl_ca_cert = source.ssl_ca_cert
    config.verify_ssl = source.verify_ssl
    config.tls_server_name = source.tls_server_name
    config.api_key = {"authorization": f"Bearer {token()}"}

    def refresh(configuration: kubernetes.client.Configuration) -> None:
        configuration.api_key["authorization"] = f"Bearer {token()}"

    config.refresh_api_key_hook = refresh  # type: ignore[assignment]
    if connections is not None:
        config.connection_pool_maxsize = connections
    return Kube(kubernetes.client.ApiClient(config), field_manager=field_manager)


def kube_from_text(text: str, *, field_manager: str, retries: int | None = None) -> Kube:
    """A client from kubeconfig text (its current context); raises :class:`KubeconfigError`.

    Embedded certificates are written to private temporary files by the client library.
    ``retries`` overrides the HTTP library's retries of failed connections (0: a probe).
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"not valid YAML: {exc}") from exc
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            doc,
            client_configuration=config,
            persist_config=False,
            temp_file_path=tempfile.gettempdir(),
        )
    except (kubernetes.config.ConfigException, KeyError, TypeError, ValueError) as exc:
        raise KubeconfigError(f"cannot be loaded: {exc}") from exc
    if retries is not None:
        config.retries = retries
    return Kube(kubernetes.client.ApiClient(config), field_manager=field_manager)


def whoami(kube: Kube) -> str:
    """The username the API server authenticates ``kube``'s credentials as (SelfSubjectReview)."""
    review = kube.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(((review.get("status") or {}).get("userInfo") or {}).get("username", ""))
