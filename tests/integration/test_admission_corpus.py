"""The generated CRDs on the real hub API server: admission without a webhook.

Behaviour matrix:

- every CRD in ``crds/`` is accepted by the API server (structural, CEL compiles within the
  cost budget) and becomes Established;
- every manifest in ``tests/fixtures/bad-manifests/`` is refused with 422 Invalid and a message
  naming the field (``# expect-field:``) and saying why (``# expect-message:``), among them one
  per kind of pod-template field the agent would otherwise drop or override (service account,
  token automount, tolerations, priority class, runtime class, scheduler, host users, container
  resources, other volume types, projected tokens, grace period, active deadline, restart
  policy, emptyDir size, root group, sysctls, pod affinity, Kommons labels; the exhaustive
  check is ``test_template_parity.py``); a manifest with
  ``# create-first: <merge patch>`` is created with the patch applied first and then updated
  to the refused form (transition rules such as the immutable ``poolRef``);
- every Kommons object in ``examples/`` is accepted (server-side dry-run create);
- ``kubectl get cl`` shows the printer columns, ``kubectl get kommons`` lists the category,
  ``kubectl explain computelease.spec.resources.gpu`` explains the field, short names resolve.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from kommons.api import GROUP, VERSION, kind_info
from kommons_testbed.bed import Testbed as Bed
from kommons_testbed.tools import binary

pytestmark = [pytest.mark.bed]

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
BAD = ROOT / "tests" / "fixtures" / "bad-manifests"
EXAMPLES = ROOT / "examples"
BAD_FILES = sorted(BAD.glob("*.yaml"))
_HEADER = re.compile(r"^#\s*(?P<key>[a-z-]+):\s*(?P<value>.*)$")


def _expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        match = _HEADER.match(line)
        if match:
            out[match["key"]] = match["value"].strip()
    return out


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def crds_installed(hub_api: client.ApiClient) -> None:
    """Create or update every CRD of ``crds/`` and wait until all are Established."""
    ext = client.ApiextensionsV1Api(hub_api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        names.append(name)
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                pytest.fail(f"{path.name} refused by the API server: {exc.body}", pytrace=False)
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            try:
                ext.replace_custom_resource_definition(name, body)
            except ApiException as exc2:
                pytest.fail(f"{path.name} refused on update: {exc2.body}", pytrace=False)
    deadline = time.monotonic() + 60
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            crd = ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True" and conds.get("NamesAccepted") == "True":
                pending.discard(name)
        time.sleep(0.2)
    assert not pending, f"CRDs not Established within 60s: {sorted(pending)}"


@pytest.fixture(scope="module")
def namespace(hub_api: client.ApiClient, crds_installed: None) -> Iterator[str]:
    """A namespace of its own for the namespaced objects of this module."""
    core = client.CoreV1Api(hub_api)
    name = f"admission-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"kommons.io/tenant": name}}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def custom(hub_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(hub_api)


def _create(
    api: client.CustomObjectsApi, body: dict[str, Any], namespace: str, *, dry_run: bool
) -> dict[str, Any]:
    info = kind_info(body["kind"])
    kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
    if info.namespaced:
        body = _merge(body, {"metadata": {"namespace": namespace}})
        result = api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, info.plural, body, **kwargs
        )
    else:
        result = api.create_cluster_custom_object(GROUP, VERSION, info.plural, body, **kwargs)
    assert isinstance(result, dict)
    return result


def _delete(api: client.CustomObjectsApi, body: dict[str, Any], namespace: str) -> None:
    info = kind_info(body["kind"])
    name = body["metadata"]["name"]
    try:
        if info.namespaced:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, info.plural, name)
        else:
            api.delete_cluster_custom_object(GROUP, VERSION, info.plural, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _refusal(
    api: client.CustomObjectsApi, path: Path, namespace: str
) -> tuple[int, dict[str, Any]]:
    """Submit the bad manifest; return the status code and the Status body of the refusal."""
    body = yaml.safe_load(path.read_text())
    expect = _expectations(path)
    # unique names: cluster-scoped objects share the hub with other tests
    body["metadata"]["name"] = f"{body['metadata']['name']}-{uuid.uuid4().hex[:6]}"
    try:
        if "create-first" in expect:
            original = _merge(body, json.loads(expect["create-first"]))
            created = _create(api, original, namespace, dry_run=False)
            try:
                _replace(api, body, created, namespace)
            finally:
                _delete(api, original, namespace)
        else:
            _create(api, body, namespace, dry_run=True)
    except ApiException as exc:
        return exc.status, json.loads(exc.body)
    return 201, {}


def _replace(
    api: client.CustomObjectsApi, body: dict[str, Any], created: dict[str, Any], namespace: str
) -> None:
    """Replace ``created`` with ``body``, retried on a conflict (409).

    A conflict only says that someone else wrote the object meanwhile (the hub of a stack left
    by an earlier test module writes its status and finalizer), not what admission thinks.
    """
    info = kind_info(body["kind"])
    name = body["metadata"]["name"]
    version = created["metadata"]["resourceVersion"]
    for _ in range(20):
        body["metadata"]["resourceVersion"] = version
        try:
            if info.namespaced:
                body["metadata"]["namespace"] = namespace
                api.replace_namespaced_custom_object(
                    GROUP, VERSION, namespace, info.plural, name, body
                )
            else:
                api.replace_cluster_custom_object(GROUP, VERSION, info.plural, name, body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        if info.namespaced:
            current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, info.plural, name)
        else:
            current = api.get_cluster_custom_object(GROUP, VERSION, info.plural, name)
        version = current["metadata"]["resourceVersion"]
    raise AssertionError(f"{name}: still conflicting after 20 attempts")


def test_corpus_is_large_enough() -> None:
    assert len(BAD_FILES) >= 65
    for path in BAD_FILES:
        assert "expect-field" in _expectations(path), f"{path.name} has no # expect-field:"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_manifest_is_refused_naming_the_field(
    custom: client.CustomObjectsApi, namespace: str, path: Path
) -> None:
    expect = _expectations(path)
    status, body = _refusal(custom, path, namespace)
    assert status == 422, f"{path.name} was not refused (HTTP {status})"
    assert body.get("reason") == "Invalid", body
    message = body["message"]
    causes = [c.get("field", "") for c in body.get("details", {}).get("causes", [])]
    assert expect["expect-field"] in message, f"field not named in: {message}"
    assert any(c.startswith(expect["expect-field"]) for c in causes), (
        f"no cause for {expect['expect-field']}: {causes}"
    )
    if "expect-message" in expect:
        assert expect["expect-message"] in message, f"reason not given in: {message}"


def _example_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("apiVersion", "").startswith(f"{GROUP}/"):
                docs.append((f"{path.stem}[{i}]", doc))
    return docs


EXAMPLE_DOCS = _example_docs()


def test_examples_cover_every_user_facing_kind() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLE_DOCS}
    assert {"ComputeLease", "ProviderPool", "BillingAccount"} <= kinds


@pytest.mark.parametrize(("label", "doc"), EXAMPLE_DOCS, ids=[d[0] for d in EXAMPLE_DOCS])
def test_example_is_accepted(
    custom: client.CustomObjectsApi, namespace: str, label: str, doc: dict[str, Any]
) -> None:
    body = _merge(doc, {"metadata": {"name": f"{doc['metadata']['name']}-{uuid.uuid4().hex[:6]}"}})
    try:
        created = _create(custom, body, namespace, dry_run=True)
    except ApiException as exc:
        pytest.fail(f"{label} refused: {exc.body}", pytrace=False)
    assert created["kind"] == doc["kind"]
    assert set(doc["spec"]) <= set(created["spec"])


def _kubectl(testbed: Bed, *args: str) -> str:
    proc = subprocess.run(
        [str(binary("kubectl")), "--kubeconfig", str(testbed.hub.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def a_lease(custom: client.CustomObjectsApi, namespace: str) -> Iterator[str]:
    """The web example, created for real in the module's namespace (no operator needed)."""
    doc = yaml.safe_load((EXAMPLES / "30-lease-web.yaml").read_text())
    created = _create(custom, doc, namespace, dry_run=False)
    yield created["metadata"]["name"]
    _delete(custom, doc, namespace)


