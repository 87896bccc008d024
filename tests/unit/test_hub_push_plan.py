"""Unit tests of push mode's decisions (``kommons.hub.push_plan``), no cluster.

Behaviour matrix:

``resolve`` (the provider cluster's kubeconfig from the Secret ``kubeconfigSecretRef`` names):

- no ref -> NoKubeconfigSecretRef; no Secret -> SecretNotFound naming ``.name``; a missing key
  -> SecretKeyNotFound naming ``.key``, the Secret and the keys it has; data that is not base64
  or YAML -> InvalidKubeconfig;
- a kubeconfig that is not self-contained (exec, auth-provider, tokenFile, client-certificate,
  certificate-authority as files), has no https server or a dangling context -> InvalidKubeconfig
  naming the kubeconfig field;
- a good one -> Target with its server; the fingerprint is stable, and changes with the
  kubeconfig, the ref or the offer.

``restart_delay``: doubles per crash in a row, capped.

``plan_agents``: new target -> start; same fingerprint -> nothing; changed -> stop and start;
problem or provider gone (deleted / Pull) -> stop.

``condition_patch``: sets PushAgent (keeps other conditions, observed generation); nothing when
unchanged; removes it for a provider no longer in push mode; nothing when there is none.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from kommons.api import Provider
from kommons.hub.push_plan import (
    PUSH_CONDITION,
    Problem,
    Target,
    condition_patch,
    kubeconfig_problem,
    plan_agents,
    resolve,
    restart_delay,
    running_message,
    unreachable,
)

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
REF = {"namespace": "kommons-system", "name": "prov-c-kubeconfig", "key": "kubeconfig"}


def kubeconfig(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://10.0.0.1:6443",
                    "certificate-authority-data": "Q0E=",
                },
            }
        ],
        "users": [{"name": "u", "user": user or {"token": "t0k3n"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


def provider(
    *, ref: dict[str, str] | None = REF, offer: dict[str, Any] | None = None, **status: Any
) -> Provider:
    spec: dict[str, Any] = {
        "mode": "Push",
        "region": "us-east",
        "payoutAddress": "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "pricing": {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001"},
    }
    if ref is not None:
        spec["kubeconfigSecretRef"] = ref
    if offer is not None:
        spec["offer"] = offer
    return Provider.model_validate(
        {"metadata": {"name": "prov-c", "generation": 3}, "spec": spec, "status": status}
    )


def secret(**data: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


GOOD = yaml.safe_dump(kubeconfig())


def test_problems_name_the_field_and_the_secret() -> None:
    none = resolve(provider(ref=None), None)
    assert none == Problem(
        "NoKubeconfigSecretRef", "spec.kubeconfigSecretRef: required when spec.mode is Push"
    )
    missing = resolve(provider(), None)
    assert isinstance(missing, Problem)
    assert missing.reason == "SecretNotFound"
    assert missing.message.startswith(
        "spec.kubeconfigSecretRef.name: Secret kommons-system/prov-c-kubeconfig not found"
    )
    assert resolve(provider(ref={**REF, "key": "nope"}), secret(kubeconfig=GOOD)) == Problem(
        "SecretKeyNotFound",
        "spec.kubeconfigSecretRef.key: key 'nope' not in Secret"
        " kommons-system/prov-c-kubeconfig (its keys: kubeconfig)",
    )
    garbled = resolve(provider(), {"data": {"kubeconfig": "%%%"}})
    assert isinstance(garbled, Problem)
    assert garbled.reason == "InvalidKubeconfig"
    assert "key 'kubeconfig' of Secret kommons-system/prov-c-kubeconfig" in garbled.message


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"exec": {"command": "sh"}}, "users[u].user.exec would run a command"),
        ({"auth-provider": {"name": "gcp"}}, "users[u].user.auth-provider would run a command"),
        ({"tokenFile": "/var/run/secrets/token"}, "users[u].user.tokenFile refers to a file"),
        ({"client-certificate": "/etc/c.pem"}, "users[u].user.client-certificate refers to a file"),
    ],
)
def test_kubeconfig_must_be_self_contained(user: dict[str, Any], field: str) -> None:
    result = resolve(provider(), secret(kubeconfig=yaml.safe_dump(kubeconfig(**user))))
    assert isinstance(result, Problem)
    assert result.reason == "InvalidKubeconfig"
    assert result.message.startswith(
        "spec.kubeconfigSecretRef: the kubeconfig in Secret kommons-system/prov-c-kubeconfig"
        " key 'kubeconfig': "
    )
    assert field in result.message


def test_kubeconfig_shape_problems() -> None:
    doc = kubeconfig()
    assert kubeconfig_problem(doc) is None
    assert kubeconfig_problem("text") is not None
    assert kubeconfig_problem({**doc, "current-context": "other"}) == (
        "current-context 'other' is not one of its contexts"
    )
    plain = kubeconfig()
    plain["clusters"][0]["cluster"] = {"server": "http://10.0.0.1:8080"}
    assert kubeconfig_problem(plain) == "clusters[c].cluster.server must be an https:// URL"
    filed = kubeconfig()
    filed["clusters"][0]["cluster"] = {"server": "https://a", "certificate-authority": "/ca"}
    assert "cluster.certificate-authority refers to a file on the hub" in str(
        kubeconfig_problem(filed)
    )


def test_good_kubeconfig_and_its_fingerprint() -> None:
    target = resolve(provider(), secret(kubeconfig=GOOD))
    assert isinstance(target, Target)
    assert target.server == "https://10.0.0.1:6443"
    assert target.kubeconfig == GOOD
    assert resolve(provider(), secret(kubeconfig=GOOD)) == target
    other = yaml.safe_dump(kubeconfig(token="rotated"))
    changed = [
        resolve(provider(), secret(kubeconfig=other)),
        resolve(provider(ref={**REF, "key": "k2"}), secret(k2=GOOD)),
        resolve(provider(offer={"cpu": "8"}), secret(kubeconfig=GOOD)),
    ]
    for result in changed:
        assert isinstance(result, Target)
        assert result.fingerprint != target.fingerprint


def test_plan_agents() -> None:
    a = Target("k", "https://a", "fa")
    b2 = Target("k", "https://b", "fb2")
    problem = Problem("SecretNotFound", "...")
    plan = plan_agents(
        {"a": a, "b": b2, "c": problem, "new": a},
        {"a": "fa", "b": "fb1", "c": "fc", "gone": "fg"},
    )
    assert plan.stop == ["b", "c", "gone"]
    assert plan.start == {"b": b2, "new": a}
    assert plan_agents({"a": a}, {"a": "fa"}).stop == []
    assert plan_agents({"a": a}, {"a": "fa"}).start == {}


def test_condition_patch_sets_keeps_and_removes() -> None:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "HeartbeatFresh",
        "message": "",
        "lastTransitionTime": "2026-12-01T08:00:00Z",
    }
    target = Target("k", "https://a", "f")
    wanted = ("True", "AgentRunning", running_message(target, "system:serviceaccount:x:y"))
    patch = condition_patch(provider(conditions=[ready]), wanted, now=NOW)
    assert patch is not None
    types = [c["type"] for c in patch["conditions"]]
    assert types == ["Ready", PUSH_CONDITION]
    push = patch["conditions"][1]
    assert (push["status"], push["reason"], push["observedGeneration"]) == (
        "True",
        "AgentRunning",
        3,
    )
    assert "acting on the hub as system:serviceaccount:x:y" in push["message"]

    written = provider(conditions=patch["conditions"])
    assert condition_patch(written, wanted, now=NOW) is None
    failing = ("False", "SecretNotFound", "spec.kubeconfigSecretRef.name: ...")
    flipped = condition_patch(written, failing, now=NOW)
    assert flipped is not None
    assert flipped["conditions"][1]["reason"] == "SecretNotFound"
    removed = condition_patch(written, None, now=NOW)
    assert removed == {"conditions": [patch["conditions"][0]]}
    assert condition_patch(provider(conditions=[ready]), None, now=NOW) is None


def test_unreachable_names_server_secret_and_error() -> None:
    target = Target("k", "https://10.0.0.1:6443", "f")
    problem = unreachable(provider(), target, "connection refused")
    assert problem.reason == "ClusterUnreachable"
    assert problem.message == (
        "spec.kubeconfigSecretRef: the provider cluster https://10.0.0.1:6443 (kubeconfig in"
        " Secret kommons-system/prov-c-kubeconfig key 'kubeconfig') did not answer:"
        " connection refused"
    )


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n, 5.0) for n in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert restart_delay(1000, 5.0, cap=60) == 60
