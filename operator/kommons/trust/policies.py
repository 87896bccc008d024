"""Admission policies and roles that make the trust boundary an API-server rule (pure builders).

A provider agent authenticates to the hub as the ServiceAccount
``system:serviceaccount:kommons-provider-<name>:kommons-agent``. RBAC (written by onboarding)
lets it reach only its own namespace, its own ``Provider`` and its own heartbeat Lease, but RBAC
cannot say *which fields* of an object a verb may change: ``update`` on a ``LeasePlacement``
(needed to remove its finalizer) would also let it rewrite the placement's price and replicas.
The ``ValidatingAdmissionPolicy`` objects built here close that gap. Each applies only to
requests by a provider agent (``matchConditions`` on the username), so the hub, admins and
tenants are never affected, and each refusal says which field and why.

=============================  =============================================================
policy                         what a provider agent may change
=============================  =============================================================
``kommons-agent-placements``   ``leaseplacements`` (main resource): only its finalizer
                               ``kommons.io/agent`` and annotations ``agent.kommons.io/*``;
                               never spec, labels, owners; no create or delete.
                               (``leaseplacements/status`` is not matched: status is the
                               agent's report, validated by the hub.)
``kommons-agent-provider``     its own ``Provider``: ``spec.pricing``, ``spec.offer``,
                               ``spec.cordoned``, ``spec.payoutAddress``; never labels, region,
                               mode, ``kubeconfigSecretRef``, annotations, finalizers; no create
                               or delete.
``kommons-agent-provider-      its own ``Provider`` status: inventory only (:data:`INVENTORY_
status``                       FIELDS`); never phase, reputation, lastHeartbeatTime, conditions.
``kommons-agent-heartbeat``    its heartbeat Lease ``kommons-agent`` in its own namespace: the
                               spec only (renewal); never labels or annotations; no create.
``kommons-agent-config-        no Secret at all: those in its hub namespace are the hub's copies
copies``                       of its placements' config (it may only read them, RBAC ``get``).
``kommons-agent-claims``       no ConfigMap named ``kommons-claims-*``: the hub's record of the
                               provider's leaves and proofs of a settled epoch (it may only read
                               them, RBAC ``get``/``list``; it writes other ConfigMaps, its
                               ``kommons logs`` answers).
=============================  =============================================================

Objects of custom resources are untyped in CEL (type checking does not cover CRD fields), so
every field access is guarded (``has()`` or ``in`` on a defaulted map).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kommons.api_names import (
    CLAIMS_CONFIGMAP_PREFIX,
    GROUP,
    LABEL_MANAGED_BY,
    MANAGER,
    PREFIX,
    PROVIDER_NAMESPACE_PREFIX,
)

JSON = dict[str, Any]

AGENT_SERVICE_ACCOUNT = "kommons-agent"
"""Name of the agent's ServiceAccount in its hub namespace ``kommons-provider-<name>``."""
HEARTBEAT_LEASE = "kommons-agent"
"""Name of the ``coordination.k8s.io/Lease`` the hub pre-creates and the agent renews."""
AGENT_FINALIZER = f"{PREFIX}/agent"
"""The agent's kopf finalizer on its LeasePlacements."""
AGENT_ANNOTATION_PREFIX = f"agent.{PREFIX}/"
"""Prefix of the agent's kopf progress annotations on its LeasePlacements."""
AGENT_USER_PREFIX = f"system:serviceaccount:{PROVIDER_NAMESPACE_PREFIX}"
AGENT_USER_SUFFIX = f":{AGENT_SERVICE_ACCOUNT}"

PROVIDER_DECLARATIONS = ("pricing", "offer", "cordoned", "payoutAddress", "expose")
"""``Provider.spec`` fields a provider's agent declares itself."""
INVENTORY_FIELDS = (
    "capacity",
    "allocatable",
    "available",
    "accountedLeases",
    "inventoryTime",
    "nodes",
    "agentVersion",
    "kubernetesVersion",
    "namespace",
)
"""``Provider.status`` fields a provider's agent reports (the hub validates them before use)."""

