"""The pod template a tenant leases, and the one list of what Kommons refuses in it.

Say no early and clearly: whatever the agent would drop or change in a tenant's template is
refused at admission, naming the field. :data:`TEMPLATE_RULES` is that list. It is used three
times, so the three cannot drift:

- the CRD CEL rules (:mod:`kommons.crdgen` renders each rule into ``x-kubernetes-validations``
  of the object that holds the field, with the field as ``fieldPath``);
- :func:`template_violations`, the same checks in Python (the hub's gate, defence in depth);
- :func:`sanitise_template`, the agent's sanitiser: it removes exactly the fields a rule
  refuses (and the unknown fields of the closed objects), so a template the API server
  accepted comes through it unchanged; the agent then only *adds* its own fields
  (:mod:`kommons.agent.workload`).

Every other Kubernetes pod field is accepted and kept (``x-kubernetes-preserve-unknown-fields``
on the pod spec and containers). The security contexts, capabilities, seccomp profiles,
affinity, volumes, emptyDir and projected sources are *closed*: they declare every Kubernetes
field, an unknown field is refused by strict field validation (kubectl's default) or pruned by
the API server with a warning, and the sanitiser drops it too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from kommons.api.common import ApiModel, Cel, LooseModel, cel_rules
from kommons.api_names import LABEL_MANAGED_BY, PREFIX
from kommons.quantity import parse_quantity

ALLOWED_ADDED_CAPABILITIES = ("NET_BIND_SERVICE",)
"""Capabilities a container may add (Pod Security ``restricted``)."""
ALLOWED_VOLUME_SOURCES = ("emptyDir", "configMap", "secret", "projected", "downwardAPI")
"""Volume sources a leased pod may use."""
MAX_TERMINATION_GRACE_SECONDS = 60
"""Upper bound of ``terminationGracePeriodSeconds``: a deleted lease's pods stop within it."""
EPHEMERAL_STORAGE_PER_REPLICA = "2Gi"
"""Ephemeral storage (writable layers, logs, disk emptyDirs) one replica may use: every
container's ``limits.ephemeral-storage`` and the bound of an emptyDir ``sizeLimit``."""
MAX_ID = 2147483647
"""Largest UID/GID Kubernetes accepts."""
KOMMONS_LABEL_PREFIX = f"{PREFIX}/"
"""Pod labels with this prefix (and ``app.kubernetes.io/managed-by``) are set by Kommons only."""

RESTRICTED = "leased workloads run under Pod Security restricted on community clusters"
PLACED = "Kommons places the workload, pods cannot choose or pin nodes"
NO_SERVICE_ACCOUNT = "leased pods run without a service account on the provider"
NO_TOKEN = "leased pods never get a service-account token of the provider's cluster"
NO_PRIORITY = "leased pods cannot take priority over the provider's own workloads"
LEASED_RESOURCES = (
    "the agent gives every container one replica's spec.resources as requests and limits,"
    " set spec.resources instead"
)
RUNTIME = "the provider's container runtime decides it for leased pods"
FORBIDDEN = "FieldValueForbidden"

