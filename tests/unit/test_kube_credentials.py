"""Unit tests of ``kommons.kube.credentials`` (no cluster: a fake token issuer).

Behaviour matrix:

- ``ServiceAccountToken``: the first ``token()`` asks the TokenRequest API of the SA's
  ``token`` subresource for ``seconds``; later calls reuse it until ``renew_fraction`` of the
  lifetime the API server granted (``expirationTimestamp``) has passed, then renew;
  ``renew_at`` says when; ``username`` is the SA's.
- ``bearer_kube``: the base's URL and CA, none of its client certificates, and the token asked
  anew before each request (a renewed token is sent).
- ``kube_from_text``: a kubeconfig that is not YAML or not loadable -> ``KubeconfigError``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import pytest

from kommons.kube import Kube
from kommons.kube.credentials import (
    KubeconfigError,
    ServiceAccountToken,
    bearer_kube,
    kube_from_text,
)


class FakeIssuer(Kube):
    """Answers TokenRequests with numbered tokens valid for what was asked (or ``granted``)."""

    def __init__(self, clock: list[float], granted: float | None = None) -> None:
        config = kubernetes.client.Configuration()
        config.host = "https://hub:6443"
        config.ssl_ca_cert = "/tmp/ca.pem"
        config.cert_file = "/tmp/admin.pem"
        config.key_file = "/tmp/admin.key"
        super().__init__(kubernetes.client.ApiClient(config), field_manager="test")
        self.clock = clock
        self.granted = granted
        self.requests: list[tuple[str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.requests.append((path, kwargs.get("body")))
        seconds = self.granted or kwargs["body"]["spec"]["expirationSeconds"]
        expires = datetime.fromtimestamp(self.clock[0] + seconds, UTC)
        return {
            "status": {
                "token": f"token-{len(self.requests)}",
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }


def test_token_is_requested_reused_and_renewed_early() -> None:
    clock = [1_000_000.0]
    issuer = FakeIssuer(clock)
    tokens = ServiceAccountToken(
        issuer, "kommons-provider-p", "kommons-agent", seconds=1000, clock=lambda: clock[0]
    )
    assert tokens.username == "system:serviceaccount:kommons-provider-p:kommons-agent"
    assert tokens.token() == "token-1"
    path, body = issuer.requests[0]
    assert path == "/api/v1/namespaces/kommons-provider-p/serviceaccounts/kommons-agent/token"
    assert body["spec"] == {"expirationSeconds": 1000}
    assert tokens.renew_at == datetime.fromtimestamp(1_000_800, UTC)
    clock[0] += 799
    assert tokens.token() == "token-1"
    clock[0] += 1
    assert tokens.token() == "token-2"
    assert len(issuer.requests) == 2


def test_renewal_follows_the_lifetime_the_api_server_granted() -> None:
    clock = [1_000_000.0]
    issuer = FakeIssuer(clock, granted=600)  # asked 3600, granted 600
    tokens = ServiceAccountToken(issuer, "ns", "sa", seconds=3600, clock=lambda: clock[0])
    tokens.token()
    assert tokens.renew_at == datetime.fromtimestamp(1_000_480, UTC)


def test_bearer_kube_sends_only_the_current_token() -> None:
    clock = [0.0]
    base = FakeIssuer(clock)
    current = ["first"]
    kube = bearer_kube(base, lambda: current[0], field_manager="agent")
    config = kube.api_client.configuration
    assert config.host == "https://hub:6443"
    assert config.ssl_ca_cert == "/tmp/ca.pem"
    assert config.cert_file is None
    assert config.key_file is None
    assert config.auth_settings()["BearerToken"]["value"] == "Bearer first"
    current[0] = "second"
    assert config.auth_settings()["BearerToken"]["value"] == "Bearer second"
    assert kube.field_manager == "agent"


@pytest.mark.parametrize("text", ["{not yaml", "kind: Config\n", "- a list\n"])
def test_unloadable_kubeconfig_text(text: str) -> None:
    with pytest.raises(KubeconfigError):
        kube_from_text(text, field_manager="x")