TENANT_ROLE = "kommons-tenant"
LEASE_VIEW_ROLE = "kommons-lease-view"
LEASE_EDIT_ROLE = "kommons-lease-edit"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
MARKET_VIEWER_ROLE = "kommons-market-viewer"
ADMISSION_API = "admissionregistration.k8s.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class Guarded:
    """One field (or kind of field) the agent may not change, and why."""

    field: str
    why: str


PROVIDER_SPEC_GUARDS = (
    Guarded(
        "region", "spec.region is set by the hub admin at onboarding; providers cannot change it"
    ),
    Guarded(
        "mode",
        "spec.mode (Pull or Push) is set by the hub admin at onboarding;"
        " providers cannot change it",
    ),
    Guarded(
        "kubeconfigSecretRef",
        "spec.kubeconfigSecretRef names a Secret on the hub and is set by the hub admin;"
        " providers cannot change it",
    ),
)
PROVIDER_STATUS_GUARDS = (
    Guarded(
        "phase",
        "status.phase is decided by the hub from the provider's heartbeat and inventory;"
        " providers cannot set it",
    ),
    Guarded(
        "reputation",
        "status.reputation is the hub's record of the provider, computed from what the hub"
        " observed (heartbeats, placements ended); providers cannot set it",
    ),
    Guarded(
        "lastHeartbeatTime",
        "status.lastHeartbeatTime is the hub's own clock when it saw the heartbeat Lease renewed;"
        " providers renew their heartbeat Lease instead",
    ),
    Guarded("conditions", "status.conditions are written by the hub; providers cannot set them"),
)


# --- CEL building blocks ------------------------------------------------------------------