# --------------------------------------------------------------------------------------
# The one list
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """How a field's value is judged: the same predicate in CEL and in Python."""

    must: str
    """What the user reads after the field name, e.g. ``must not be set``."""
    cel: Callable[[str], str]
    """CEL expression on the holding object ``self`` given the field's wire name."""
    ok: Callable[[Any], bool]
    """Python predicate on the field's value (``None`` when absent)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


ABSENT = Check("must not be set", lambda f: f"!has(self.{f})", lambda v: v is None)


def empty(kind: type[str] | type[list[Any]] | type[dict[str, Any]]) -> Check:
    """The field, when set, is an empty ``kind`` (string, list or map)."""
    return Check(
        "must not be set",
        lambda f: f"!has(self.{f}) || size(self.{f}) == 0",
        lambda v: v is None or (isinstance(v, kind) and len(v) == 0),
    )


EMPTY_STR, EMPTY_LIST, EMPTY_MAP = empty(str), empty(list), empty(dict)
NOT_TRUE = Check(
    "must not be true", lambda f: f"!has(self.{f}) || !self.{f}", lambda v: v is None or v is False
)
NOT_FALSE = Check(
    "must not be false", lambda f: f"!has(self.{f}) || self.{f}", lambda v: v is None or v is True
)
ZERO = Check(
    "must be absent or 0",
    lambda f: f"!has(self.{f}) || self.{f} == 0",
    lambda v: v is None or (_is_int(v) and v == 0),
)
NON_ROOT_ID = Check(
    f"must be a non-root ID from 1 to {MAX_ID} (0 is root)",
    lambda f: f"!has(self.{f}) || (self.{f} >= 1 && self.{f} <= {MAX_ID})",
    lambda v: v is None or (_is_int(v) and 1 <= v <= MAX_ID),
)
NON_ROOT_IDS = Check(
    f"must all be non-root IDs from 1 to {MAX_ID} (0 is root)",
    lambda f: f"!has(self.{f}) || self.{f}.all(x, x >= 1 && x <= {MAX_ID})",
    lambda v: (
        v is None or (isinstance(v, list) and all(_is_int(x) and 1 <= x <= MAX_ID for x in v))
    ),
)


def one_of(*values: str) -> Check:
    """The field, when set, is one of ``values``."""
    say = values[0] if len(values) == 1 else "one of " + ", ".join(values)
    return Check(
        f"must be {say}",
        lambda f: f"!has(self.{f}) || self.{f} in {_cel_list(values)}",
        lambda v: v is None or (isinstance(v, str) and v in values),
    )


def all_in(*values: str) -> Check:
    """The list field, when set, holds only ``values``."""
    return Check(
        "may only contain " + ", ".join(values),
        lambda f: f"!has(self.{f}) || self.{f}.all(x, x in {_cel_list(values)})",
        lambda v: v is None or (isinstance(v, list) and all(x in values for x in v)),
    )


def int_range(low: int, high: int) -> Check:
    """The integer field, when set, is within ``low..high``."""
    return Check(
        f"must be between {low} and {high}",
        lambda f: f"!has(self.{f}) || (self.{f} >= {low} && self.{f} <= {high})",
        lambda v: v is None or (_is_int(v) and low <= v <= high),
    )


def quantity_at_most(bound: str) -> Check:
    """The quantity field, when set, is a quantity of at most ``bound``."""

    def ok(value: Any) -> bool:
        if value is None:
            return True
        try:
            return isinstance(value, str) and parse_quantity(value) <= parse_quantity(bound)
        except ValueError:
            return False

    return Check(
        f"must be a quantity of at most {bound}",
        lambda f: (
            f"!has(self.{f}) || (isQuantity(self.{f})"
            f" && quantity(self.{f}).compareTo(quantity('{bound}')) <= 0)"
        ),
        ok,
    )


def keys_not_reserved(prefix: str, *keys: str) -> Check:
    """The map field, when set, has no key starting with ``prefix`` nor any of ``keys``."""

    def reserved(key: Any) -> bool:
        return str(key).startswith(prefix) or key in keys

    return Check(
        f"must not use the keys {', '.join(keys)} or any starting with {prefix}",
        lambda f: (
            f"!has(self.{f}) || self.{f}.all(k, !k.startsWith('{prefix}')"
            f" && !(k in {_cel_list(keys)}))"
        ),
        lambda v: v is None or (isinstance(v, dict) and not any(reserved(k) for k in v)),
    )


@dataclass(frozen=True)
class TemplateRule:
    """One pod-template field Kommons refuses (and the agent would otherwise drop)."""

    scope: str
    """The object holding the field, a key of :data:`SCOPES` (``pod``, ``container`` ...)."""
    field: str
    """The field's wire name in that object."""
    check: Check
    why: str
    """Why it is refused, in the tenant's terms."""
    say: str | None = None
    """What is refused, when not ``"<field> <check.must>"``."""

    @property
    def message(self) -> str:
        """The message the API server returns (after the field path)."""
        return f"{self.say or f'{self.field} {self.check.must}'}: {self.why}"

    def cel(self) -> Cel:
        """The CEL rule, attached to the holding object and reported on the field."""
        return Cel(self.check.cel(self.field), self.message, f".{self.field}", FORBIDDEN)


_OTHER_VOLUME = (
    "leased pods can only use emptyDir, configMap, secret, projected and downwardAPI volumes"
)
DISALLOWED_VOLUME_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)
"""Every other Kubernetes volume source; each is refused naming the volume and its type."""


def _container_security_rules() -> list[TemplateRule]:
    s = "securityContext"
    return [
        TemplateRule(s, "privileged", NOT_TRUE, RESTRICTED),
        TemplateRule(s, "allowPrivilegeEscalation", NOT_TRUE, RESTRICTED),
        TemplateRule(s, "runAsNonRoot", NOT_FALSE, RESTRICTED),
        TemplateRule(s, "runAsUser", NON_ROOT_ID, RESTRICTED),
        TemplateRule(s, "runAsGroup", NON_ROOT_ID, RESTRICTED),
        TemplateRule(s, "procMount", one_of("Default"), RESTRICTED),
        TemplateRule(s, "seLinuxOptions", ABSENT, RUNTIME),
        TemplateRule(s, "appArmorProfile", ABSENT, RUNTIME),
        TemplateRule(s, "windowsOptions", ABSENT, "leased pods run on Linux"),
    ]


