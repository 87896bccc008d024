"""Config and secrets travel with the workload: ``configFrom`` and ``imagePullSecrets`` (pure).

Behaviour matrix (case -> expected):

- ``sources``: configFrom entries then imagePullSecrets, each ``Kind/name`` once, each with
  the field that lists it.
- ``template_references``: env valueFrom secretKeyRef/configMapKeyRef, envFrom
  secretRef/configMapRef of containers and init containers, secret/configMap volumes and
  projected sources, each with its field path; ``unlisted_references`` names the ones the
  lease does not take along.
- admission: a template setting ``spec.imagePullSecrets`` is refused (the lease's field is the
  way); an ``imagePullSecrets`` change of a Job lease is refused by the Job rule.
- ``hub_copy``: always a Secret of type Opaque in the provider's hub namespace, named per
  (placement, kind, name), owned by the placement, labelled as a copy of the placement,
  annotated with the source's kind, name, namespace, version (and a Secret's type, a
  ConfigMap's binary keys); no data outside ``data``. ``provider_object`` gives back the
  original kind, name, type and data (a ConfigMap's text decoded, its binaryData kept).
- hub plan: a lease naming a missing Secret gets ``Scheduled=False ConfigNotFound`` naming
  kind, name, field and namespace, and nothing is placed; once the view has it the placement
  carries ``configRevisions`` (names and versions only) and a copy is planned per source;
  a copy already of that version is not written again; a new version of the source updates
  the placement's revision and rewrites the copy; a template reference not listed ->
  ``ConfigNotListed`` naming the field; a service-account token Secret -> ``ConfigNotCopyable``.
  No Secret data reaches the placement's spec, the lease status or an Event.
- market view: records a source's version, never its data; a copy in a provider namespace
  by its source version; a change of a source returns the leases that take it along.
- executor: copies are written after the placements, owned by the placement just created;
  a source gone meanwhile is skipped.
- agent: ``config_problems`` names a copy missing or of another version (never data); the
  manifests carry the original ConfigMap and Secret before the workload, the pods carry the
  lease's imagePullSecrets, and the agent changes nothing else of the template.
  Objects no longer taken along are removed with one delete-collection per kind by label,
  keeping the wanted names (no get or list of Secrets).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kommons.agent import plan as agent_plan
from kommons.agent.workload import changed_by_agent, sanitised_pod_template, target_namespace
from kommons.api import ComputeLease, LeasePlacement, template_violations
from kommons.api.common import LocalObjectReference
from kommons.api.lease import ConfigSource
from kommons.config_copies import (
    ANNOTATION_REVISION,
    LABEL_COPY,
    copy_name,
    hub_copy,
    provider_object,
    sources,
    template_references,
    unlisted_references,
)
from kommons.hub.executor import Executor
from kommons.hub.plan import LeasePlan, World, plan_lease
from tests.unit.test_hub_plan import NOW, POOL, lease_body, market, provider_body

SECRET_VALUE = "s3cr3t-p4ssw0rd"
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "app-env", "namespace": "team-a", "resourceVersion": "71"},
    "type": "Opaque",
    "data": {"PASSWORD": base64.b64encode(SECRET_VALUE.encode()).decode()},
}
PULL = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "registry", "namespace": "team-a", "resourceVersion": "72"},
    "type": "kubernetes.io/dockerconfigjson",
    "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()},
}
CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "app-config", "namespace": "team-a", "resourceVersion": "73"},
    "data": {"mode": "fast", "motd.txt": "héllo\n"},
    "binaryData": {"blob": base64.b64encode(b"\x00\xff").decode()},
}
TEMPLATE = {
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "envFrom": [{"secretRef": {"name": "app-env"}}],
                "env": [
                    {
                        "name": "MODE",
                        "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}},
                    }
                ],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}],
            }
        ],
        "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}],
    }
}
CONFIG_SPEC: dict[str, Any] = {
    "template": TEMPLATE,
    "configFrom": [
        {"kind": "Secret", "name": "app-env"},
        {"kind": "ConfigMap", "name": "app-config"},
    ],
    "imagePullSecrets": [{"name": "registry"}],
}


def lease(**spec: Any) -> ComputeLease:
    return ComputeLease.model_validate(lease_body(**(CONFIG_SPEC | spec)))


def known(*bodies: dict[str, Any]) -> dict[tuple[str, str, str], str | None]:
    return {
        (b["metadata"]["namespace"], b["kind"], b["metadata"]["name"]): b["metadata"][
            "resourceVersion"
        ]
        for b in bodies
    }


def plan_of(
    the_lease: ComputeLease,
    config: dict[tuple[str, str, str], str | None],
    *,
    placements: list[LeasePlacement] | None = None,
    copies: dict[tuple[str, str], str] | None = None,
) -> LeasePlan:
    view = market(provider_body("cheap"))
    view.set_lease(the_lease)
    for placement in placements or ():
        view.set_placement(placement)
    world = World(
        placements=placements or [],
        pool=POOL,
        account="acct",
        namespace_labels={},
        market=view,
        now=NOW,
        config=config,
        copies=copies or {},
    )
    return plan_lease(the_lease, world)


def scheduled(plan: LeasePlan) -> tuple[str, str, str]:
    assert plan.status is not None
    found = [c for c in plan.status.conditions or () if c.type == "Scheduled"]
    assert found
    return found[0].status, found[0].reason, found[0].message


def served(plan: LeasePlan) -> list[LeasePlacement]:
    out = []
    for i, placement in enumerate(plan.create):
        body = placement.to_api()
        body["metadata"].update(uid=f"p-{i}", resourceVersion="1")
        out.append(LeasePlacement.model_validate(body))
    return out


def no_secret_in(plan: LeasePlan) -> None:
    text = json.dumps(
        {
            "create": [p.to_api() for p in plan.create],
            "update": [p.to_api() for p in plan.update],
            "status": plan.status.to_api() if plan.status else None,
            "events": [e.message for e in plan.events],
        }
    )
    assert SECRET_VALUE not in text
    assert SECRET["data"]["PASSWORD"] not in text


# --- sources and references -------------------------------------------------------------


def test_sources_are_listed_once_with_their_field() -> None:
    found = sources(
        [ConfigSource(kind="Secret", name="a"), ConfigSource(kind="ConfigMap", name="a")],
        [LocalObjectReference(name="a"), LocalObjectReference(name="pull")],
    )
    assert [(s.key, s.field) for s in found] == [
        ("Secret/a", "spec.configFrom[0]"),
        ("ConfigMap/a", "spec.configFrom[1]"),
        ("Secret/pull", "spec.imagePullSecrets[1]"),
    ]


def test_template_references_name_every_kind_of_reference() -> None:
    template = {
        "spec": {
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "c1"}}]}],
            "containers": [
                {
                    "name": "a",
                    "env": [
                        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}
                    ],
                    "envFrom": [{"secretRef": {"name": "s2"}}],
                }
            ],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "s3"}},
                {"name": "v2", "configMap": {"name": "c2"}},
                {
                    "name": "v3",
                    "projected": {
                        "sources": [{"secret": {"name": "s4"}}, {"configMap": {"name": "c3"}}]
                    },
                },
            ],
        }
    }
    assert sorted(template_references(template)) == sorted(
        [
            (
                "spec.template.spec.initContainers[0].envFrom[0].configMapRef.name",
                "ConfigMap",
                "c1",
            ),
            ("spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name", "Secret", "s1"),
            ("spec.template.spec.containers[0].envFrom[0].secretRef.name", "Secret", "s2"),
            ("spec.template.spec.volumes[0].secret.secretName", "Secret", "s3"),
            ("spec.template.spec.volumes[1].configMap.name", "ConfigMap", "c2"),
            ("spec.template.spec.volumes[2].projected.sources[0].secret.name", "Secret", "s4"),
            (
                "spec.template.spec.volumes[2].projected.sources[1].configMap.name",
                "ConfigMap",
                "c3",
            ),
        ]
    )
    listed = sources([ConfigSource(kind="Secret", name="s1")], None)
    messages = unlisted_references(template, listed)
    assert len(messages) == 6
    assert not any("secretKeyRef" in m for m in messages)
    assert any(
        m.startswith("spec.template.spec.volumes[0].secret.secretName: Secret s3") for m in messages
    )


def test_template_image_pull_secrets_are_refused_at_admission() -> None:
    template = {"spec": {"containers": [{"name": "a"}], "imagePullSecrets": [{"name": "r"}]}}
    (violation,) = template_violations(template, path="spec.template")
    assert violation.startswith("spec.template.spec.imagePullSecrets: imagePullSecrets must not")
    assert "spec.imagePullSecrets" in violation.split(":", 1)[1]


def test_job_lease_image_pull_secrets_are_in_the_immutable_rule() -> None:
    from kommons.api.lease import JOB_RULES

    rules = JOB_RULES["x-kubernetes-validations"]
    immutable = next(r for r in rules if "immutable" in r["message"])
    assert "self.imagePullSecrets == oldSelf.imagePullSecrets" in immutable["rule"]
    assert "imagePullSecrets" in immutable["message"]


# --- the hub's copy and the provider's object ---------------------------------------------


def test_hub_copy_of_a_secret_is_an_owned_opaque_secret_with_names_only_outside_data() -> None:
    copy = hub_copy(
        SECRET, kind="Secret", placement="web-1", namespace="kommons-provider-a", owner_uid="u1"
    )
    meta = copy["metadata"]
    assert copy["kind"] == "Secret"
    assert copy["type"] == "Opaque"
    assert meta["name"] == copy_name("web-1", "Secret", "app-env")
    assert meta["name"] != copy_name("web-1", "ConfigMap", "app-env")
    assert meta["name"] != copy_name("web-2", "Secret", "app-env")
    assert meta["namespace"] == "kommons-provider-a"
    assert meta["labels"][LABEL_COPY] == "true"
    assert meta["labels"]["kommons.io/placement"] == "web-1"
    assert meta["annotations"][ANNOTATION_REVISION] == "71"
    assert meta["ownerReferences"][0]["uid"] == "u1"
    assert meta["ownerReferences"][0]["kind"] == "LeasePlacement"
    assert copy["data"] == SECRET["data"]
    assert SECRET["data"]["PASSWORD"] not in json.dumps(meta)
    assert (
        "ownerReferences"
        not in hub_copy(SECRET, kind="Secret", placement="web-1", namespace="n", owner_uid=None)[
            "metadata"
        ]
    )


def test_provider_object_gives_back_the_original() -> None:
    labels = {"kommons.io/placement": "web-1"}
    for source, kind in ((SECRET, "Secret"), (PULL, "Secret"), (CONFIG_MAP, "ConfigMap")):
        copy = hub_copy(source, kind=kind, placement="web-1", namespace="n", owner_uid="u")  # type: ignore[arg-type]
        out = provider_object(copy, namespace="kommons-web-1", labels=labels)
        assert out["kind"] == source["kind"]
        assert out["metadata"]["name"] == source["metadata"]["name"]
        assert out["metadata"]["namespace"] == "kommons-web-1"
        assert out["metadata"]["labels"] == labels | {LABEL_COPY: "true"}
        assert out.get("type") == source.get("type")
        assert out["data"] == source["data"]
        assert out.get("binaryData") == source.get("binaryData")


# --- the hub's plan -----------------------------------------------------------------------


def test_a_missing_secret_holds_the_lease_back_with_a_condition_naming_it() -> None:
    plan = plan_of(lease(), known(CONFIG_MAP, PULL))
    status, reason, message = scheduled(plan)
    assert (status, reason) == ("False", "ConfigNotFound")
    assert "Secret app-env (spec.configFrom[0]) does not exist in namespace team-a" in message
    assert "nothing is placed until it exists" in message
    assert not plan.create
    assert not plan.copies
    no_secret_in(plan)


def test_once_it_exists_the_placement_carries_versions_and_copies_are_planned() -> None:
    plan = plan_of(lease(), known(SECRET, CONFIG_MAP, PULL))
    assert scheduled(plan)[:2] == ("True", "Placed")
    (placement,) = plan.create
    assert placement.spec.config_revisions == {
        "Secret/app-env": "71",
        "ConfigMap/app-config": "73",
        "Secret/registry": "72",
    }
    name = str(placement.metadata.name)
    assert sorted((c.kind, c.name) for c in plan.copies) == [
        ("ConfigMap", "app-config"),
        ("Secret", "app-env"),
        ("Secret", "registry"),
    ]
    assert {(c.placement, c.namespace, c.source_namespace) for c in plan.copies} == {
        (name, "kommons-provider-cheap", "team-a")
    }
    no_secret_in(plan)


def test_copies_follow_the_source_version() -> None:
    the_lease = lease()
    first = plan_of(the_lease, known(SECRET, CONFIG_MAP, PULL))
    placements = served(first)
    name = str(placements[0].metadata.name)
    ns = "kommons-provider-cheap"
    up_to_date = {
        (ns, copy_name(name, "Secret", "app-env")): "71",
        (ns, copy_name(name, "ConfigMap", "app-config")): "73",
        (ns, copy_name(name, "Secret", "registry")): "72",
    }
    steady = plan_of(
        the_lease, known(SECRET, CONFIG_MAP, PULL), placements=placements, copies=up_to_date
    )
    assert not steady.copies
    assert not steady.update
    assert not steady.create
    changed = dict(SECRET, metadata=dict(SECRET["metadata"], resourceVersion="80"))
    after = plan_of(
        the_lease, known(changed, CONFIG_MAP, PULL), placements=placements, copies=up_to_date
    )
    (updated,) = after.update
    assert (updated.spec.config_revisions or {})["Secret/app-env"] == "80"
    assert [(c.kind, c.name, c.placement) for c in after.copies] == [("Secret", "app-env", name)]
    no_secret_in(after)


def test_an_unlisted_template_reference_is_refused_naming_the_field() -> None:
    plan = plan_of(lease(configFrom=[{"kind": "Secret", "name": "app-env"}]), known(SECRET, PULL))
    status, reason, message = scheduled(plan)
    assert (status, reason) == ("False", "ConfigNotListed")
    assert "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.name" in message
    assert "ConfigMap app-config is not listed in spec.configFrom" in message
    assert not plan.create


def test_a_service_account_token_cannot_travel() -> None:
    config = known(SECRET, CONFIG_MAP, PULL)
    config[("team-a", "Secret", "app-env")] = None
    status, reason, message = scheduled(plan_of(lease(), config))
    assert (status, reason) == ("False", "ConfigNotCopyable")
    assert "Secret app-env (spec.configFrom[0])" in message


# --- the hub's view -------------------------------------------------------------------------


def test_the_view_keeps_versions_never_data_and_wakes_the_leases_taking_it() -> None:
    view = market()
    view.set_lease(lease())
    assert view.set_config("Secret", SECRET) == ["team-a/web"]
    assert view.set_config("Secret", SECRET) == []  # same version: nothing to do
    assert view.config[("team-a", "Secret", "app-env")] == "71"
    assert (
        view.set_config("ConfigMap", dict(SECRET, metadata=dict(SECRET["metadata"], name="x")))
        == []
    )
    token = dict(SECRET, type="kubernetes.io/service-account-token")
    view.set_config("Secret", token)
    assert view.config[("team-a", "Secret", "app-env")] is None
    assert SECRET_VALUE not in repr(view.__dict__)
    assert SECRET["data"]["PASSWORD"] not in repr(view.__dict__)
    copy = hub_copy(
        SECRET, kind="Secret", placement="p", namespace="kommons-provider-a", owner_uid="u"
    )
    assert (
        view.set_config("Secret", copy | {"metadata": copy["metadata"] | {"resourceVersion": "9"}})
        == []
    )
    assert view.copies[("kommons-provider-a", copy["metadata"]["name"])] == "71"
    assert ("kommons-provider-a", "Secret", copy["metadata"]["name"]) not in view.config
    assert view.remove_config("Secret", "team-a", "app-env") == ["team-a/web"]
    assert ("team-a", "Secret", "app-env") not in view.config


# --- the hub's executor ---------------------------------------------------------------------


class FakeKube:
    """Serves the sources; records creates and applies."""

    def __init__(self, sources: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.sources = sources
        self.calls: list[str] = []
        self.applied: list[dict[str, Any]] = []

    def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> Any:
        self.calls.append(f"create {resource.plural}")
        return {**body, "metadata": {**body["metadata"], "uid": "new-uid", "resourceVersion": "1"}}

    def get_or_none(self, resource: Any, name: str, namespace: str | None = None) -> Any:
        return self.sources.get((resource.plural, name))

    def apply(self, resource: Any, body: dict[str, Any], **_: Any) -> Any:
        self.calls.append(f"apply {resource.plural}")
        self.applied.append(body)
        return body

    def request(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return body

    def patch(self, *_: Any, **__: Any) -> Any:
        return {"metadata": {"resourceVersion": "2"}}


def test_the_executor_writes_copies_after_the_placement_owned_by_it() -> None:
    the_lease = lease()
    plan = plan_of(the_lease, known(SECRET, CONFIG_MAP, PULL))
    plan.events = []
    kube = FakeKube(
        {
            ("secrets", "app-env"): SECRET,
            ("configmaps", "app-config"): CONFIG_MAP,
            # the pull Secret went away meanwhile: skipped
        }
    )
    outcome = Executor(kube).execute(the_lease, plan)  # type: ignore[arg-type]
    assert kube.calls[:3] == ["create leaseplacements", "apply secrets", "apply secrets"]
    assert len(kube.applied) == 2
    for body in kube.applied:
        assert body["metadata"]["ownerReferences"][0]["uid"] == "new-uid"
        assert body["metadata"]["namespace"] == "kommons-provider-cheap"
    assert all("data" not in meta for meta in outcome.copies)


def test_a_kept_placements_missing_copy_is_owned_by_the_uid_the_plan_saw() -> None:
    """A kept placement's copy is owned by the uid the plan saw; no second read of it."""
    the_lease = lease()
    placements = served(plan_of(the_lease, known(SECRET, CONFIG_MAP, PULL)))
    name = str(placements[0].metadata.name)
    ns = "kommons-provider-cheap"
    copies = {  # the Secret's copy is gone (deleted by hand, say)
        (ns, copy_name(name, "ConfigMap", "app-config")): "73",
        (ns, copy_name(name, "Secret", "registry")): "72",
    }
    plan = plan_of(the_lease, known(SECRET, CONFIG_MAP, PULL), placements=placements, copies=copies)
    assert not plan.update
    assert not plan.create
    assert [(c.name, c.owner_uid) for c in plan.copies] == [("app-env", "p-0")]
    plan.events = []
    plan.status = None
    kube = FakeKube({("secrets", "app-env"): SECRET})
    Executor(kube).execute(the_lease, plan)  # type: ignore[arg-type]
    assert kube.calls == ["apply secrets"]
    (body,) = kube.applied
    assert body["metadata"]["ownerReferences"][0]["uid"] == "p-0"


