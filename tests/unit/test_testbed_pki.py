"""The bed's PKI, made with the real openssl.

The serving cert chains to the CA and carries the loopback SANs; each cluster gets its own
service-account key pair.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kommons_testbed.pki import make_ca, make_cluster_pki


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_serving_cert_verifies_and_has_sans(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    assert make_ca(tmp_path) == ca  # reused, not remade
    hub = make_cluster_pki(tmp_path, "hub", service_ip="10.96.0.1")
    assert "OK" in openssl("verify", "-CAfile", str(ca), str(hub.serving_cert))
    text = openssl("x509", "-in", str(hub.serving_cert), "-noout", "-text")
    for san in ("IP Address:127.0.0.1", "DNS:localhost", "IP Address:10.96.0.1"):
        assert san in text
    assert "TLS Web Server Authentication" in text
    assert oct(hub.serving_key.stat().st_mode & 0o777) == "0o600"


def test_service_account_keys_differ_per_cluster(tmp_path: Path) -> None:
    make_ca(tmp_path)
    a = make_cluster_pki(tmp_path, "prov-a", service_ip="10.96.0.1")
    b = make_cluster_pki(tmp_path, "prov-b", service_ip="10.96.0.1")
    assert a.sa_pub.read_text() != b.sa_pub.read_text()
    assert "BEGIN PUBLIC KEY" in a.sa_pub.read_text()