TEMPLATE_RULES: tuple[TemplateRule, ...] = (
    # --- template metadata
    TemplateRule(
        "metadata",
        "labels",
        keys_not_reserved(KOMMONS_LABEL_PREFIX, LABEL_MANAGED_BY),
        "Kommons sets these labels of leased pods",
    ),
    # --- pod spec: identity and credentials
    TemplateRule("pod", "serviceAccountName", ABSENT, NO_SERVICE_ACCOUNT),
    TemplateRule("pod", "serviceAccount", ABSENT, NO_SERVICE_ACCOUNT),
    TemplateRule("pod", "automountServiceAccountToken", NOT_TRUE, NO_TOKEN),
    TemplateRule(
        "pod",
        "imagePullSecrets",
        ABSENT,
        "list them in the lease's spec.imagePullSecrets instead: the agent copies those Secrets"
        " to the provider and sets the pods' imagePullSecrets from them",
    ),
    TemplateRule(
        "pod",
        "enableServiceLinks",
        NOT_TRUE,
        "leased pods get no environment variables describing the provider's services",
    ),
    # --- pod spec: placement and scheduling
    TemplateRule("pod", "nodeName", EMPTY_STR, PLACED),
    TemplateRule(
        "pod", "nodeSelector", EMPTY_MAP, PLACED + " (a GPU model goes in spec.resources.gpu.model)"
    ),
    TemplateRule("pod", "schedulerName", ABSENT, "the provider's own scheduler places leased pods"),
    TemplateRule(
        "pod",
        "tolerations",
        ABSENT,
        "leased pods cannot tolerate the taints providers keep nodes for themselves with",
    ),
    TemplateRule("pod", "priorityClassName", ABSENT, NO_PRIORITY),
    TemplateRule("pod", "priority", ABSENT, NO_PRIORITY),
    TemplateRule("pod", "preemptionPolicy", ABSENT, NO_PRIORITY),
    TemplateRule(
        "pod",
        "schedulingGates",
        EMPTY_LIST,
        "nothing on the provider removes scheduling gates, the pods would never start",
    ),
    # --- pod spec: runtime and resources
    TemplateRule(
        "pod",
        "runtimeClassName",
        ABSENT,
        "the provider chooses the runtime (sandbox) of leased pods",
    ),
    TemplateRule("pod", "overhead", ABSENT, "pod overhead comes from the provider's runtime"),
    TemplateRule(
        "pod",
        "resourceClaims",
        ABSENT,
        "dynamic resource claims are not leased, request GPUs in spec.resources.gpu",
    ),
    TemplateRule("pod", "resources", ABSENT, LEASED_RESOURCES),
    TemplateRule("pod", "hostUsers", ABSENT, RUNTIME),
    # --- pod spec: host namespaces
    TemplateRule(
        "pod", "hostNetwork", NOT_TRUE, "leased pods cannot use the provider's host network"
    ),
    TemplateRule(
        "pod", "hostPID", NOT_TRUE, "leased pods cannot see the provider's host processes"
    ),
    TemplateRule("pod", "hostIPC", NOT_TRUE, "leased pods cannot use the host's IPC"),
    TemplateRule(
        "pod",
        "ephemeralContainers",
        EMPTY_LIST,
        "a leased pod runs the containers of its template only",
        say="ephemeralContainers are not allowed",
    ),
    # --- pod spec: lifecycle
    TemplateRule(
        "pod",
        "terminationGracePeriodSeconds",
        int_range(0, MAX_TERMINATION_GRACE_SECONDS),
        "the pods of a deleted or moved lease must really stop",
    ),
    TemplateRule(
        "pod",
        "activeDeadlineSeconds",
        ABSENT,
        "the agent decides how long pods run: a lease until it expires (spec.duration) or is"
        " deleted, a Job lease (spec.job) until its completions or backoffLimit",
    ),
    TemplateRule(
        "pod",
        "restartPolicy",
        one_of("Always"),
        "the agent sets it (Always for a Deployment lease, Never for a Job lease with"
        " spec.job): leave it unset",
    ),
    # --- pod security context (closed)
    TemplateRule("podSecurityContext", "runAsNonRoot", NOT_FALSE, RESTRICTED),
    TemplateRule("podSecurityContext", "runAsUser", NON_ROOT_ID, RESTRICTED),
    TemplateRule("podSecurityContext", "runAsGroup", NON_ROOT_ID, RESTRICTED),
    TemplateRule("podSecurityContext", "fsGroup", NON_ROOT_ID, RESTRICTED),
    TemplateRule("podSecurityContext", "supplementalGroups", NON_ROOT_IDS, RESTRICTED),
    TemplateRule(
        "podSecurityContext",
        "sysctls",
        ABSENT,
        "leased pods cannot change kernel parameters on the provider's nodes",
    ),
    TemplateRule("podSecurityContext", "seLinuxOptions", ABSENT, RUNTIME),
    TemplateRule("podSecurityContext", "seLinuxChangePolicy", ABSENT, RUNTIME),
    TemplateRule("podSecurityContext", "supplementalGroupsPolicy", ABSENT, RUNTIME),
    TemplateRule("podSecurityContext", "appArmorProfile", ABSENT, RUNTIME),
    TemplateRule("podSecurityContext", "windowsOptions", ABSENT, "leased pods run on Linux"),
    # --- seccomp profile of the pod or a container (closed)
    TemplateRule(
        "seccompProfile",
        "type",
        one_of("RuntimeDefault"),
        "leased pods run with the runtime's default seccomp profile (" + RESTRICTED + ")",
        say="seccompProfile.type must be RuntimeDefault (not Unconfined or Localhost)",
    ),
    TemplateRule(
        "seccompProfile",
        "localhostProfile",
        ABSENT,
        "the provider's nodes have no seccomp profiles of yours",
        say="seccompProfile.localhostProfile must not be set",
    ),
    # --- affinity (closed)
    TemplateRule("affinity", "nodeAffinity", ABSENT, PLACED, say="nodeAffinity is not allowed"),
    TemplateRule(
        "affinity",
        "podAffinity",
        ABSENT,
        "leased pods cannot ask to run next to other pods on the provider"
        " (podAntiAffinity is allowed)",
        say="podAffinity is not allowed",
    ),
    # --- containers and init containers
    TemplateRule("container", "resources", ABSENT, LEASED_RESOURCES),
    TemplateRule("container", "resizePolicy", ABSENT, LEASED_RESOURCES),
    TemplateRule(
        "container",
        "restartPolicy",
        ABSENT,
        "a sidecar would run beside the replica's container with resources of its own, which"
        " a lease does not have (init containers run one after the other, before it)",
    ),
    *_container_security_rules(),
    TemplateRule(
        "capabilities",
        "add",
        all_in(*ALLOWED_ADDED_CAPABILITIES),
        RESTRICTED,
        say="capabilities.add may only contain NET_BIND_SERVICE",
    ),
    TemplateRule(
        "port",
        "hostPort",
        ZERO,
        "leased pods cannot bind ports on the provider's nodes",
        say="hostPort is not allowed",
    ),
    TemplateRule(
        "port",
        "hostIP",
        EMPTY_STR,
        "leased pods cannot bind the provider's host addresses",
        say="hostIP is not allowed",
    ),
    # --- volumes (closed)
    TemplateRule(
        "volume",
        "hostPath",
        ABSENT,
        "leased pods cannot mount the provider's node filesystem, use emptyDir",
        say="hostPath volumes are not allowed",
    ),
    *(
        TemplateRule(
            "volume", source, ABSENT, _OTHER_VOLUME, say=f"{source} volumes are not allowed"
        )
        for source in DISALLOWED_VOLUME_SOURCES
        if source != "hostPath"
    ),
    TemplateRule(
        "emptyDir",
        "sizeLimit",
        quantity_at_most(EPHEMERAL_STORAGE_PER_REPLICA),
        f"a replica has {EPHEMERAL_STORAGE_PER_REPLICA} of ephemeral storage"
        " (a Memory emptyDir also counts against the replica's memory)",
        say="emptyDir.sizeLimit must be a quantity of at most " + EPHEMERAL_STORAGE_PER_REPLICA,
    ),
    TemplateRule(
        "emptyDir",
        "medium",
        one_of("", "Memory"),
        "leased pods have no hugepages",
        say="emptyDir.medium must be empty (disk) or Memory",
    ),
    TemplateRule(
        "projectedSource",
        "serviceAccountToken",
        ABSENT,
        NO_TOKEN,
        say="projected serviceAccountToken sources are not allowed",
    ),
    TemplateRule(
        "projectedSource",
        "clusterTrustBundle",
        ABSENT,
        "the provider's trust bundles are not for leased pods",
        say="projected clusterTrustBundle sources are not allowed",
    ),
    TemplateRule(
        "projectedSource",
        "podCertificate",
        ABSENT,
        "leased pods cannot request certificates from the provider's signers",
        say="projected podCertificate sources are not allowed",
    ),
)
"""Every pod-template field the agent would drop or change, with why: the one list."""