def _quote(text: str) -> str:
    """A CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(i) for i in items) + "]"


def _defaulted(obj: str, path: str, field: str, empty: str) -> str:
    """``obj.path.field`` or ``empty`` when absent (``path`` must exist)."""
    return f"has({obj}.{path}.{field}) ? {obj}.{path}.{field} : {empty}"


def _changed_keys(new: str, old: str) -> str:
    """Keys of two maps whose presence or value differs (a CEL list of strings)."""
    return (
        f"{new}.filter(k, !(k in {old}) || {new}[k] != {old}[k]) + {old}.filter(k, !(k in {new}))"
    )


def _changed_items(new: str, old: str) -> str:
    """Items of two lists present in one and not the other."""
    return f"{new}.filter(x, !(x in {old})) + {old}.filter(x, !(x in {new}))"


def _variable(name: str, expression: str) -> JSON:
    return {"name": name, "expression": expression}


def _metadata_variables() -> list[JSON]:
    """``variables.{new,old}{Labels,Annotations,Finalizers,Owners}`` and what changed."""
    out: list[JSON] = []
    for name, field, empty in (
        ("Labels", "labels", "{}"),
        ("Annotations", "annotations", "{}"),
        ("Finalizers", "finalizers", "[]"),
        ("Owners", "ownerReferences", "[]"),
    ):
        out.append(_variable(f"new{name}", _defaulted("object", "metadata", field, empty)))
        out.append(_variable(f"old{name}", _defaulted("oldObject", "metadata", field, empty)))
    out += [
        _variable("changedLabels", _changed_keys("variables.newLabels", "variables.oldLabels")),
        _variable(
            "changedAnnotations",
            _changed_keys("variables.newAnnotations", "variables.oldAnnotations"),
        ),
        _variable(
            "changedFinalizers",
            _changed_items("variables.newFinalizers", "variables.oldFinalizers"),
        ),
    ]
    return out


def _map_variables(section: str) -> list[JSON]:
    """``variables.{new,old}<Section>`` (the section as a map) and ``changed<Section>``."""
    title = section.capitalize()
    return [
        _variable(f"new{title}", f"has(object.{section}) ? object.{section} : {{}}"),
        _variable(f"old{title}", f"has(oldObject.{section}) ? oldObject.{section} : {{}}"),
        _variable(
            f"changed{title}", _changed_keys(f"variables.new{title}", f"variables.old{title}")
        ),
    ]


def _validation(
    expression: str, message: str, message_expression: str | None = None, *, update_only: bool
) -> JSON:
    """A validation (refused with 403 Forbidden), optionally only checked on UPDATE."""
    if update_only:
        expression = f"request.operation != 'UPDATE' || ({expression})"
    out: JSON = {"expression": expression, "message": message, "reason": "Forbidden"}
    if message_expression is not None:
        out["messageExpression"] = message_expression
    return out


def _listing(variable: str, prefix: str, why: str) -> str:
    """A messageExpression: ``<prefix><changed, joined>: <why>``."""
    return f"{_quote(prefix)} + variables.{variable}.join(', ') + {_quote(': ' + why)}"


def _metadata_validations(
    kind: str,
    *,
    allowed_finalizer: str | None = None,
    annotation_prefix: str | None = None,
    labels_why: str | None = None,
) -> list[JSON]:
    """Labels, annotations, finalizers and owner references of ``kind`` stay as the hub set them.

    ``allowed_finalizer`` and ``annotation_prefix`` are what the agent may still change;
    ``labels_why`` replaces the default reason given for labels.
    """
    if labels_why is None:
        labels_why = (
            f"labels of a {kind} are set by the hub only; provider agents cannot change them"
        )
    out = [
        _validation(
            "size(variables.changedLabels) == 0",
            f"metadata.labels: {labels_why}",
            _listing("changedLabels", "metadata.labels ", labels_why),
            update_only=True,
        )
    ]
    if annotation_prefix is None:
        why = f"annotations of a {kind} are set by the hub only; provider agents cannot change them"
        out.append(
            _validation(
                "size(variables.changedAnnotations) == 0",
                f"metadata.annotations: {why}",
                _listing("changedAnnotations", "metadata.annotations ", why),
                update_only=True,
            )
        )
    else:
        why = (
            f"provider agents may change only annotations with prefix {annotation_prefix}"
            f" (their own kopf bookkeeping) on a {kind}"
        )
        foreign = (
            f"variables.changedAnnotations.filter(k, !k.startsWith({_quote(annotation_prefix)}))"
        )
        out.append(
            _validation(
                f"size({foreign}) == 0",
                f"metadata.annotations: {why}",
                f"'metadata.annotations ' + {foreign}.join(', ') + {_quote(': ' + why)}",
                update_only=True,
            )
        )
    if allowed_finalizer is None:
        why = f"finalizers of a {kind} are set by the hub only; provider agents cannot change them"
        foreign = "variables.changedFinalizers"
    else:
        why = (
            f"provider agents may add or remove only their own finalizer {allowed_finalizer}"
            f" on a {kind}"
        )
        foreign = f"variables.changedFinalizers.filter(f, f != {_quote(allowed_finalizer)})"
    out.append(
        _validation(
            f"size({foreign}) == 0",
            f"metadata.finalizers: {why}",
            f"'metadata.finalizers ' + {foreign}.join(', ') + {_quote(': ' + why)}",
            update_only=True,
        )
    )
    out.append(
        _validation(
            "variables.newOwners == variables.oldOwners",
            f"metadata.ownerReferences: owners of a {kind} are set by the hub only;"
            " provider agents cannot change them",
            update_only=True,
        )
    )
    return out


def _guard_validations(
    section: str, guards: Sequence[Guarded], allowed: Sequence[str], kind: str
) -> list[JSON]:
    """One validation per guarded field, then one for any other field outside ``allowed``."""
    changed = f"variables.changed{section.capitalize()}"
    out = [
        _validation(f"!({_quote(g.field)} in {changed})", g.why, update_only=True) for g in guards
    ]
    named = [g.field for g in guards]
    others = f"{changed}.filter(k, !(k in {_cel_list([*allowed, *named])}))"
    why = (
        f"provider agents may change only {', '.join(f'{section}.{a}' for a in allowed)}"
        f" of their {kind}"
    )
    out.append(
        _validation(
            f"size({others}) == 0",
            f"{section}: {why}",
            f"{_quote(section + '.')} + {others}.join(', {section}.') + {_quote(': ' + why)}",
            update_only=True,
        )
    )
    return out


# --- the policies -------------------------------------------------------------------------

AGENT_MATCH_CONDITIONS: list[JSON] = [
    {
        "name": "provider-agent",
        "expression": (
            f"request.userInfo.username.startsWith({_quote(AGENT_USER_PREFIX)})"
            f" && request.userInfo.username.endsWith({_quote(AGENT_USER_SUFFIX)})"
        ),
    }
]
"""Only requests by a provider agent are checked: the hub, admins and tenants never match."""

_OWN_NAMESPACE = "request.namespace == request.userInfo.username.split(':')[2]"
_OWN_PROVIDER = (
    f"request.userInfo.username == {_quote(AGENT_USER_PREFIX)} + request.name"
    f" + {_quote(AGENT_USER_SUFFIX)}"
)


def _labels() -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER}


def _policy(
    name: str,
    rules: list[JSON],
    variables: list[JSON],
    validations: list[JSON],
) -> JSON:
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": _labels()},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "matchConditions": AGENT_MATCH_CONDITIONS,
            "variables": variables,
            "validations": validations,
        },
    }


def _rule(group: str, resources: list[str], operations: list[str]) -> JSON:
    return {
        "apiGroups": [group],
        "apiVersions": ["*"],
        "operations": operations,
        "resources": resources,
    }


def placement_policy() -> JSON:
    """``kommons-agent-placements``: the agent may touch only its finalizer and annotations."""
    spec_why = (
        "a LeasePlacement's spec (replicas, resources, template, locked price) is written by the"
        " hub only; provider agents cannot change it"
    )
    validations = [
        _validation(
            "request.operation == 'UPDATE'",
            "LeasePlacements are created and deleted by the hub only; a provider agent may update"
            f" their status, its finalizer {AGENT_FINALIZER} and annotations"
            f" {AGENT_ANNOTATION_PREFIX}*",
            update_only=False,
        ),
        _validation(
            _OWN_NAMESPACE,
            "a provider agent may write only LeasePlacements in its own hub namespace",
            update_only=False,
        ),
        _validation(
            "size(variables.changedSpec) == 0",
            f"spec: {spec_why}",
            f"'spec.' + variables.changedSpec.join(', spec.') + {_quote(': ' + spec_why)}",
            update_only=True,
        ),
        *_metadata_validations(
            "LeasePlacement",
            allowed_finalizer=AGENT_FINALIZER,
            annotation_prefix=AGENT_ANNOTATION_PREFIX,
        ),
    ]
    return _policy(
        "kommons-agent-placements",
        [_rule(GROUP, ["leaseplacements"], ["CREATE", "UPDATE", "DELETE"])],
        [*_map_variables("spec"), *_metadata_variables()],
        validations,
    )


def provider_policy() -> JSON:
    """``kommons-agent-provider``: the agent may change only its declarations in spec."""
    validations = [
        _validation(
            "request.operation == 'UPDATE'",
            "Providers are created and deleted by the hub admin (kommons onboard); a provider"
            " agent may only update its own Provider's declarations",
            update_only=False,
        ),
        _validation(
            _OWN_PROVIDER,
            "a provider agent may update only its own Provider",
            update_only=False,
        ),
        *_guard_validations("spec", PROVIDER_SPEC_GUARDS, PROVIDER_DECLARATIONS, "Provider"),
        *_metadata_validations(
            "Provider",
            labels_why="labels of a Provider (pools select providers on them, e.g. the tier) are"
            " set by the hub admin at onboarding (kommons onboard --label); providers cannot"
            " change them",
        ),
    ]
    return _policy(
        "kommons-agent-provider",
        [_rule(GROUP, ["providers"], ["CREATE", "UPDATE", "DELETE"])],
        [*_map_variables("spec"), *_metadata_variables()],
        validations,
    )


def provider_status_policy() -> JSON:
    """``kommons-agent-provider-status``: the agent may report inventory fields only."""
    validations = [
        _validation(
            _OWN_PROVIDER, "a provider agent may update only its own Provider", update_only=False
        ),
        *_guard_validations(
            "status", PROVIDER_STATUS_GUARDS, INVENTORY_FIELDS, "Provider (inventory)"
        ),
    ]
    return _policy(
        "kommons-agent-provider-status",
        [_rule(GROUP, ["providers/status"], ["UPDATE"])],
        _map_variables("status"),
        validations,
    )


def heartbeat_policy() -> JSON:
    """``kommons-agent-heartbeat``: the agent may only renew its pre-created heartbeat Lease."""
    labels_why = (
        "labels of the heartbeat Lease are set by the hub at onboarding; the hub identifies a"
        " heartbeat's provider by the Lease's namespace"
    )
    validations = [
        _validation(
            "request.operation == 'UPDATE'",
            f"the heartbeat Lease {HEARTBEAT_LEASE} is created by the hub at onboarding; provider"
            " agents may only renew it",
            update_only=False,
        ),
        _validation(
            f"{_OWN_NAMESPACE} && request.name == {_quote(HEARTBEAT_LEASE)}",
            f"a provider agent may renew only the Lease {HEARTBEAT_LEASE} in its own hub namespace",
            update_only=False,
        ),
        *_metadata_validations("heartbeat Lease", labels_why=labels_why),
    ]
    return _policy(
        "kommons-agent-heartbeat",
        [_rule("coordination.k8s.io", ["leases"], ["CREATE", "UPDATE", "DELETE"])],
        _metadata_variables(),
        validations,
    )


def config_copy_policy() -> JSON:
    """``kommons-agent-config-copies``: a provider agent never writes a Secret on the hub.

    The Secrets in a provider's hub namespace are the hub's copies of the tenant ConfigMaps
    and Secrets its placements take along (:mod:`kommons.config_copies`). The agent's RBAC is
    ``get`` there; this policy keeps a forged or altered copy out even if RBAC were widened.
    """
    return _policy(
        "kommons-agent-config-copies",
        [_rule("", ["secrets"], ["CREATE", "UPDATE", "DELETE"])],
        [],
        [
            _validation(
                "false",
                "Secrets in a provider's hub namespace are the hub's copies of the ConfigMaps and"
                " Secrets a LeasePlacement takes along; provider agents may only read them, never"
                " create, change or delete one",
                update_only=False,
            )
        ],
    )


def claims_policy() -> JSON:
    """``kommons-agent-claims``: a provider agent never writes a claims ConfigMap.

    ``kommons-claims-<epochId>`` in a provider's hub namespace holds the provider's leaves and
    proofs of a settled epoch, written by the hub (:mod:`kommons.settlement.proofs`). The agent
    needs ConfigMap writes there for its ``kommons logs`` answers, and RBAC cannot limit
    ``create`` by name, so this policy refuses it any ConfigMap named (or generated) with the
    claims prefix: it can neither forge a claims document nor change or delete the hub's.
    """
    prefix = _quote(CLAIMS_CONFIGMAP_PREFIX)
    # DELETE has no object (the name is in the request); CREATE may carry generateName only.
    name = (
        "request.operation == 'DELETE' ? request.name"
        " : (has(object.metadata.name) ? object.metadata.name : '')"
    )
    generate_name = (
        "request.operation != 'DELETE' && has(object.metadata.generateName)"
        " ? object.metadata.generateName : ''"
    )
    return _policy(
        "kommons-agent-claims",
        [_rule("", ["configmaps"], ["CREATE", "UPDATE", "DELETE"])],
        [_variable("name", name), _variable("generateName", generate_name)],
        [
            _validation(
                f"!variables.name.startsWith({prefix})"
                f" && !variables.generateName.startsWith({prefix})",
                f"metadata.name: ConfigMaps named {CLAIMS_CONFIGMAP_PREFIX}* hold the hub's record"
                " of a provider's leaves and proofs of a settled epoch; provider agents may only"
                " read them, never create, change or delete one",
                update_only=False,
            )
        ],
    )


def agent_policies() -> list[JSON]:
    """Every ``ValidatingAdmissionPolicy`` that bounds what provider agents may write."""
    return [
        placement_policy(),
        provider_policy(),
        provider_status_policy(),
        heartbeat_policy(),
        config_copy_policy(),
        claims_policy(),
    ]


def binding(policy: JSON) -> JSON:
    """The ``ValidatingAdmissionPolicyBinding`` that enforces ``policy`` (Deny) everywhere."""
    name = str(policy["metadata"]["name"])
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": _labels()},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }


# --- tenants ------------------------------------------------------------------------------


def tenant_cluster_role() -> JSON:
    """``kommons-tenant``: bound per namespace, a tenant manages its ComputeLeases there.

    No ``computeleases/status`` (the hub writes it), no placements, providers, billing
    accounts, pools or epochs. ConfigMaps: ``get`` (``kommons logs`` reads its answer).
    """
    read = ["get", "list", "watch"]
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": {"name": TENANT_ROLE, "labels": _labels()},
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["computeleases"],
                "verbs": [*read, "create", "update", "patch", "delete"],
            },
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": read},
            # `kommons logs` reads the logs the hub gathers next to the lease
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        ],
    }


def market_viewer_cluster_role() -> JSON:
    """``kommons-market-viewer``: read the market (providers and pools), cluster-wide."""
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": {"name": MARKET_VIEWER_ROLE, "labels": _labels()},
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["providers", "providerpools"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def aggregated_lease_roles() -> list[JSON]:
    """ClusterRoles aggregated into the standard ``view``, ``edit`` and ``admin`` roles.

    Whoever holds ``view`` in a namespace reads its ComputeLeases; ``edit``/``admin`` also
    create, change and delete them. Nothing else of Kommons is aggregated: ``computeleases/status``
    is the hub's, and providers, placements, billing accounts and epochs stay out of reach.
    """
    read = ["get", "list", "watch"]
    leases = {"apiGroups": [GROUP], "resources": ["computeleases"]}
    return [
        {
            "apiVersion": RBAC_API,
            "kind": "ClusterRole",
            "metadata": {
                "name": LEASE_VIEW_ROLE,
                "labels": {**_labels(), f"{AGGREGATE_TO}view": "true"},
            },
            "rules": [{**leases, "verbs": read}],
        },
        {
            "apiVersion": RBAC_API,
            "kind": "ClusterRole",
            "metadata": {
                "name": LEASE_EDIT_ROLE,
                "labels": {
                    **_labels(),
                    f"{AGGREGATE_TO}edit": "true",
                    f"{AGGREGATE_TO}admin": "true",
                },
            },
            "rules": [{**leases, "verbs": ["create", "update", "patch", "delete"]}],
        },
    ]


def tenant_bindings(namespace: str, subject: JSON) -> list[JSON]:
    """Bind ``subject`` as a tenant of ``namespace``.

    A RoleBinding of ``kommons-tenant`` in ``namespace`` and a ClusterRoleBinding of
    ``kommons-market-viewer`` (read-only, cluster-scoped kinds need a cluster binding).
    """
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole"}
    who = f"{subject.get('namespace', namespace)}-{subject['name']}".lower()
    return [
        {
            "apiVersion": RBAC_API,
            "kind": "RoleBinding",
            "metadata": {
                "name": f"{TENANT_ROLE}-{subject['name']}".lower()[:253],
                "namespace": namespace,
                "labels": _labels(),
            },
            "roleRef": {**role_ref, "name": TENANT_ROLE},
            "subjects": [subject],
        },
        {
            "apiVersion": RBAC_API,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{MARKET_VIEWER_ROLE}-{who}"[:253], "labels": _labels()},
            "roleRef": {**role_ref, "name": MARKET_VIEWER_ROLE},
            "subjects": [subject],
        },
    ]


def hub_policy_objects() -> list[JSON]:
    """Everything ``kommons install-policies`` applies: policies, bindings, tenant roles."""
    policies = agent_policies()
    return [
        *policies,
        *(binding(p) for p in policies),
        tenant_cluster_role(),
        market_viewer_cluster_role(),
        *aggregated_lease_roles(),
    ]
