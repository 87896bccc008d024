"""Render token kubeconfigs for the bed's clusters (pure: dicts in, YAML text out)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class KubeconfigEntry:
    """One cluster + user + context of a kubeconfig."""

    context: str
    """Context name; also used for the cluster and user entries."""
    server: str
    ca_pem: bytes
    token: str
    namespace: str | None = None


def render(entries: Sequence[KubeconfigEntry], *, current: str | None = None) -> str:
    """Return a kubeconfig with one context per entry, ``current`` (default: first) selected.

    The CA is embedded (``certificate-authority-data``) so the file works when copied.
    """
    if not entries:
        raise ValueError("a kubeconfig needs at least one entry")
    names = [e.context for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate context names in {names}")
    if current is not None and current not in names:
        raise ValueError(f"current context {current!r} is not one of {names}")
    doc: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": e.context,
                "cluster": {
                    "server": e.server,
                    "certificate-authority-data": base64.b64encode(e.ca_pem).decode(),
                },
            }
            for e in entries
        ],
        "users": [{"name": e.context, "user": {"token": e.token}} for e in entries],
        "contexts": [
            {
                "name": e.context,
                "context": {
                    "cluster": e.context,
                    "user": e.context,
                    **({"namespace": e.namespace} if e.namespace else {}),
                },
            }
            for e in entries
        ],
        "current-context": current or names[0],
    }
    return yaml.safe_dump(doc, sort_keys=False)
