"""The bed's hardware file: parsing, validation errors, provider names and generated providers.

Behaviour matrix:
- the shipped ``providers.yaml`` gives prov-a (eu-west, CPU), prov-b (eu-central, A100),
  prov-c (us-east, L4);
- more providers than listed get generated names and hardware, fewer take a prefix;
- bad input (unknown field, bad quantity, GPUs without product, duplicates, ``hub``) is a
  BedError naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kommons_testbed.config import (
    DEFAULT_HARDWARE_FILE,
    load_hardware,
    parse_hardware,
    provider_name,
    provider_specs,
)
from kommons_testbed.processes import BedError


def test_default_file_has_the_documented_providers() -> None:
    specs = provider_specs(load_hardware(DEFAULT_HARDWARE_FILE), 3)
    assert [(s.name, s.region) for s in specs] == [
        ("prov-a", "eu-west"),
        ("prov-b", "eu-central"),
        ("prov-c", "us-east"),
    ]
    a, b, c = specs
    assert all(n.gpus == 0 and n.gpu_product is None for n in a.nodes)
    gpu_b = [n for n in b.nodes if n.gpus]
    assert gpu_b
    assert {(n.gpus, n.gpu_product) for n in gpu_b} == {(4, "nvidia-a100")}
    assert {n.gpu_product for n in c.nodes} == {"nvidia-l4"}


def test_node_names_are_provider_pool_index() -> None:
    hw = parse_hardware(
        {"providers": [{"name": "p1", "region": "r", "nodes": [{"name": "big", "count": 2}]}]}
    )
    (spec,) = provider_specs(hw, 1)
    assert [n.name for n in spec.nodes] == ["p1-big-0", "p1-big-1"]


@pytest.mark.parametrize(
    ("index", "name"),
    [(0, "prov-a"), (1, "prov-b"), (25, "prov-z"), (26, "prov-aa"), (27, "prov-ab")],
)
def test_provider_names(index: int, name: str) -> None:
    assert provider_name(index) == name


def test_extra_providers_are_generated_without_name_clashes() -> None:
    specs = provider_specs(load_hardware(), 6)
    assert [s.name for s in specs] == ["prov-a", "prov-b", "prov-c", "prov-d", "prov-e", "prov-f"]
    generated = specs[3:]
    assert all(s.nodes for s in generated)
    assert any(n.gpus for s in generated for n in s.nodes)
    assert any(not n.gpus for s in generated for n in s.nodes)


def test_fewer_providers_take_a_prefix_and_zero_is_allowed() -> None:
    hw = load_hardware()
    assert [s.name for s in provider_specs(hw, 1)] == ["prov-a"]
    assert provider_specs(hw, 0) == ()


def test_negative_count_is_refused() -> None:
    with pytest.raises(BedError, match="--providers"):
        provider_specs(load_hardware(), -1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"providers": [{"name": "p", "region": "r", "nodes": [{"name": "n", "cpu": "lots"}]}]},
         "providers.0.nodes.0.cpu"),
        ({"providers": [{"name": "p", "region": "r", "nodes": [{"name": "n", "cores": 3}]}]},
         "cores"),
        ({"providers": [{"name": "P_1", "region": "r", "nodes": [{"name": "n"}]}]},
         "providers.0.name"),
        ({"providers": [{"name": "p", "region": "r", "nodes": []}]}, "providers.0.nodes"),
        ({"providers": [{"name": "p", "region": "r", "nodes": [{"name": "n"}]}] * 2},
         "duplicate provider"),
        ({"providers": [{"name": "hub", "region": "r", "nodes": [{"name": "n"}]}]}, "reserved"),
        (["not", "a", "mapping"], "expected a mapping"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(data: object, message: str) -> None:
    with pytest.raises(BedError, match=message) as info:
        parse_hardware(data, source="hw.yaml")
    assert "hw.yaml" in str(info.value)


def test_gpus_need_a_product() -> None:
    hw = parse_hardware(
        {"providers": [{"name": "p", "region": "r", "nodes": [{"name": "g", "gpus": 2}]}]}
    )
    with pytest.raises(BedError, match="gpuProduct"):
        provider_specs(hw, 1)


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(BedError, match="cannot read"):
        load_hardware(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [\n")
    with pytest.raises(BedError, match="not valid YAML"):
        load_hardware(bad)
