"""The Helm chart ``helm/kommons`` through the real ``helm`` (lint, template, schema).

Behaviour matrix:

- ``helm lint`` passes for both roles (the provider role with its required values);
- role hub renders the six CRDs (keep annotation unless ``crds.keep=false``; none with
  ``crds.enabled=false``), the trust boundary exactly as ``kommons install-policies`` applies
  it, the hub's RBAC and Deployment, and the monitoring objects only when enabled;
- role provider renders the agent (RBAC, config, Deployment) and nothing of the hub: no CRD,
  no admission policy, no tenant role;
- the agent config the chart renders is one the agent accepts (``AgentConfig``), with the values
  given (storage tiers and a Utilization price policy included); every flag the Deployments
  pass is one ``kommons hub``/``kommons agent`` knows; the agent may manage StatefulSets
  (storage leases);
- the PrometheusRule carries the promtool-tested rules with the configured runbook base URL;
  the dashboard ConfigMap carries the dashboard JSON, labelled for the Grafana sidecar;
- a typo, an unknown role, a malformed address, a storage tier without its class, a price
  multiplier above 10 or with more than 4 decimals, or a missing required value is refused by
  ``helm`` naming the key;
- ``provider.expose`` reaches the agent config (mode, domain, class, scheme, address; mode
  ``None`` by default) and the agent may manage Services and Ingresses (endpoints); an
  unknown mode or a malformed address is refused naming the key;
- the hub's RBAC grants no Secrets, pods or RBAC writes (push mode adds exactly Secret ``get``
  in the release namespace and agent token requests); the agent's grants nothing on Secrets.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kommons.agent.config import AgentConfig
from kommons.cli import app
from kommons.trust.policies import hub_policy_objects
from kommons_testbed import tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kommons"
KUBE_VERSION = "1.36.0"
PAYOUT = "0x" + "ab" * 20
RUNBOOKS = "https://github.com/kommons/kommons/blob/main/docs/runbooks/"
PROVIDER = [
    "--set",
    "role=provider",
    "--set",
    "provider.name=prov-a",
    "--set",
    "provider.hubKubeconfigSecret.name=hub-kubeconfig",
    "--set",
    f"provider.payoutAddress={PAYOUT}",
]
JSON = dict[str, Any]


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.binary("helm")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _template(*args: str) -> list[JSON]:
    rendered = _helm(
        "template",
        "kommons",
        str(CHART),
        "-n",
        "kommons-system",
        "--kube-version",
        KUBE_VERSION,
        *args,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def _refusal(*args: str) -> str:
    rendered = _helm("template", "kommons", str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert rendered.returncode != 0, "helm rendered values it should refuse"
    return rendered.stderr


def _kinds(objects: list[JSON]) -> dict[str, list[JSON]]:
    by_kind: dict[str, list[JSON]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    return by_kind


def _one(objects: list[JSON], kind: str) -> JSON:
    (found,) = _kinds(objects)[kind]
    return found


def _rules(role: JSON) -> Iterator[tuple[str, str, str]]:
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    yield group, resource, verb


def _flags(command: str) -> set[str]:
    shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    return set(re.findall(r"--[a-z][a-z-]+", shown.output))


def _args(deployment: JSON) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


@pytest.mark.parametrize("role_args", [[], PROVIDER], ids=["hub", "provider"])
def test_helm_lint_passes(role_args: list[str]) -> None:
    linted = _helm("lint", str(CHART), "--strict", *role_args)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


def test_the_hub_role_installs_the_market_and_the_trust_boundary() -> None:
    objects = _template()
    kinds = _kinds(objects)
    crds = kinds["CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(
        p.name.removeprefix("kommons.io_").removesuffix(".yaml") + ".kommons.io"
        for p in (REPO / "crds").glob("kommons.io_*.yaml")
    )
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    shipped = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for expected in hub_policy_objects():
        got = shipped[(expected["kind"], expected["metadata"]["name"])]
        assert got.get("spec") == expected.get("spec")
        assert got.get("rules") == expected.get("rules")
        assert expected["metadata"]["labels"].items() <= got["metadata"]["labels"].items()
    args = _args(_one(objects, "Deployment"))
    assert args[0] == "hub"
    assert "--leader-elect" in args
    assert {a.split("=")[0] for a in args[1:]} <= _flags("hub")
    assert "ServiceMonitor" not in kinds
    assert "PrometheusRule" not in kinds
    assert "ConfigMap" not in kinds
    assert "Service" in kinds


def test_crd_toggles() -> None:
    kept = _kinds(_template("--set", "crds.keep=false"))["CustomResourceDefinition"]
    assert len(kept) == 6
    assert all(
        "helm.sh/resource-policy" not in (c["metadata"].get("annotations") or {}) for c in kept
    )
    assert "CustomResourceDefinition" not in _kinds(_template("--set", "crds.enabled=false"))


def test_the_provider_role_installs_only_the_agent() -> None:
    objects = _template(
        *PROVIDER,
        "--set",
        "provider.pricing.cpuCoreHour=0.04",
        "--set",
        "provider.offer.cpu=8",
        "--set",
        "provider.offer.gpus=2",
        "--set",
        "provider.pricing.gpuHour.a100=1.5",
        "--set",
        "provider.runtimeClassName=gvisor",
        "--set",
        "provider.pricing.storageGiBHour.fast=0.0002",
        "--set",
        "provider.storage.fast.storageClassName=local-nvme",
        "--set",
        "provider.storage.fast.capacity=500Gi",
        "--set",
        "provider.pricing.policy.type=Utilization",
        "--set",
        "provider.pricing.policy.maxMultiplier=2.5",
    )
    kinds = _kinds(objects)
    assert set(kinds) == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    }
    config = AgentConfig.model_validate(
        yaml.safe_load(_one(objects, "ConfigMap")["data"]["agent.yaml"])
    )
    assert config.payout_address == PAYOUT
    assert str(config.pricing.cpu_core_hour) == "0.04"
    assert config.offer is not None
    assert str(config.offer.cpu) == "8"
    assert config.offer.gpus == 2
    assert config.pricing.gpu_hour is not None
    assert {k: str(v) for k, v in dict(config.pricing.gpu_hour).items()} == {"a100": "1.5"}
    assert config.runtime_class_name == "gvisor"
    assert config.storage is not None
    assert config.storage_classes() == {"fast": "local-nvme"}
    assert str(config.storage["fast"].capacity) == "500Gi"
    assert config.pricing.storage_gib_hour is not None
    assert {k: str(v) for k, v in dict(config.pricing.storage_gib_hour).items()} == {
        "fast": "0.0002"
    }
    assert config.pricing.policy is not None
    assert (config.pricing.policy.type, config.pricing.policy.max_multiplier) == (
        "Utilization",
        "2.5",
    )
    deployment = _one(objects, "Deployment")
    args = _args(deployment)
    assert args[0] == "agent"
    assert "--provider=prov-a" in args
    assert {a.split("=")[0] for a in args[1:]} <= _flags("agent")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["hub-kubeconfig"]["secret"]["secretName"] == "hub-kubeconfig"
    grants = set(_rules(_one(objects, "ClusterRole")))
    assert not {g for g in grants if g[1] in {"pods/exec", "clusterroles", "roles"}}
    # configFrom: the lease's Secrets are written and removed, never read or listed
    assert {g for g in grants if g[1] == "secrets"} == {
        ("", "secrets", verb) for verb in ("create", "patch", "delete", "deletecollection")
    }
    assert ("", "pods", "create") not in grants
    assert ("apps", "statefulsets", "create") in grants  # the workload of a lease with storage
    assert ("", "persistentvolumeclaims", "delete") in grants  # claims of removed replicas
    assert ("", "persistentvolumeclaims", "create") not in grants  # the StatefulSet makes them


def test_the_provider_publishes_as_its_expose_values_say() -> None:
    plain = _template(*PROVIDER)
    config = AgentConfig.model_validate(
        yaml.safe_load(_one(plain, "ConfigMap")["data"]["agent.yaml"])
    )
    assert config.expose.mode == "None"
    grants = set(_rules(_one(plain, "ClusterRole")))
    for verb in ("get", "create", "patch", "delete"):
        assert ("", "services", verb) in grants
        assert ("networking.k8s.io", "ingresses", verb) in grants
    ingress = _template(
        *PROVIDER,
        "--set",
        "provider.expose.mode=Ingress",
        "--set",
        "provider.expose.domain=apps.prov-a.example.org",
        "--set",
        "provider.expose.ingressClassName=nginx",
        "--set",
        "provider.expose.scheme=http",
    )
    config = AgentConfig.model_validate(
        yaml.safe_load(_one(ingress, "ConfigMap")["data"]["agent.yaml"])
    )
    assert (config.expose.mode, config.expose.domain) == ("Ingress", "apps.prov-a.example.org")
    assert (config.expose.ingress_class_name, config.expose.scheme) == ("nginx", "http")
    nodeport = _template(
        *PROVIDER,
        "--set",
        "provider.expose.mode=NodePort",
        "--set",
        "provider.expose.address=203.0.113.7",
    )
    config = AgentConfig.model_validate(
        yaml.safe_load(_one(nodeport, "ConfigMap")["data"]["agent.yaml"])
    )
    assert (config.expose.mode, config.expose.address) == ("NodePort", "203.0.113.7")
    assert "/provider/expose/mode" in _refusal(*PROVIDER, "--set", "provider.expose.mode=Route")
    bad_address = _refusal(*PROVIDER, "--set", "provider.expose.address=http://203.0.113.7")
    assert "/provider/expose/address" in bad_address


def test_monitoring_objects_carry_the_checked_rules_and_the_dashboard() -> None:
    base = "https://docs.example.org/kommons/v0.1/runbooks/"
    objects = _template(
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        f"monitoring.runbookBaseURL={base}",
    )
    rule = _one(objects, "PrometheusRule")
    plain = yaml.safe_load((CHART / "files" / "kommons-alerts.yaml").read_text())
    shipped = rule["spec"]["groups"]
    for group in shipped:
        for alert in group["rules"]:
            assert alert["annotations"]["runbook_url"] == f"{base}{alert['alert']}.md"
            alert["annotations"]["runbook_url"] = RUNBOOKS + f"{alert['alert']}.md"
    assert shipped == plain["groups"]  # Prometheus' own {{ $labels }} templates survive Helm
    dashboard = _one(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["kommons-dashboard.json"]) == json.loads(
        (CHART / "files" / "kommons-dashboard.json").read_text()
    )
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_hub_rbac_is_narrow_and_push_mode_adds_only_what_it_needs() -> None:
    def grants(*args: str) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
        objects = _template(*args)
        cluster = next(
            o for o in _kinds(objects)["ClusterRole"] if o["metadata"]["name"] == "kommons-hub"
        )
        return set(_rules(cluster)), set(_rules(_one(objects, "Role")))

    cluster, local = grants()
    forbidden = {
        "pods",
        "clusterroles",
        "roles",
        "rolebindings",
        "serviceaccounts/token",
    }
    assert not {g for g in cluster | local if g[1] in forbidden}
    assert ("kommons.io", "computeleases", "create") not in cluster  # tenants create leases
    # configFrom/imagePullSecrets: read tenants' Secrets, write copies; never update or delete
    assert {g for g in cluster | local if g[1] == "secrets"} == {
        ("", "secrets", verb) for verb in ("get", "list", "watch", "create", "patch")
    }
    pushed_cluster, pushed_local = grants("--set", "hub.pushMode.enabled=true")
    assert pushed_cluster - cluster == {("", "serviceaccounts/token", "create")}
    assert pushed_local - local == {("", "secrets", "get")}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "hub.replicaz=2"], "additional properties 'replicaz' not allowed"),
        (["--set", "role=worker"], "/role"),
        ([*PROVIDER[:-2], "--set", "provider.payoutAddress=0x12"], "/provider/payoutAddress"),
        ([*PROVIDER, "--set", "provider.region=eu-west"], "'region' not allowed"),
        (["--set", "monitoring.runbookBaseURL=docs/runbooks"], "/monitoring/runbookBaseURL"),
        (
            [*PROVIDER, "--set", "provider.storage.fast.capacity=10Gi"],
            "/provider/storage/fast",
        ),
        (
            [*PROVIDER, "--set", "provider.pricing.policy.maxMultiplier=25"],
            "/provider/pricing/policy/maxMultiplier",
        ),
        (
            [*PROVIDER, "--set-string", "provider.pricing.policy.maxMultiplier=1.00001"],
            "/provider/pricing/policy/maxMultiplier",
        ),
        (PROVIDER[:2], "provider.payoutAddress is required"),
        (
            [*PROVIDER[:4], "--set", f"provider.payoutAddress={PAYOUT}"],
            "provider.hubKubeconfigSecret.name is required",
        ),
        (
            ["--set", "hub.chain.rpcURL=http://chain:8545"],
            "hub.chain.settlementAddress is required",
        ),
    ],
    ids=[
        "typo",
        "role",
        "address",
        "region",
        "url",
        "storage",
        "multiplier",
        "multiplier-decimals",
        "payout",
        "secret",
        "settlement",
    ],
)
def test_wrong_values_are_refused_naming_the_key(args: list[str], named: str) -> None:
    assert named in _refusal(*args)
