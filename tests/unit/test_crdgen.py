"""The CRD generator: structural output, descriptions, CEL, columns, determinism, --check.

Behaviour matrix:

- every schema node is structural: a type (or preserve-unknown-fields), no anyOf/oneOf/allOf,
  no $ref, no title, no null default, no properties next to additionalProperties;
- every property has a description (``kubectl explain`` explains every field);
- ``x-kubernetes-preserve-unknown-fields`` appears only inside the pod template and the
  placement's metering checkpoint;
- every CEL rule has a message; every string or list a rule iterates over is bounded;
- status subresource, scale for ComputeLease, short names, category, printer columns;
- output is deterministic, YAML round-trips, committed ``crds/`` is up to date, and
  ``--check`` exits 1 with a diff when a file is stale, missing or extra;
- a model the generator cannot express structurally is refused with the field path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from kommons import crdgen
from kommons.api import KINDS, KindInfo

ROOT = Path(__file__).resolve().parents[2]
CRDS = {info.kind: crdgen.crd(info) for info in KINDS}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{*}}")


ALL_NODES = [(kind, path, node) for kind in CRDS for path, node in _walk(_schema(kind))]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        assert not {"anyOf", "oneOf", "allOf", "not", "$ref", "title", "$defs"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("default", 0) is not None, path
        assert "nullable" not in node, path


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_field_has_a_description(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        for name, sub in node.get("properties", {}).items():
            if f"{path}.{name}" == ".metadata":
                continue
            assert sub.get("description"), f"{kind}{path}.{name} has no description"


def test_preserve_unknown_fields_only_where_needed() -> None:
    open_paths = {
        (kind, path)
        for kind, path, node in ALL_NODES
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    for kind, path in open_paths:
        assert path.startswith(".spec.template.spec") or path == ".status.metering", (kind, path)
    assert ("ComputeLease", ".spec.template.spec") in open_paths
    assert ("ComputeLease", ".spec.template.spec.containers[*]") in open_paths
    assert ("ComputeLease", ".spec.resources") not in open_paths


def test_cel_rules_have_messages_and_bounded_inputs() -> None:
    rules = 0
    for kind, path, node in ALL_NODES:
        for rule in node.get("x-kubernetes-validations", []):
            rules += 1
            assert rule["message"], (kind, path)
            assert rule["rule"], (kind, path)
            if node.get("type") == "string":
                assert "maxLength" in node, (kind, path, "unbounded string under CEL")
            if node.get("type") == "array":
                assert "maxItems" in node, (kind, path, "unbounded list under CEL")
                if node["items"].get("type") == "string":
                    assert "maxLength" in node["items"], (kind, path, "unbounded items")
            if node.get("type") == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, (kind, path, "unbounded map under CEL")
    assert rules >= 25


def _rules_at(kind: str, path: str) -> list[str]:
    node = dict(ALL_NODES_BY_PATH[(kind, path)])
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


ALL_NODES_BY_PATH = {(kind, path): node for kind, path, node in ALL_NODES}


@pytest.mark.parametrize(
    ("kind", "path", "rule"),
    [
        ("ComputeLease", ".spec.poolRef", "self == oldSelf"),
        ("ComputeLease", ".spec.resources.cpu", "isQuantity(self)"),
        ("ComputeLease", ".spec.resources.memory", "isQuantity(self)"),
        ("ComputeLease", ".spec.maxPricePerHour", "self.matches(r'[1-9]')"),
        ("Provider", ".spec.payoutAddress", "self.matches(r'^0x[0-9a-fA-F]{40}$')"),
        ("ComputeLease", ".spec.template.spec", "!self.hostNetwork"),
        ("ComputeLease", ".spec.template.spec.volumes[*]", "!has(self.hostPath)"),
        (
            "ComputeLease",
            ".spec.template.spec.containers[*].securityContext",
            "!self.privileged",
        ),
        (
            "ComputeLease",
            ".spec.template.spec.initContainers[*].securityContext.capabilities",
            "NET_BIND_SERVICE",
        ),
        ("LeasePlacement", ".spec.template.spec", "!self.hostPID"),
        ("Provider", ".spec", "self.mode != 'Push' || has(self.kubeconfigSecretRef)"),
        ("SettlementEpoch", ".spec", "self.end > self.start"),
    ],
)
def test_admission_rules_are_in_place(kind: str, path: str, rule: str) -> None:
    assert any(rule in r for r in _rules_at(kind, path)), _rules_at(kind, path)


def test_openapi_bounds() -> None:
    replicas = ALL_NODES_BY_PATH[("ComputeLease", ".spec.replicas")]
    assert (replicas["minimum"], replicas["maximum"], replicas["default"]) == (0, 1000, 1)
    strategy = ALL_NODES_BY_PATH[("ProviderPool", ".spec.strategy")]
    assert strategy["enum"] == ["LowestPrice", "Spread", "BinPack", "Balanced"]
    assert ALL_NODES_BY_PATH[("Provider", ".spec.payoutAddress")]["maxLength"] == 42
    conditions = ALL_NODES_BY_PATH[("ComputeLease", ".status.conditions")]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_names_scope_subresources_and_columns() -> None:
    lease = CRDS["ComputeLease"]["spec"]
    assert lease["names"]["shortNames"] == ["cl"]
    assert lease["names"]["categories"] == ["kommons"]
    version = lease["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Ready", "Providers", "Cost", "Age"]
    provider = CRDS["Provider"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in provider if not c.get("priority")] == [
        "Region",
        "Phase",
        "Heartbeat",
        "Age",
    ]
    for info in KINDS:
        spec = CRDS[info.kind]["spec"]
        assert spec["scope"] == info.scope
        assert spec["group"] == "kommons.io"
        assert spec["versions"][0]["name"] == "v1alpha1"
        assert spec["versions"][0]["subresources"]["status"] == {}
        assert spec["names"]["categories"] == ["kommons"]


def test_output_is_deterministic_and_round_trips() -> None:
    first, second = crdgen.generate(), crdgen.generate()
    assert first == second
    for info in KINDS:
        text = first[crdgen.crd_filename(info)]
        assert text.startswith("# Generated by")
        assert yaml.safe_load(text) == CRDS[info.kind]


def test_committed_crds_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(ROOT / "crds"), "--docs", str(ROOT / "docs" / "api"), "--check"]
    assert crdgen.main(args) == 0


def test_docs_list_every_field_and_every_rule() -> None:
    for info in KINDS:
        page = crdgen.render_reference(info)
        for path, _node in _walk(_schema(info.kind)):
            if path.startswith((".spec.", ".status.")) and not path.endswith(("[*]", "{*}")):
                field = path[1:].replace("[*]", "[]").replace("{*}", "{}")
                assert f"`{field}`" in page, (info.kind, path)
    admission = crdgen.render_admission()
    rules = sum(len(n.get("x-kubernetes-validations", [])) for _, _, n in ALL_NODES)
    assert admission.count("\n| ") == rules


def test_docs_keep_the_prose_around_the_generated_section(tmp_path: Path) -> None:
    page = tmp_path / "computelease.md"
    page.write_text(f"# Intro\n\nprose\n\n{crdgen.DOCS_BEGIN}\nold\n{crdgen.DOCS_END}\n\nend\n")
    files = crdgen.generate_docs(tmp_path)
    text = files["computelease.md"]
    assert text.startswith("# Intro\n\nprose\n\n")
    assert text.endswith("\n\nend\n")
    assert "old" not in text
    assert "`spec.resources.gpu.model`" in text
    assert crdgen.main(["--out", str(tmp_path / "crds"), "--docs", str(tmp_path)]) == 0
    assert crdgen.main(["--out", str(tmp_path / "crds"), "--docs", str(tmp_path), "--check"]) == 0
    page.write_text(page.read_text().replace("GPUs per replica", "GPUs"))
    assert crdgen.main(["--out", str(tmp_path / "crds"), "--docs", str(tmp_path), "--check"]) == 1


def test_check_reports_stale_missing_and_extra_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("kommons.io_*.yaml"))) == len(KINDS)
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0
    capsys.readouterr()

    lease = tmp_path / "kommons.io_computeleases.yaml"
    lease.write_text(lease.read_text().replace("maxItems: 20", "maxItems: 21", 1))
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr()
    assert "maxItems: 21" in out.out
    assert "stale" in out.err

    assert crdgen.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "kommons.io_providers.yaml").unlink()
    (tmp_path / "kommons.io_gadgets.yaml").write_text("x: 1\n")
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert not (tmp_path / "kommons.io_gadgets.yaml").exists()
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0


def test_union_types_are_refused_with_the_field_path() -> None:
    class Bad(BaseModel):
        value: int | str = Field(description="Either.")

    with pytest.raises(crdgen.SchemaError, match=r"Bad\.value: anyOf with 2"):
        crdgen.model_schema(Bad)


def test_missing_descriptions_are_refused() -> None:
    class Undocumented(BaseModel):
        value: int

    with pytest.raises(crdgen.SchemaError, match="needs Field"):
        crdgen.model_schema(Undocumented)


def test_kind_info_is_consistent() -> None:
    for info in KINDS:
        assert isinstance(info, KindInfo)
        assert info.kind == info.resource_model.KIND
        assert info.plural == info.kind.lower() + "s"