def test_kubectl_get_cl_shows_the_printer_columns(
    testbed: Bed, namespace: str, a_lease: str
) -> None:
    out = _kubectl(testbed, "get", "cl", "-n", namespace)
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "PROVIDERS", "COST", "AGE"]
    assert rows
    assert rows[0].split()[0] == a_lease
    wide = _kubectl(testbed, "get", "computeleases", "-n", namespace, "-o", "wide")
    assert "POOL" in wide.splitlines()[0]
    assert "default" in wide


def test_kubectl_get_kommons_lists_the_category(testbed: Bed, namespace: str, a_lease: str) -> None:
    out = _kubectl(testbed, "get", "kommons", "-n", namespace)
    assert f"computelease.kommons.io/{a_lease}" in out


@pytest.mark.parametrize("short", ["cl", "prov", "pp", "billingaccounts", "settlementepochs"])
def test_short_names_resolve(testbed: Bed, crds_installed: None, short: str) -> None:
    _kubectl(testbed, "get", short, "-A")


def test_kubectl_explain_explains_the_gpu_field(testbed: Bed, crds_installed: None) -> None:
    out = _kubectl(testbed, "explain", "computelease.spec.resources.gpu")
    assert "GPUs per replica" in out
    assert "count" in out
    assert "model" in out
    assert "nvidia.com/gpu.product" in _kubectl(
        testbed, "explain", "computelease.spec.resources.gpu.model"
    )


def test_scale_subresource_scales_a_lease(
    custom: client.CustomObjectsApi, namespace: str, a_lease: str
) -> None:
    info = kind_info("ComputeLease")
    custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, info.plural, a_lease, {"spec": {"replicas": 3}}
    )
    got = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, info.plural, a_lease)
    assert got["spec"]["replicas"] == 3


def test_defaults_are_applied_by_the_api_server(
    custom: client.CustomObjectsApi, namespace: str, a_lease: str
) -> None:
    info = kind_info("ComputeLease")
    got = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, info.plural, a_lease)
    assert got["spec"]["suspend"] is False
    assert got["spec"]["expose"][0]["protocol"] == "TCP"