def _rules(scope: str) -> dict[str, Any]:
    """``json_schema_extra`` of the model of ``scope``: the CEL rules of its fields."""
    return cel_rules(*(r.cel() for r in TEMPLATE_RULES if r.scope == scope))


# --------------------------------------------------------------------------------------
# The models (the fields the rules name must be declared: CEL sees declared fields only)
# --------------------------------------------------------------------------------------

Obj = dict[str, Any]
CapabilityName = Annotated[str, Field(min_length=1, max_length=64)]
_K8S = "(Kubernetes field)"


class SeccompProfile(ApiModel):
    """The seccomp profile of a pod or container: only RuntimeDefault."""

    model_config = ConfigDict(json_schema_extra=_rules("seccompProfile"))

    type: str | None = Field(default=None, max_length=32, description="Must be RuntimeDefault.")
    localhost_profile: str | None = Field(
        default=None, max_length=4096, description="Refused: the nodes have no profile of yours."
    )


class Capabilities(ApiModel):
    """Linux capabilities added to or dropped from a container."""

    model_config = ConfigDict(json_schema_extra=_rules("capabilities"))

    add: list[CapabilityName] | None = Field(
        default=None, max_length=32, description="Capabilities to add; only NET_BIND_SERVICE."
    )
    drop: list[CapabilityName] | None = Field(
        default=None,
        max_length=64,
        description="Capabilities to drop; the agent adds ALL when it is missing.",
    )