# --- the agent ------------------------------------------------------------------------------


def agent_placement(revisions: dict[str, str]) -> LeasePlacement:
    plan = plan_of(lease(), known(SECRET, CONFIG_MAP, PULL))
    body = plan.create[0].to_api()
    body["metadata"].update(uid="p-uid", resourceVersion="1")
    body["spec"]["configRevisions"] = revisions
    return agent_plan.parse_placement(body)


def test_the_agent_waits_for_copies_of_the_asked_version() -> None:
    placement = agent_placement({"Secret/app-env": "71", "ConfigMap/app-config": "73"})
    name = str(placement.metadata.name)
    secret = hub_copy(SECRET, kind="Secret", placement=name, namespace="n", owner_uid="u")
    old = hub_copy(
        dict(CONFIG_MAP, metadata=dict(CONFIG_MAP["metadata"], resourceVersion="60")),
        kind="ConfigMap",
        placement=name,
        namespace="n",
        owner_uid="u",
    )
    problems = agent_plan.config_problems(
        placement, {"Secret/app-env": None, "ConfigMap/app-config": old}
    )
    assert problems == [
        "ConfigMap/app-config: the hub's copy is of version 60, the placement asks for 73",
        "Secret/app-env: the hub's copy is not there yet",
    ]
    config = hub_copy(CONFIG_MAP, kind="ConfigMap", placement=name, namespace="n", owner_uid="u")
    copies = {"Secret/app-env": secret, "ConfigMap/app-config": config}
    assert agent_plan.config_problems(placement, copies) == []
    assert SECRET_VALUE not in " ".join(problems)


