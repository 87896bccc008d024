"""Unit tests of onboarding in push mode (``kommons onboard --mode Push --kubeconfig-secret``).

Behaviour matrix:

- ``parse_secret_ref``: ``NS/NAME`` -> key ``kubeconfig``; ``NS/NAME:KEY``; no slash, empty
  part, or an invalid namespace -> OnboardingError naming the option.
- ``Onboarding``: Push without a Secret, or Pull with one -> OnboardingError.
- ``provider_object``: Push -> ``mode: Push`` and the ref; Pull -> ``mode: Pull`` and no ref.
"""

from __future__ import annotations

import pytest

from kommons.api.common import SecretKeyRef
from kommons.hub.onboarding import (
    Onboarding,
    OnboardingError,
    parse_secret_ref,
    provider_object,
)

ADDRESS = "0x00000000000000000000000000000000000000aa"


def test_parse_secret_ref() -> None:
    assert parse_secret_ref("kommons-system/prov-c") == SecretKeyRef(
        namespace="kommons-system", name="prov-c", key="kubeconfig"
    )
    assert parse_secret_ref("ns/name:admin.conf").key == "admin.conf"
    for bad in ("name-only", "/name", "ns/", "Bad_NS/name"):
        with pytest.raises(OnboardingError, match="--kubeconfig-secret"):
            parse_secret_ref(bad)


def test_push_needs_a_secret_and_pull_refuses_one() -> None:
    ref = parse_secret_ref("kommons-system/prov-c")
    with pytest.raises(OnboardingError, match="required with --mode Push"):
        Onboarding("prov-c", "us-east", ADDRESS, mode="Push")
    with pytest.raises(OnboardingError, match="only for --mode Push"):
        Onboarding("prov-c", "us-east", ADDRESS, kubeconfig_secret=ref)


def test_provider_object_carries_mode_and_ref() -> None:
    ref = parse_secret_ref("kommons-system/prov-c:kc")
    push = provider_object(
        Onboarding("prov-c", "us-east", ADDRESS, mode="Push", kubeconfig_secret=ref)
    )
    assert push["spec"]["mode"] == "Push"
    assert push["spec"]["kubeconfigSecretRef"] == {
        "namespace": "kommons-system",
        "name": "prov-c",
        "key": "kc",
    }
    pull = provider_object(Onboarding("prov-c", "us-east", ADDRESS))
    assert pull["spec"]["mode"] == "Pull"
    assert "kubeconfigSecretRef" not in pull["spec"]
