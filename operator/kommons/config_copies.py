"""Config and secrets that travel with a workload: ``configFrom`` and ``imagePullSecrets`` (pure).

A lease names ConfigMaps and Secrets of its own namespace on the hub. They reach the provider in
two hops, and only the target provider's agent can read them on the way:

1. **Hub → provider's hub namespace.** For each placement the hub writes one *copy* per source:
   always a ``Secret`` (a ConfigMap's data too), named :func:`copy_name`, in the placement's
   namespace ``kommons-provider-NAME``, owned by the placement (garbage-collected with it),
   labelled with the placement and annotated with the source's kind, name and
   ``resourceVersion`` (:func:`hub_copy`). The agent's RBAC there is ``get`` on Secrets, never
   a write, so it cannot forge or alter a copy; other agents have no access to the namespace.
2. **Agent → placement namespace on the provider.** The agent reads the copies the placement
   lists (``spec.configRevisions``), checks each carries the revision the placement asks for,
   and applies the original object under its original name (:func:`provider_object`), so the
   template's ``envFrom``, ``valueFrom`` and volume references work unchanged.

The data of a Secret is never put in a log, an Event, a status or a placement's spec: the
placement carries only ``Kind/name`` → ``resourceVersion`` (:func:`revision_key`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kommons.api_names import LABEL_MANAGED_BY, LABEL_PLACEMENT, MANAGER, PREFIX

JSON = dict[str, Any]
Kind = Literal["Secret", "ConfigMap"]

LABEL_COPY = f"{PREFIX}/config-copy"
"""On a hub copy and on the provider object made from it: ``"true"``."""
ANNOTATION_KIND = f"{PREFIX}/source-kind"
ANNOTATION_NAME = f"{PREFIX}/source-name"
ANNOTATION_NAMESPACE = f"{PREFIX}/source-namespace"
ANNOTATION_REVISION = f"{PREFIX}/source-revision"
"""The source's ``resourceVersion`` the copy was made from."""
ANNOTATION_TYPE = f"{PREFIX}/source-type"
"""A Secret's ``type`` (the copy itself is ``Opaque``)."""
ANNOTATION_BINARY_KEYS = f"{PREFIX}/binary-keys"
"""A ConfigMap's ``binaryData`` keys, comma-separated (the other keys were ``data``)."""
UNCOPYABLE_SECRET_TYPES = ("kubernetes.io/service-account-token",)
"""Secret types that mean something only on the hub: a lease cannot take them along."""


@dataclass(frozen=True)
class Source:
    """One object a lease takes along, and where the lease names it."""

    kind: Kind
    name: str
    field: str
    """Where the lease lists it, e.g. ``spec.configFrom[0]``."""

    @property
    def key(self) -> str:
        """``Kind/name``: its key in a placement's ``spec.configRevisions``."""
        return revision_key(self.kind, self.name)


def revision_key(kind: str, name: str) -> str:
    """``Kind/name``, the key of a source in ``spec.configRevisions``."""
    return f"{kind}/{name}"


def split_key(key: str) -> tuple[Kind, str]:
    """The ``(kind, name)`` of a ``Kind/name`` key."""
    kind, _, name = key.partition("/")
    if kind not in ("Secret", "ConfigMap") or not name:
        raise ValueError(f"not a Secret/NAME or ConfigMap/NAME key: {key!r}")
    return ("Secret" if kind == "Secret" else "ConfigMap"), name


def sources(config_from: list[Any] | None, image_pull_secrets: list[Any] | None) -> list[Source]:
    """What a lease takes along: ``configFrom`` then ``imagePullSecrets``, each once.

    Args:
        config_from: ``spec.configFrom`` entries (``.kind``, ``.name``).
        image_pull_secrets: ``spec.imagePullSecrets`` entries (``.name``).
    """
    out: dict[str, Source] = {}
    for i, ref in enumerate(config_from or ()):
        out.setdefault(
            revision_key(ref.kind, ref.name), Source(ref.kind, ref.name, f"spec.configFrom[{i}]")
        )
    for i, ref in enumerate(image_pull_secrets or ()):
        source = Source("Secret", ref.name, f"spec.imagePullSecrets[{i}]")
        out.setdefault(source.key, source)
    return list(out.values())