class SecurityContext(ApiModel):
    """A container's security context: every Kubernetes field, privilege-granting ones refused."""

    model_config = ConfigDict(json_schema_extra=_rules("securityContext"))

    privileged: bool | None = Field(default=None, description="Must be absent or false.")
    allow_privilege_escalation: bool | None = Field(
        default=None, description="Must be absent or false (the agent sets false)."
    )
    capabilities: Capabilities | None = Field(
        default=None, description="Capabilities; only NET_BIND_SERVICE may be added."
    )
    run_as_user: int | None = Field(default=None, description="UID; must be 1 or more.")
    run_as_group: int | None = Field(default=None, description="GID; must be 1 or more.")
    run_as_non_root: bool | None = Field(default=None, description="Must be absent or true.")
    read_only_root_filesystem: bool | None = Field(default=None, description="Kept as written.")
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile; only RuntimeDefault."
    )
    proc_mount: str | None = Field(default=None, max_length=32, description="Must be Default.")
    se_linux_options: Obj | None = Field(default=None, description="Refused.")
    app_armor_profile: Obj | None = Field(default=None, description="Refused.")
    windows_options: Obj | None = Field(default=None, description="Refused.")


class PodSecurityContext(ApiModel):
    """The pod's security context: non-root IDs are kept, privilege-granting fields refused."""

    model_config = ConfigDict(json_schema_extra=_rules("podSecurityContext"))

    run_as_user: int | None = Field(default=None, description="UID; must be 1 or more.")
    run_as_group: int | None = Field(default=None, description="GID; must be 1 or more.")
    fs_group: int | None = Field(default=None, description="GID; must be 1 or more.")
    supplemental_groups: list[int] | None = Field(
        default=None, max_length=64, description="GIDs; each must be 1 or more."
    )
    fs_group_change_policy: str | None = Field(
        default=None, max_length=32, description="OnRootMismatch or Always; kept as written."
    )
    run_as_non_root: bool | None = Field(default=None, description="Must be absent or true.")
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile; only RuntimeDefault."
    )
    sysctls: list[Obj] | None = Field(default=None, max_length=64, description="Refused.")
    se_linux_options: Obj | None = Field(default=None, description="Refused.")
    se_linux_change_policy: str | None = Field(default=None, max_length=32, description="Refused.")
    supplemental_groups_policy: str | None = Field(
        default=None, max_length=32, description="Refused."
    )
    app_armor_profile: Obj | None = Field(default=None, description="Refused.")
    windows_options: Obj | None = Field(default=None, description="Refused.")


class ContainerPort(LooseModel):
    """A port a container listens on; host ports are refused."""

    model_config = ConfigDict(json_schema_extra=_rules("port"))

    container_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port number in the container."
    )
    host_port: int | None = Field(default=None, description="Must be absent or 0.")
    host_ip: str | None = Field(
        default=None, alias="hostIP", max_length=64, description="Must be absent."
    )


class VolumeMount(LooseModel):
    """A container's volume mount (other Kubernetes fields of it are kept)."""

    name: str | None = Field(default=None, max_length=63, description="Volume name.")
    mount_path: str | None = Field(
        default=None, max_length=1024, description="Where it is mounted in the container."
    )