def test_the_agent_applies_the_originals_before_the_workload_and_sets_pull_secrets() -> None:
    revisions = {"Secret/app-env": "71", "ConfigMap/app-config": "73", "Secret/registry": "72"}
    placement = agent_placement(revisions)
    name = str(placement.metadata.name)
    copies = {
        key: hub_copy(src, kind=kind, placement=name, namespace="n", owner_uid="u")  # type: ignore[arg-type]
        for key, src, kind in (
            ("Secret/app-env", SECRET, "Secret"),
            ("ConfigMap/app-config", CONFIG_MAP, "ConfigMap"),
            ("Secret/registry", PULL, "Secret"),
        )
    }
    manifests = agent_plan.desired_manifests(placement, runtime_class=None, copies=copies)
    kinds = [m["kind"] for m in manifests]
    assert kinds[-1] == "Deployment"
    made = {(m["kind"], m["metadata"]["name"]): m for m in manifests[:-1]}
    assert made[("Secret", "app-env")]["data"] == SECRET["data"]
    assert made[("Secret", "registry")]["type"] == "kubernetes.io/dockerconfigjson"
    assert made[("ConfigMap", "app-config")]["data"] == CONFIG_MAP["data"]
    for key in (("Secret", "app-env"), ("ConfigMap", "app-config"), ("Secret", "registry")):
        assert made[key]["metadata"]["namespace"] == target_namespace(name)
    pod = manifests[-1]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "app-env"}}]
    work = agent_plan.placement_work(placement, runtime_class=None, copies=copies)
    template = placement.spec.template.to_api()
    assert changed_by_agent(template, sanitised_pod_template(work)) == []