def copy_name(placement: str, kind: str, name: str) -> str:
    """The hub copy's name: unique per (placement, kind, name), a DNS label."""
    digest = hashlib.sha256(f"{placement}\0{kind}\0{name}".encode()).hexdigest()[:20]
    return f"kommons-config-{digest}"


# --------------------------------------------------------------------------------------
# What a template references
# --------------------------------------------------------------------------------------


def _dicts(value: Any) -> list[JSON]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


_KEY_REFS: tuple[tuple[str, Kind], ...] = (
    ("secretKeyRef", "Secret"),
    ("configMapKeyRef", "ConfigMap"),
)
_ENV_FROM_REFS: tuple[tuple[str, Kind], ...] = (
    ("secretRef", "Secret"),
    ("configMapRef", "ConfigMap"),
)
_PROJECTED_REFS: tuple[tuple[str, Kind], ...] = (("secret", "Secret"), ("configMap", "ConfigMap"))


def template_references(
    template: Mapping[str, Any], path: str = "spec.template"
) -> Iterator[tuple[str, Kind, str]]:
    """Every ConfigMap and Secret a pod template references: ``(field path, kind, name)``.

    ``env[].valueFrom.{secretKeyRef,configMapKeyRef}``, ``envFrom[].{secretRef,configMapRef}``
    of every container and init container, and ``secret``, ``configMap`` and projected
    volume sources.
    """
    spec = _obj(template.get("spec"))
    for kind in ("initContainers", "containers"):
        for c, container in enumerate(_dicts(spec.get(kind))):
            at = f"{path}.spec.{kind}[{c}]"
            for e, env in enumerate(_dicts(container.get("env"))):
                value_from = _obj(env.get("valueFrom"))
                for field, ref_kind in _KEY_REFS:
                    ref = _obj(value_from.get(field))
                    if "name" in ref:
                        yield f"{at}.env[{e}].valueFrom.{field}.name", ref_kind, str(ref["name"])
            for e, env_from in enumerate(_dicts(container.get("envFrom"))):
                for field, ref_kind in _ENV_FROM_REFS:
                    ref = _obj(env_from.get(field))
                    if "name" in ref:
                        yield f"{at}.envFrom[{e}].{field}.name", ref_kind, str(ref["name"])
    for v, volume in enumerate(_dicts(spec.get("volumes"))):
        at = f"{path}.spec.volumes[{v}]"
        secret = _obj(volume.get("secret"))
        if "secretName" in secret:
            yield f"{at}.secret.secretName", "Secret", str(secret["secretName"])
        config_map = _obj(volume.get("configMap"))
        if "name" in config_map:
            yield f"{at}.configMap.name", "ConfigMap", str(config_map["name"])
        for s, source in enumerate(_dicts(_obj(volume.get("projected")).get("sources"))):
            for field, ref_kind in _PROJECTED_REFS:
                ref = _obj(source.get(field))
                if "name" in ref:
                    yield (
                        f"{at}.projected.sources[{s}].{field}.name",
                        ref_kind,
                        str(ref["name"]),
                    )


def unlisted_references(
    template: Mapping[str, Any], listed: list[Source], path: str = "spec.template"
) -> list[str]:
    """Template references to objects the lease does not take along, as messages.

    Such a reference could never resolve on the provider: only what ``spec.configFrom`` (and,
    for Secrets, ``spec.imagePullSecrets``) lists is copied there.
    """
    keys = {s.key for s in listed}
    return [
        f"{at}: {kind} {name} is not listed in spec.configFrom, so it would not exist on the"
        f" provider; add {{kind: {kind}, name: {name}}} to spec.configFrom"
        for at, kind, name in template_references(template, path)
        if revision_key(kind, name) not in keys
    ]