class Container(LooseModel):
    """A container of the leased pod (any other Kubernetes container field is kept)."""

    model_config = ConfigDict(json_schema_extra=_rules("container"))

    name: str | None = Field(default=None, max_length=63, description="Container name.")
    image: str | None = Field(default=None, max_length=4096, description="Container image.")
    ports: list[ContainerPort] | None = Field(
        default=None, max_length=64, description="Ports; host ports are refused."
    )
    volume_mounts: list[VolumeMount] | None = Field(
        default=None,
        max_length=64,
        description="Volume mounts; a mountPath may not be one of spec.storage[].mountPath.",
    )
    security_context: SecurityContext | None = Field(
        default=None, description="Security context; privilege-granting fields are refused."
    )
    resources: Obj | None = Field(
        default=None, description="Refused: the agent sets one replica's spec.resources."
    )
    resize_policy: list[Obj] | None = Field(
        default=None, max_length=8, description="Refused: resources are fixed by the lease."
    )
    restart_policy: str | None = Field(
        default=None, max_length=16, description="Refused: no sidecar containers."
    )


class EmptyDir(ApiModel):
    """An emptyDir volume: bounded by the replica's ephemeral storage (or memory)."""

    model_config = ConfigDict(json_schema_extra=_rules("emptyDir"))

    medium: str | None = Field(default=None, max_length=32, description='"" (disk) or Memory.')
    size_limit: str | None = Field(
        default=None,
        max_length=64,
        description=f"At most {EPHEMERAL_STORAGE_PER_REPLICA} (a quantity string).",
    )


class ProjectedSource(ApiModel):
    """One source of a projected volume: configMap, secret or downwardAPI."""

    model_config = ConfigDict(json_schema_extra=_rules("projectedSource"))

    config_map: Obj | None = Field(default=None, description=_K8S)
    secret: Obj | None = Field(default=None, description=_K8S)
    downward_api: Obj | None = Field(default=None, alias="downwardAPI", description=_K8S)
    service_account_token: Obj | None = Field(default=None, description="Refused.")
    cluster_trust_bundle: Obj | None = Field(default=None, description="Refused.")
    pod_certificate: Obj | None = Field(default=None, description="Refused.")


class Projected(LooseModel):
    """A projected volume (sources checked one by one)."""

    sources: list[ProjectedSource] | None = Field(
        default=None, max_length=32, description="configMap, secret or downwardAPI sources."
    )


class Volume(ApiModel):
    """A pod volume: emptyDir, configMap, secret, projected or downwardAPI."""

    model_config = ConfigDict(json_schema_extra=_rules("volume"))

    name: str | None = Field(default=None, max_length=63, description="Volume name.")
    empty_dir: EmptyDir | None = Field(default=None, description="Scratch space.")
    config_map: Obj | None = Field(default=None, description=_K8S)
    secret: Obj | None = Field(default=None, description=_K8S)
    projected: Projected | None = Field(default=None, description="Projected sources.")
    downward_api: Obj | None = Field(default=None, alias="downwardAPI", description=_K8S)

    # every other Kubernetes volume source, declared so CEL can refuse it by name
    aws_elastic_block_store: Obj | None = Field(default=None, description="Refused.")
    azure_disk: Obj | None = Field(default=None, description="Refused.")
    azure_file: Obj | None = Field(default=None, description="Refused.")
    cephfs: Obj | None = Field(default=None, description="Refused.")
    cinder: Obj | None = Field(default=None, description="Refused.")
    csi: Obj | None = Field(default=None, description="Refused.")
    ephemeral: Obj | None = Field(default=None, description="Refused.")
    fc: Obj | None = Field(default=None, description="Refused.")
    flex_volume: Obj | None = Field(default=None, description="Refused.")
    flocker: Obj | None = Field(default=None, description="Refused.")
    gce_persistent_disk: Obj | None = Field(default=None, description="Refused.")
    git_repo: Obj | None = Field(default=None, description="Refused.")
    glusterfs: Obj | None = Field(default=None, description="Refused.")
    host_path: Obj | None = Field(default=None, description="Refused.")
    image: Obj | None = Field(default=None, description="Refused.")
    iscsi: Obj | None = Field(default=None, description="Refused.")
    nfs: Obj | None = Field(default=None, description="Refused.")
    persistent_volume_claim: Obj | None = Field(default=None, description="Refused.")
    photon_persistent_disk: Obj | None = Field(default=None, description="Refused.")
    portworx_volume: Obj | None = Field(default=None, description="Refused.")
    quobyte: Obj | None = Field(default=None, description="Refused.")
    rbd: Obj | None = Field(default=None, description="Refused.")
    scale_io: Obj | None = Field(default=None, alias="scaleIO", description="Refused.")
    storageos: Obj | None = Field(default=None, description="Refused.")
    vsphere_volume: Obj | None = Field(default=None, description="Refused.")


