"""Kubeconfig rendering and the token file: what kubectl and the apiserver read.

Behaviour matrix: one context per entry with embedded CA and token; current context defaults
to the first and must exist; duplicate names refused; token file lines carry user, uid and
quoted groups.
"""

from __future__ import annotations

import base64

import pytest
import yaml

from kommons_testbed.cluster import USERS, token_file_text
from kommons_testbed.kubeconfig import KubeconfigEntry, render

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_single_cluster() -> None:
    doc = yaml.safe_load(render([KubeconfigEntry("hub", "https://127.0.0.1:1234", CA, "tok")]))
    assert doc["current-context"] == "hub"
    (cluster,) = doc["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:1234"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == CA
    assert doc["users"] == [{"name": "hub", "user": {"token": "tok"}}]
    assert doc["contexts"] == [{"name": "hub", "context": {"cluster": "hub", "user": "hub"}}]


def test_merged_with_current_and_namespace() -> None:
    entries = [
        KubeconfigEntry("hub", "https://127.0.0.1:1", CA, "a"),
        KubeconfigEntry("prov-a", "https://127.0.0.1:2", CA, "b", namespace="ns"),
    ]
    doc = yaml.safe_load(render(entries, current="prov-a"))
    assert doc["current-context"] == "prov-a"
    assert [c["name"] for c in doc["contexts"]] == ["hub", "prov-a"]
    assert doc["contexts"][1]["context"]["namespace"] == "ns"


@pytest.mark.parametrize(
    ("entries", "current", "message"),
    [
        ([], None, "at least one"),
        ([KubeconfigEntry("a", "s", CA, "t")] * 2, None, "duplicate"),
        ([KubeconfigEntry("a", "s", CA, "t")], "b", "not one of"),
    ],
)
def test_refused(entries: list[KubeconfigEntry], current: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(entries, current=current)


def test_token_file_lines() -> None:
    tokens = {key: f"t-{key}" for key in USERS}
    lines = token_file_text(tokens).splitlines()
    assert 't-admin,kommons-testbed-admin,kommons-testbed-admin,"system:masters"' in lines
    cm = "t-controller-manager,system:kube-controller-manager,system:kube-controller-manager"
    assert cm in lines
    assert len(lines) == len(USERS)