# --------------------------------------------------------------------------------------
# Hub: source -> copy in the provider's hub namespace
# --------------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def hub_copy(
    source: Mapping[str, Any],
    *,
    kind: Kind,
    placement: str,
    namespace: str,
    owner_uid: str | None,
) -> JSON:
    """The Secret the hub writes in a provider's hub namespace for one source of a placement.

    Args:
        source: the tenant's ConfigMap or Secret as read from the API server.
        kind: its kind.
        placement: the placement's name.
        namespace: the placement's (provider's hub) namespace.
        owner_uid: the placement's uid (the copy goes with it); ``None``: no owner yet.
    """
    meta = _obj(source.get("metadata"))
    name = str(meta.get("name"))
    annotations = {
        ANNOTATION_KIND: kind,
        ANNOTATION_NAME: name,
        ANNOTATION_NAMESPACE: str(meta.get("namespace")),
        ANNOTATION_REVISION: str(meta.get("resourceVersion")),
    }
    if kind == "Secret":
        data = {str(k): str(v) for k, v in _obj(source.get("data")).items()}
        annotations[ANNOTATION_TYPE] = str(source.get("type") or "Opaque")
    else:
        data = {str(k): _b64(str(v)) for k, v in _obj(source.get("data")).items()}
        binary = {str(k): str(v) for k, v in _obj(source.get("binaryData")).items()}
        data |= binary
        annotations[ANNOTATION_BINARY_KEYS] = ",".join(sorted(binary))
    metadata: JSON = {
        "name": copy_name(placement, kind, name),
        "namespace": namespace,
        "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_PLACEMENT: placement, LABEL_COPY: "true"},
        "annotations": annotations,
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": f"{PREFIX}/v1alpha1",
                "kind": "LeasePlacement",
                "name": placement,
                "uid": owner_uid,
                "blockOwnerDeletion": False,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": data,
    }


def copy_revision(copy: Mapping[str, Any]) -> str | None:
    """The source ``resourceVersion`` a hub copy was made from."""
    annotations = _obj(_obj(copy.get("metadata")).get("annotations"))
    value = annotations.get(ANNOTATION_REVISION)
    return str(value) if value is not None else None


# --------------------------------------------------------------------------------------
# Agent: hub copy -> the original object on the provider
# --------------------------------------------------------------------------------------


def provider_object(copy: Mapping[str, Any], *, namespace: str, labels: Mapping[str, str]) -> JSON:
    """The ConfigMap or Secret the agent applies in the placement's namespace on the provider.

    Under the source's own name and kind, with its data (a ConfigMap's ``data`` keys decoded,
    its ``binaryData`` keys kept encoded) and a Secret's type.
    """
    meta = _obj(copy.get("metadata"))
    annotations = _obj(meta.get("annotations"))
    kind = str(annotations.get(ANNOTATION_KIND))
    metadata: JSON = {
        "name": str(annotations.get(ANNOTATION_NAME)),
        "namespace": namespace,
        "labels": dict(labels) | {LABEL_COPY: "true"},
        "annotations": {ANNOTATION_REVISION: str(annotations.get(ANNOTATION_REVISION))},
    }
    data = {str(k): str(v) for k, v in _obj(copy.get("data")).items()}
    if kind == "Secret":
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": str(annotations.get(ANNOTATION_TYPE) or "Opaque"),
            "data": data,
        }
    binary_keys = {k for k in str(annotations.get(ANNOTATION_BINARY_KEYS) or "").split(",") if k}
    out: JSON = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {k: base64.b64decode(v).decode() for k, v in data.items() if k not in binary_keys},
    }
    binary = {k: v for k, v in data.items() if k in binary_keys}
    if binary:
        out["binaryData"] = binary
    return out