class Affinity(ApiModel):
    """Pod anti-affinity is allowed; node and pod affinity are refused."""

    model_config = ConfigDict(json_schema_extra=_rules("affinity"))

    node_affinity: Obj | None = Field(default=None, description="Refused.")
    pod_affinity: Obj | None = Field(default=None, description="Refused.")
    pod_anti_affinity: Obj | None = Field(default=None, description="Spread replicas apart.")


class PodSpec(LooseModel):
    """The leased pod's spec: any Kubernetes pod field, minus the ones refused below."""

    model_config = ConfigDict(json_schema_extra=_rules("pod"))

    containers: list[Container] = Field(
        min_length=1,
        max_length=1,
        description="The replica's one container: it receives the leased resources"
        " (use initContainers for set-up steps).",
    )
    init_containers: list[Container] | None = Field(
        default=None, max_length=20, description="Init containers (up to 20)."
    )
    ephemeral_containers: list[Obj] | None = Field(
        default=None, max_length=20, description="Refused: must be absent or empty."
    )
    volumes: list[Volume] | None = Field(
        default=None, max_length=64, description="Volumes; only the allowed sources."
    )
    affinity: Affinity | None = Field(
        default=None, description="Pod anti-affinity; node and pod affinity are refused."
    )
    security_context: PodSecurityContext | None = Field(
        default=None, description="Pod security context; non-root IDs are kept."
    )
    service_account_name: str | None = Field(default=None, max_length=253, description="Refused.")
    service_account: str | None = Field(default=None, max_length=253, description="Refused.")
    automount_service_account_token: bool | None = Field(
        default=None, description="Must be absent or false (the agent sets false)."
    )
    enable_service_links: bool | None = Field(
        default=None, description="Must be absent or false (the agent sets false)."
    )
    image_pull_secrets: list[Obj] | None = Field(
        default=None, max_length=8, description="Refused: set the lease's spec.imagePullSecrets."
    )
    node_name: str | None = Field(default=None, max_length=253, description="Refused.")
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=64,
        description="Refused: Kommons selects nodes (GPU model through spec.resources.gpu).",
    )
    scheduler_name: str | None = Field(default=None, max_length=253, description="Refused.")
    tolerations: list[Obj] | None = Field(default=None, max_length=64, description="Refused.")
    priority_class_name: str | None = Field(default=None, max_length=253, description="Refused.")
    priority: int | None = Field(default=None, description="Refused.")
    preemption_policy: str | None = Field(default=None, max_length=32, description="Refused.")
    scheduling_gates: list[Obj] | None = Field(
        default=None, max_length=16, description="Refused: must be absent or empty."
    )
    runtime_class_name: str | None = Field(default=None, max_length=253, description="Refused.")
    overhead: Obj | None = Field(default=None, description="Refused.")
    resource_claims: list[Obj] | None = Field(default=None, max_length=8, description="Refused.")
    resources: Obj | None = Field(default=None, description="Refused: use spec.resources.")
    host_users: bool | None = Field(default=None, description="Refused.")
    host_network: bool | None = Field(default=None, description="Must be absent or false.")
    host_pid: bool | None = Field(
        default=None, alias="hostPID", description="Must be absent or false."
    )
    host_ipc: bool | None = Field(
        default=None, alias="hostIPC", description="Must be absent or false."
    )
    termination_grace_period_seconds: int | None = Field(
        default=None, description=f"0 to {MAX_TERMINATION_GRACE_SECONDS} seconds."
    )
    active_deadline_seconds: int | None = Field(
        default=None, description="Refused: a Deployment does not support it."
    )
    restart_policy: str | None = Field(default=None, max_length=16, description="Always.")


class TemplateMetadata(ApiModel):
    """Labels and annotations of the leased pods."""

    model_config = ConfigDict(json_schema_extra=_rules("metadata"))

    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=64,
        description="Labels added to every pod (not kommons.io/ ones).",
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=64, description="Annotations added to every pod."
    )


class PodTemplate(ApiModel):
    """A PodTemplateSpec: what every replica runs."""

    metadata: TemplateMetadata | None = Field(
        default=None, description="Labels and annotations of the pods."
    )
    spec: PodSpec = Field(
        description="The pod spec; privilege- and placement-escaping fields are refused."
    )


SCOPES: dict[str, type[BaseModel]] = {
    "template": PodTemplate,
    "metadata": TemplateMetadata,
    "pod": PodSpec,
    "podSecurityContext": PodSecurityContext,
    "seccompProfile": SeccompProfile,
    "affinity": Affinity,
    "container": Container,
    "securityContext": SecurityContext,
    "capabilities": Capabilities,
    "port": ContainerPort,
    "volume": Volume,
    "emptyDir": EmptyDir,
    "projected": Projected,
    "projectedSource": ProjectedSource,
}
"""The objects of a pod template Kommons looks into, by scope name."""

