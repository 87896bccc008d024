"""Unit tests of the agent's configuration file (``kommons.agent.config``).

Behaviour matrix (``load_config``):

- a complete file (camelCase keys) loads: payout address, pricing, offer, heartbeat/report
  periods, runtime class; defaults when optional keys are absent;
- ``labels`` or ``region`` (the hub admin's, set at onboarding) is refused with a message that
  names the key and says to use ``kommons onboard --label`` / ``--region``;
- every error is a ``ConfigError`` whose message names the file, and for invalid content
  the field path: missing file, a directory, a file that is not UTF-8 text, invalid YAML,
  an empty file (every required field missing), a list instead of a mapping, a missing or
  nested field, a non-positive period, an unknown key, a bad quantity in the offer;
- storage tiers: each tier's class and capacity load (``storage_classes`` maps tier to
  class); two tiers on one class, a missing class, a non-positive capacity and a tier name
  that is not a label value are refused naming the field;
- ``expose`` (how public ports are published): ``None`` by default; Ingress needs a domain,
  NodePort an address (DNS name, IPv4 or IPv6); an unknown mode, a malformed domain or
  address, a scheme other than http/https or an unknown key is refused naming the field.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kommons.agent.config import AgentConfig, ConfigError, load_config

VALID = """\
payoutAddress: "0x00000000000000000000000000000000000000aa"
pricing:
  cpuCoreHour: "0.01"
  memoryGiBHour: "0.002"
  gpuHour:
    NVIDIA-A100: "1.5"
offer:
  cpu: "8"
  memory: 32Gi
  gpus: 2
heartbeatSeconds: 2
reportSeconds: 10
runtimeClassName: gvisor
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_complete_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert isinstance(config, AgentConfig)
    assert config.payout_address.endswith("aa")
    assert Decimal(config.pricing.cpu_core_hour) == Decimal("0.01")
    assert Decimal(config.pricing.memory_gib_hour) == Decimal("0.002")
    assert config.offer is not None
    assert config.offer.gpus == 2
    assert config.heartbeat_seconds == 2.0
    assert config.report_seconds == 10.0
    assert config.runtime_class_name == "gvisor"


def test_optional_keys_have_defaults(tmp_path: Path) -> None:
    minimal = "\n".join(VALID.splitlines()[:6])
    config = load_config(write(tmp_path, minimal))
    assert config.offer is None
    assert config.heartbeat_seconds == 5.0
    assert config.report_seconds == 5.0
    assert config.runtime_class_name is None


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"cannot read agent config .*nope\.yaml"):
        load_config(path)


def test_directory_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read agent config"):
        load_config(tmp_path)


def test_binary_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_bytes(b"region: \xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"agent config .*agent\.yaml is not UTF-8 text"):
        load_config(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "region: [eu\n")
    with pytest.raises(ConfigError, match=r"agent config .*agent\.yaml is not valid YAML"):
        load_config(path)


def test_empty_file_lists_every_required_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""))
    message = str(info.value)
    assert str(tmp_path / "agent.yaml") in message
    for field in ("payoutAddress", "pricing"):
        assert f"{field}: Field required" in message


def test_list_instead_of_mapping_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.yaml is invalid"):
        load_config(write(tmp_path, "- region\n"))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('payoutAddress: "0x00000000000000000000000000000000000000aa"\n', "", "payoutAddress"),
        ('  cpuCoreHour: "0.01"\n', "", "pricing.cpuCoreHour"),
        ("heartbeatSeconds: 2\n", "heartbeatSeconds: 0\n", "heartbeatSeconds"),
        ("reportSeconds: 10\n", "reportSeconds: -1\n", "reportSeconds"),
        ("  memory: 32Gi\n", "  memory: lots\n", "offer.memory"),
        ("  gpus: 2\n", "  gpus: -1\n", "offer.gpus"),
        ("heartbeatSeconds: 2\n", "heartbeatSeconds: 2\nregoin: typo\n", "regoin"),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{field}: " in message


@pytest.mark.parametrize(
    ("extra", "key", "flag"),
    [
        ("labels:\n  kommons.io/tier: gold\n", "labels", "--label KEY=VALUE"),
        ("region: eu-west\n", "region", "--region REGION"),
    ],
)
def test_identity_keys_are_refused_with_advice(
    tmp_path: Path, extra: str, key: str, flag: str
) -> None:
    path = write(tmp_path, VALID + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{key}: a provider's {key}" in message
    assert "set by the hub admin at onboarding" in message
    assert f"kommons onboard NAME {flag}" in message
    assert f"remove `{key}`" in message


STORAGE = (
    VALID
    + """\
storage:
  fast:
    storageClassName: local-nvme
    capacity: 500Gi
  slow:
    storageClassName: hdd
    capacity: 2Ti
"""
)


def test_storage_tiers_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, STORAGE))
    assert config.storage_classes() == {"fast": "local-nvme", "slow": "hdd"}
    assert config.storage is not None
    assert str(config.storage["slow"].capacity) == "2Ti"
    assert load_config(write(tmp_path, VALID)).storage_classes() == {}


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("storageClassName: hdd", "storageClassName: local-nvme", "both use storage class"),
        ("    storageClassName: hdd\n", "", "storage.slow.storageClassName"),
        ("capacity: 2Ti", "capacity: 0Gi", "storage.slow.capacity"),
        ("  slow:", "  s low:", "storage.s low"),
    ],
    ids=["shared-class", "no-class", "zero", "tier-name"],
)
def test_bad_storage_tiers_are_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(write(tmp_path, STORAGE.replace(old, new)))


MINIMAL = """\
payoutAddress: "0x00000000000000000000000000000000000000aa"
pricing: {cpuCoreHour: "0.01", memoryGiBHour: "0.002"}
"""


def test_expose_defaults_to_publishing_nothing(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).expose.mode == "None"


@pytest.mark.parametrize(
    ("expose", "mode"),
    [
        ("{mode: Ingress, domain: apps.example.org, ingressClassName: nginx}", "Ingress"),
        ("{mode: NodePort, address: 203.0.113.7}", "NodePort"),
        ("{mode: NodePort, address: nodes.example.org}", "NodePort"),
        ("{mode: NodePort, address: '2001:db8::7'}", "NodePort"),
        ("{mode: LoadBalancer}", "LoadBalancer"),
    ],
)
def test_expose_modes_load(tmp_path: Path, expose: str, mode: str) -> None:
    config = load_config(write(tmp_path, MINIMAL + f"expose: {expose}\n"))
    assert config.expose.mode == mode


@pytest.mark.parametrize(
    ("expose", "named"),
    [
        ("{mode: Ingress}", "expose.domain is required with mode Ingress"),
        ("{mode: NodePort}", "expose.address is required with mode NodePort"),
        ("{mode: Route}", "expose.mode"),
        ("{mode: Ingress, domain: Apps_Example}", "expose.domain"),
        ("{mode: NodePort, address: 'http://x'}", "expose.address"),
        ("{mode: Ingress, domain: a.example, scheme: ftp}", "expose.scheme"),
        ("{mode: Ingress, domain: a.example, hosts: [x]}", "expose.hosts"),
    ],
)
def test_bad_expose_is_refused_naming_the_field(tmp_path: Path, expose: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(write(tmp_path, MINIMAL + f"expose: {expose}\n"))
