"""The bed's certificates and keys, made with the ``openssl`` command line.

One CA for the whole bed (``pki/ca.crt``); per cluster a serving certificate for its API server
(SAN ``127.0.0.1``, ``localhost`` and the in-cluster ``kubernetes`` names) and its own
service-account signing key pair, so a token of one cluster is worthless in another. Keys are
ECDSA P-256 (generated in milliseconds, unlike RSA).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kommons_testbed.processes import BedError

_DAYS = "3650"


@dataclass(frozen=True)
class ClusterPki:
    """The files one cluster's control plane uses."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    """Private key signing service-account tokens (apiserver and controller-manager)."""
    sa_pub: Path
    """Public key verifying them."""


def _openssl(args: Sequence[str], *, cwd: Path) -> None:
    try:
        result = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BedError("openssl not found on PATH; install it (apt-get install openssl)") from None
    if result.returncode != 0:
        raise BedError(f"openssl {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")


def _genkey(name: str, *, cwd: Path) -> None:
    """Make an ECDSA P-256 key (fast to generate; ES256 for service-account tokens)."""
    _openssl(
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name],
        cwd=cwd,
    )


def make_ca(pki_dir: Path) -> Path:
    """Create the bed's CA (``ca.key``, ``ca.crt``) in ``pki_dir`` unless it exists."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    cert = pki_dir / "ca.crt"
    if cert.exists():
        return cert
    _genkey("ca.key", cwd=pki_dir)
    _openssl(
        [
            "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-sha256", "-days", _DAYS,
            "-subj", "/CN=kommons-testbed-ca", "-out", "ca.crt",
        ],
        cwd=pki_dir,
    )  # fmt: skip
    (pki_dir / "ca.key").chmod(0o600)
    return cert


def serving_sans(extra_ips: Sequence[str] = ()) -> list[str]:
    """Return the subjectAltName entries of an API server's serving certificate."""
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    ips = ["127.0.0.1", *extra_ips]
    return [f"DNS:{d}" for d in dns] + [f"IP:{ip}" for ip in ips]


def make_cluster_pki(pki_dir: Path, cluster: str, *, service_ip: str) -> ClusterPki:
    """Create ``pki_dir/<cluster>/`` with a CA-signed serving cert and a service-account key pair.

    Args:
        pki_dir: the bed's ``pki/`` directory; :func:`make_ca` must have run.
        cluster: ``hub`` or a provider name (the certificate's CN).
        service_ip: first IP of the cluster's service range (the ``kubernetes`` Service).
    """
    ca_cert, ca_key = pki_dir / "ca.crt", pki_dir / "ca.key"
    if not ca_key.exists():
        raise BedError(f"{ca_key} missing: make the bed's CA first")
    out = pki_dir / cluster
    out.mkdir(parents=True, exist_ok=True)
    ext = out / "serving.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(serving_sans([service_ip]))}\n"
    )
    _genkey("serving.key", cwd=out)
    _openssl(
        ["req", "-new", "-key", "serving.key", "-subj", f"/CN=kube-apiserver-{cluster}",
         "-out", "serving.csr"],
        cwd=out,
    )  # fmt: skip
    _openssl(
        [
            "x509", "-req", "-in", "serving.csr", "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-set_serial", str(secrets.randbits(63)), "-days", _DAYS, "-sha256",
            "-extfile", "serving.ext", "-out", "serving.crt",
        ],
        cwd=out,
    )  # fmt: skip
    _genkey("sa.key", cwd=out)
    _openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], cwd=out)
    for key in ("serving.key", "sa.key"):
        (out / key).chmod(0o600)
    return ClusterPki(
        ca_cert=ca_cert,
        serving_cert=out / "serving.crt",
        serving_key=out / "serving.key",
        sa_key=out / "sa.key",
        sa_pub=out / "sa.pub",
    )