class DeletingKube:
    """Answers delete-collection requests with the objects a label/field selector matches."""

    def __init__(self, present: dict[str, list[str]]) -> None:
        self.present = present
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method: str, path: str, *, query: dict[str, str]) -> Any:
        self.requests.append((method, path, query))
        plural = path.rsplit("/", 1)[-1]
        keep = {
            part.split("!=", 1)[1] for part in query.get("fieldSelector", "").split(",") if part
        }
        gone = [n for n in self.present.get(plural, []) if n not in keep]
        return {"items": [{"metadata": {"name": n}} for n in gone]}


def test_the_agent_prunes_by_selector_without_reading_secrets() -> None:
    from kommons.agent.provider_cluster import ProviderCluster

    kube = DeletingKube({"secrets": ["app-env", "old"], "configmaps": ["old-config"]})
    keep = [{"kind": "Secret", "metadata": {"name": "app-env"}}]
    gone = ProviderCluster(kube).prune_config("web-1", keep)  # type: ignore[arg-type]
    assert gone == ["Secret/old", "ConfigMap/old-config"]
    assert [m for m, _, _ in kube.requests] == ["DELETE", "DELETE"]
    (secrets, configmaps) = kube.requests
    assert secrets[1] == f"/api/v1/namespaces/{target_namespace('web-1')}/secrets"
    assert secrets[2] == {
        "labelSelector": f"{LABEL_COPY}=true",
        "fieldSelector": "metadata.name!=app-env",
    }
    assert configmaps[2] == {"labelSelector": f"{LABEL_COPY}=true"}