_CHILDREN: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "template": (("metadata", "metadata", False), ("spec", "pod", False)),
    "pod": (
        ("securityContext", "podSecurityContext", False),
        ("affinity", "affinity", False),
        ("initContainers", "container", True),
        ("containers", "container", True),
        ("volumes", "volume", True),
    ),
    "podSecurityContext": (("seccompProfile", "seccompProfile", False),),
    "container": (("securityContext", "securityContext", False), ("ports", "port", True)),
    "securityContext": (
        ("capabilities", "capabilities", False),
        ("seccompProfile", "seccompProfile", False),
    ),
    "volume": (("emptyDir", "emptyDir", False), ("projected", "projected", False)),
    "projected": (("sources", "projectedSource", True),),
}
"""Where each scope's nested scopes live: (key, scope, is a list of them)."""


def wire_fields(model: type[BaseModel]) -> frozenset[str]:
    """The wire names of the fields a model declares."""
    return frozenset(f.alias or name for name, f in model.model_fields.items())


def closed(scope: str) -> bool:
    """Whether the object of ``scope`` declares every field (unknown ones are refused)."""
    return SCOPES[scope].model_config.get("extra") != "allow"


def _check_declared() -> None:
    for rule in TEMPLATE_RULES:
        if rule.field not in wire_fields(SCOPES[rule.scope]):
            raise AssertionError(f"{rule.scope}.{rule.field} has a rule but no declared field")


_check_declared()
_BY_SCOPE: dict[str, tuple[TemplateRule, ...]] = {
    scope: tuple(r for r in TEMPLATE_RULES if r.scope == scope) for scope in SCOPES
}
_KNOWN: dict[str, frozenset[str]] = {scope: wire_fields(model) for scope, model in SCOPES.items()}


# --------------------------------------------------------------------------------------
# The same rules in Python: check (hub) and sanitise (agent)
# --------------------------------------------------------------------------------------


def _walk(scope: str, node: dict[str, Any], path: str, *, fix: bool) -> Iterator[tuple[str, str]]:
    """Yield ``(field path, why)`` for every problem under ``node``; remove them if ``fix``."""
    if fix:
        for key in [k for k, v in node.items() if v is None]:
            del node[key]  # the API server prunes nulls
    for rule in _BY_SCOPE.get(scope, ()):
        if not rule.check.ok(node.get(rule.field)):
            yield f"{path}.{rule.field}", rule.message
            if fix:
                node.pop(rule.field, None)
    if closed(scope):
        for key in [k for k in node if k not in _KNOWN[scope]]:
            yield f"{path}.{key}", f'unknown field "{key}"'
            if fix:
                del node[key]
    for key, child_scope, many in _CHILDREN.get(scope, ()):
        child = node.get(key)
        if child is None:
            continue
        if not many:
            if isinstance(child, dict):
                yield from _walk(child_scope, child, f"{path}.{key}", fix=fix)
            else:
                yield f"{path}.{key}", "must be an object"
                if fix:
                    del node[key]
            continue
        if not isinstance(child, list) or not all(isinstance(x, dict) for x in child):
            yield f"{path}.{key}", "must be a list of objects"
            if fix:
                if isinstance(child, list):
                    node[key] = [x for x in child if isinstance(x, dict)]
                else:
                    del node[key]
            child = node.get(key) if fix else [x for x in child if isinstance(x, dict)]
            if not isinstance(child, list):
                continue
        for i, item in enumerate(child):
            yield from _walk(child_scope, item, f"{path}.{key}[{i}]", fix=fix)


def template_violations(template: Mapping[str, Any], *, path: str = "template") -> list[str]:
    """Return why a pod template (wire form) would be refused; empty when it is acceptable.

    The same :data:`TEMPLATE_RULES` as the CRD's CEL rules, plus the unknown fields of the
    closed objects (which strict field validation refuses) and wrong types.

    Args:
        template: a PodTemplateSpec as a dict with camelCase keys.
        path: prefix for the field paths in the messages.

    Returns:
        One ``"field.path: why"`` string per violation.
    """
    root = copy.deepcopy(dict(template))
    return [f"{p}: {why}" for p, why in _walk("template", root, path, fix=False)]


def sanitise_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``template`` without any field :data:`TEMPLATE_RULES` refuses.

    Also without unknown fields of the closed objects, nulls, and values of the wrong shape.
    A template :func:`template_violations` accepts comes back equal (nulls aside).
    """
    root = copy.deepcopy(dict(template))
    for _ in _walk("template", root, "", fix=True):
        pass
    return root
