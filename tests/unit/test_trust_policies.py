"""Unit tests of the trust-boundary builders (``kommons.trust.policies``) and onboarding objects.

The policies' behaviour is proven on the real API server by
``tests/integration/test_trust_boundary.py``; these tests pin their shape.

Behaviour matrix:

- every policy is admissionregistration.k8s.io/v1, fails closed, matches only provider agents
  (the hub, admins and tenants never match), and has a Deny binding of the same name;
- resources: placements policy matches ``leaseplacements`` but not ``leaseplacements/status``
  (the agent's report); provider policy ``providers``; status policy ``providers/status``;
  heartbeat policy ``coordination.k8s.io`` ``leases``; CREATE refused where the agent never
  creates;
- every validation has a message naming a field (or the kind) and why, with ``reason``
  Forbidden; every guarded field has its own validation and message; the catch-all names the
  allowed fields;
- CRD fields are reached only through ``has()``-guarded variables; ``oldObject`` is read only
  under an UPDATE guard;
- tenant roles: computeleases CRUD, no status, nothing else writable; the market viewer is
  read-only; tenant bindings bind the right roles;
- config copies: the policy refuses every Secret create, update and delete by an agent;
- claims: the policy refuses an agent's create (by name or generateName), update and delete of
  a ConfigMap named kommons-claims-*; the agent's Role (its namespace only) reads and lists
  ConfigMaps, never deletes them, and no ClusterRole reaches ConfigMaps;
- onboarding: the agent's Role grants Secrets get only (the hub's copies), leases only by name
  and never create; the heartbeat Lease
  is pre-created; admin labels go on the Provider and cannot override Kommons' own; a bad
  label is refused.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from kommons.api_names import CLAIMS_CONFIGMAP_PREFIX
from kommons.hub.onboarding import (
    Onboarding,
    OnboardingError,
    parse_labels,
    provider_object,
    rbac_objects,
)
from kommons.trust.policies import (
    AGENT_MATCH_CONDITIONS,
    HEARTBEAT_LEASE,
    INVENTORY_FIELDS,
    PROVIDER_DECLARATIONS,
    PROVIDER_SPEC_GUARDS,
    PROVIDER_STATUS_GUARDS,
    agent_policies,
    aggregated_lease_roles,
    binding,
    claims_policy,
    config_copy_policy,
    heartbeat_policy,
    hub_policy_objects,
    market_viewer_cluster_role,
    placement_policy,
    provider_policy,
    provider_status_policy,
    tenant_bindings,
    tenant_cluster_role,
)

JSON = dict[str, Any]


def resources(policy: JSON) -> set[str]:
    return {
        res
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
        for res in rule["resources"]
    }


def operations(policy: JSON) -> set[str]:
    return {
        op
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
        for op in rule["operations"]
    }


def messages(policy: JSON) -> list[str]:
    return [v["message"] for v in policy["spec"]["validations"]]


@pytest.mark.parametrize("policy", agent_policies(), ids=lambda p: p["metadata"]["name"])
def test_every_policy_fails_closed_and_matches_only_agents(policy: JSON) -> None:
    assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConditions"] == AGENT_MATCH_CONDITIONS
    condition = spec["matchConditions"][0]["expression"]
    assert "request.userInfo.username.startsWith('system:serviceaccount:kommons-provider-')" in (
        condition
    )
    assert "endsWith(':kommons-agent')" in condition
    bound = binding(policy)
    assert bound["kind"] == "ValidatingAdmissionPolicyBinding"
    assert bound["metadata"]["name"] == policy["metadata"]["name"]
    assert bound["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }


@pytest.mark.parametrize("policy", agent_policies(), ids=lambda p: p["metadata"]["name"])
def test_every_validation_names_a_field_and_why(policy: JSON) -> None:
    for validation in policy["spec"]["validations"]:
        assert validation["reason"] == "Forbidden"
        message = validation["message"]
        assert re.search(r"\b(spec|status|metadata)\.\w+|LeasePlacement|Provider|Lease", message), (
            message
        )
        assert re.search(r"hub|only|cannot", message), message
        if "messageExpression" in validation:
            assert "join(" in validation["messageExpression"]


@pytest.mark.parametrize("policy", agent_policies(), ids=lambda p: p["metadata"]["name"])
def test_fields_are_guarded_and_old_object_read_only_on_update(policy: JSON) -> None:
    for variable in policy["spec"]["variables"]:
        expression = variable["expression"]
        for access in re.findall(r"(?:oldObject|object)\.[\w.]+", expression):
            # every direct field access sits behind has() of the same path
            assert f"has({access})" in expression, (variable["name"], access)
    reads_old = any("oldObject" in v["expression"] for v in policy["spec"]["variables"])
    for validation in policy["spec"]["validations"]:
        expression = validation["expression"]
        assert "object." not in expression.replace("request.", "")
        if "variables." in expression and reads_old:  # oldObject exists on UPDATE only
            assert expression.startswith("request.operation != 'UPDATE' || ("), expression


def test_placement_policy_covers_the_main_resource_not_status() -> None:
    policy = placement_policy()
    assert resources(policy) == {"leaseplacements"}
    assert "leaseplacements/status" not in resources(policy)
    assert operations(policy) == {"CREATE", "UPDATE", "DELETE"}
    text = " ".join(messages(policy))
    for field in ("spec", "metadata.labels", "metadata.annotations", "metadata.finalizers"):
        assert field in text
    assert "kommons.io/agent" in text
    assert "agent.kommons.io/" in text
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "f != 'kommons.io/agent'" in expressions
    assert "!k.startsWith('agent.kommons.io/')" in expressions
    assert "request.namespace == request.userInfo.username.split(':')[2]" in expressions


def test_provider_policy_allows_only_declarations() -> None:
    policy = provider_policy()
    assert resources(policy) == {"providers"}
    assert "CREATE" in operations(policy)
    text = messages(policy)
    assert "spec.region is set by the hub admin at onboarding; providers cannot change it" in text
    for guard in PROVIDER_SPEC_GUARDS:
        assert guard.why in text
        assert any(
            f"!('{guard.field}' in variables.changedSpec)" in v["expression"]
            for v in policy["spec"]["validations"]
        )
    catch_all = next(
        v for v in policy["spec"]["validations"] if "filter(k, !(k in [" in v["expression"]
    )
    for allowed in PROVIDER_DECLARATIONS:
        assert f"'{allowed}'" in catch_all["expression"]
        assert f"spec.{allowed}" in catch_all["message"]
    assert any("kommons onboard --label" in m for m in text)
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "'system:serviceaccount:kommons-provider-' + request.name + ':kommons-agent'" in (
        expressions
    )


def test_provider_status_policy_allows_only_inventory() -> None:
    policy = provider_status_policy()
    assert resources(policy) == {"providers/status"}
    text = messages(policy)
    for field in ("phase", "reputation", "lastHeartbeatTime", "conditions"):
        assert any(m.startswith(f"status.{field} ") for m in text), field
    assert {g.field for g in PROVIDER_STATUS_GUARDS} == {
        "phase",
        "reputation",
        "lastHeartbeatTime",
        "conditions",
    }
    catch_all = policy["spec"]["validations"][-1]
    for field in INVENTORY_FIELDS:
        assert f"'{field}'" in catch_all["expression"]
    assert not set(INVENTORY_FIELDS) & {g.field for g in PROVIDER_STATUS_GUARDS}


def test_heartbeat_policy_allows_only_renewal_of_the_precreated_lease() -> None:
    policy = heartbeat_policy()
    assert resources(policy) == {"leases"}
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["apiGroups"] == [
        "coordination.k8s.io"
    ]
    assert "CREATE" in operations(policy)
    expressions = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert f"request.name == '{HEARTBEAT_LEASE}'" in expressions
    assert any("namespace" in m and "metadata.labels" in m for m in messages(policy))


def test_tenant_roles() -> None:
    role = tenant_cluster_role()
    assert role["metadata"]["name"] == "kommons-tenant"
    writable = {
        res
        for rule in role["rules"]
        if set(rule["verbs"]) - {"get", "list", "watch"}
        for res in rule["resources"]
    }
    assert writable == {"computeleases"}
    leases = next(rule for rule in role["rules"] if "computeleases" in rule["resources"])
    assert set(leases["verbs"]) == {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert all("/" not in res for rule in role["rules"] for res in rule["resources"])
    viewer = market_viewer_cluster_role()
    assert {v for rule in viewer["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert {res for rule in viewer["rules"] for res in rule["resources"]} == {
        "providers",
        "providerpools",
    }
    subject = {"kind": "ServiceAccount", "name": "alice", "namespace": "team-a"}
    role_binding, cluster_binding = tenant_bindings("team-a", subject)
    assert role_binding["kind"] == "RoleBinding"
    assert role_binding["metadata"]["namespace"] == "team-a"
    assert role_binding["roleRef"]["name"] == "kommons-tenant"
    assert cluster_binding["kind"] == "ClusterRoleBinding"
    assert cluster_binding["roleRef"]["name"] == "kommons-market-viewer"
    assert role_binding["subjects"] == cluster_binding["subjects"] == [subject]


def test_lease_roles_aggregate_into_view_and_edit_and_grant_only_leases() -> None:
    view, edit = aggregated_lease_roles()
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert view["metadata"]["labels"][aggregate + "view"] == "true"
    assert aggregate + "edit" not in view["metadata"]["labels"]
    assert edit["metadata"]["labels"][aggregate + "edit"] == "true"
    assert edit["metadata"]["labels"][aggregate + "admin"] == "true"
    assert aggregate + "view" not in edit["metadata"]["labels"]
    for role in (view, edit):
        assert [res for rule in role["rules"] for res in rule["resources"]] == ["computeleases"]
    assert view["rules"][0]["verbs"] == ["get", "list", "watch"]
    assert set(edit["rules"][0]["verbs"]) == {"create", "update", "patch", "delete"}
    names = {o["metadata"]["name"] for o in hub_policy_objects()}
    assert {"kommons-lease-view", "kommons-lease-edit"} <= names


def test_hub_policy_objects_are_complete_and_unique() -> None:
    objects = hub_policy_objects()
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    policies = {n for k, n in keys if k == "ValidatingAdmissionPolicy"}
    bindings = {n for k, n in keys if k == "ValidatingAdmissionPolicyBinding"}
    assert (
        policies
        == bindings
        == {
            "kommons-agent-placements",
            "kommons-agent-provider",
            "kommons-agent-provider-status",
            "kommons-agent-heartbeat",
            "kommons-agent-config-copies",
            "kommons-agent-claims",
        }
    )
    assert ("ClusterRole", "kommons-tenant") in keys


def test_agent_rbac_reaches_only_its_heartbeat_lease_without_create() -> None:
    objects = rbac_objects("prov-x")
    role = next(o for o in objects if o["kind"] == "Role")
    lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [HEARTBEAT_LEASE],
            "verbs": ["get", "patch", "update"],
        }
    ]
    # it creates only events and its answers to `kommons logs`, in its own namespace (a Role)
    creatable = {res for r in role["rules"] if "create" in r["verbs"] for res in r["resources"]}
    assert creatable == {"events", "configmaps"}
    # the hub's copies of its placements' config: read only
    assert [r["verbs"] for r in role["rules"] if "secrets" in r["resources"]] == [["get"]]
    # ConfigMaps of its own namespace: its logs answers (written) and the hub's claims of its
    # settled epochs (read and listed; kommons-agent-claims refuses writing them); never delete
    (configmaps,) = [r for r in role["rules"] if "configmaps" in r["resources"]]
    assert {"get", "list"} <= set(configmaps["verbs"])
    assert "delete" not in configmaps["verbs"]
    assert role["metadata"]["namespace"] == "kommons-provider-prov-x"
    assert not any(
        "configmaps" in r["resources"]
        for o in objects
        if o["kind"] == "ClusterRole"
        for r in o["rules"]
    )
    lease = next(o for o in objects if o["kind"] == "Lease")
    assert lease["metadata"] == {
        "name": HEARTBEAT_LEASE,
        "namespace": "kommons-provider-prov-x",
        "labels": {"app.kubernetes.io/managed-by": "kommons", "kommons.io/provider": "prov-x"},
    }
    cluster_role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert cluster_role["rules"][0]["resourceNames"] == ["prov-x"]
    assert "create" not in cluster_role["rules"][0]["verbs"]


def test_onboarding_sets_region_and_admin_labels() -> None:
    request = Onboarding(
        provider="prov-x",
        region="eu-west",
        payout_address="0x00000000000000000000000000000000000000aa",
        labels=parse_labels(["kommons.io/tier=community", "gpu=yes"]),
    )
    body = provider_object(request)
    assert body["spec"]["region"] == "eu-west"
    assert body["metadata"]["labels"] == {
        "kommons.io/tier": "community",
        "gpu": "yes",
        "app.kubernetes.io/managed-by": "kommons",
        "kommons.io/provider": "prov-x",
    }


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ({"kommons.io/provider": "prov-y"}, "set by Kommons itself"),
        ({"bad key": "x"}, "not a valid Kubernetes label key"),
        ({"tier": "not ok!"}, "values are at most 63"),
    ],
)
def test_onboarding_refuses_bad_labels(labels: dict[str, str], match: str) -> None:
    with pytest.raises(OnboardingError, match=match):
        Onboarding("prov-x", "eu-west", "0x00000000000000000000000000000000000000aa", labels)


def test_parse_labels_needs_key_and_equals() -> None:
    assert parse_labels(["a=", "b=c=d"]) == {"a": "", "b": "c=d"}
    with pytest.raises(OnboardingError, match="KEY=VALUE"):
        parse_labels(["novalue"])


def test_config_copy_policy_refuses_every_secret_write_by_an_agent() -> None:
    policy = config_copy_policy()
    assert resources(policy) == {"secrets"}
    assert operations(policy) == {"CREATE", "UPDATE", "DELETE"}
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"] == "false"
    assert "may only read them" in validation["message"]


def test_claims_policy_refuses_agent_writes_of_claims_configmaps() -> None:
    policy = claims_policy()
    assert resources(policy) == {"configmaps"}
    assert operations(policy) == {"CREATE", "UPDATE", "DELETE"}
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    # DELETE reads the name from the request (no object then); CREATE also checks generateName
    assert variables["name"].startswith("request.operation == 'DELETE' ? request.name")
    assert "object.metadata.generateName" in variables["generateName"]
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"] == (
        "!variables.name.startsWith('kommons-claims-')"
        " && !variables.generateName.startsWith('kommons-claims-')"
    )
    assert "may only read them" in validation["message"]
    assert CLAIMS_CONFIGMAP_PREFIX == "kommons-claims-"
