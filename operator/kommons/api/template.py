"""The pod template a tenant leases, typed only where Kommons checks it.

Every field Kubernetes knows is accepted and kept (``x-kubernetes-preserve-unknown-fields``);
the fields that could escape the sandbox or the placement are declared here so the API server
can refuse them with CEL rules before anything reaches a provider. The same rules hold for the
sanitised template in a ``LeasePlacement``. :func:`template_violations` checks a template the
same way in Python (defence in depth for the agent).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from kommons.api.common import ApiModel, Cel, LooseModel, cel_rules

ALLOWED_ADDED_CAPABILITIES = ("NET_BIND_SERVICE",)
"""Capabilities a container may add (Pod Security ``restricted``)."""

RESTRICTED = "leased workloads run under Pod Security restricted on community clusters"
PLACED = "Kommons places the workload, pods cannot choose or pin nodes"
FORBIDDEN = "FieldValueForbidden"

CapabilityName = Annotated[str, Field(min_length=1, max_length=64)]


def _forbid(rule: str, message: str, field_path: str | None = None) -> Cel:
    return Cel(rule, message, field_path=field_path, reason=FORBIDDEN)


class Capabilities(LooseModel):
    """Linux capabilities added to or dropped from a container."""

    add: (
        Annotated[
            list[CapabilityName],
            _forbid(
                "self.all(c, c == 'NET_BIND_SERVICE')",
                "capabilities.add may only contain NET_BIND_SERVICE: " + RESTRICTED,
            ),
        ]
        | None
    ) = Field(
        default=None, max_length=32, description="Capabilities to add; only NET_BIND_SERVICE."
    )
    drop: list[CapabilityName] | None = Field(
        default=None, max_length=64, description="Capabilities to drop, e.g. [ALL]."
    )


class SeccompProfile(LooseModel):
    """The seccomp profile of a pod or container."""

    type: (
        Annotated[
            str,
            Field(max_length=32),
            _forbid(
                "self != 'Unconfined'",
                "seccompProfile.type must not be Unconfined: " + RESTRICTED,
            ),
        ]
        | None
    ) = Field(default=None, description="RuntimeDefault or Localhost; Unconfined is refused.")


RunAsUser = Annotated[int, _forbid("self != 0", "runAsUser must not be 0 (root): " + RESTRICTED)]
RunAsNonRoot = Annotated[
    bool, _forbid("self == true", "runAsNonRoot must not be false: " + RESTRICTED)
]


class SecurityContext(LooseModel):
    """A container's security context; the fields that grant privileges are refused."""

    privileged: (
        Annotated[bool, _forbid("self == false", "privileged must not be true: " + RESTRICTED)]
        | None
    ) = Field(default=None, description="Must be absent or false.")
    allow_privilege_escalation: (
        Annotated[
            bool,
            _forbid("self == false", "allowPrivilegeEscalation must not be true: " + RESTRICTED),
        ]
        | None
    ) = Field(default=None, description="Must be absent or false.")
    capabilities: Capabilities | None = Field(
        default=None, description="Capabilities; only NET_BIND_SERVICE may be added."
    )
    run_as_user: RunAsUser | None = Field(default=None, description="UID; 0 (root) is refused.")
    run_as_non_root: RunAsNonRoot | None = Field(
        default=None, description="Must be absent or true."
    )
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile; Unconfined is refused."
    )


class PodSecurityContext(LooseModel):
    """The pod-level security context; the fields that grant privileges are refused."""

    run_as_user: RunAsUser | None = Field(default=None, description="UID; 0 (root) is refused.")
    run_as_non_root: RunAsNonRoot | None = Field(
        default=None, description="Must be absent or true."
    )
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile; Unconfined is refused."
    )


class ContainerPort(LooseModel):
    """A port a container listens on; host ports are refused."""

    container_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port number in the container."
    )
    host_port: (
        Annotated[
            int,
            _forbid(
                "self == 0",
                "hostPort is not allowed: leased pods cannot bind ports on the provider's"
                " nodes, use spec.expose instead",
            ),
        ]
        | None
    ) = Field(default=None, description="Must be absent or 0: host ports are refused.")
    host_ip: (
        Annotated[
            str,
            Field(max_length=64),
            _forbid(
                "size(self) == 0",
                "hostIP is not allowed: leased pods cannot bind the provider's host addresses",
            ),
        ]
        | None
    ) = Field(default=None, alias="hostIP", description="Must be absent: host IPs are refused.")


class Container(LooseModel):
    """A container of the leased pod (any Kubernetes container field is accepted)."""

    name: str | None = Field(default=None, max_length=63, description="Container name.")
    image: str | None = Field(default=None, max_length=4096, description="Container image.")
    ports: list[ContainerPort] | None = Field(
        default=None, max_length=64, description="Ports; host ports are refused."
    )
    security_context: SecurityContext | None = Field(
        default=None, description="Security context; privilege-granting fields are refused."
    )


class Volume(LooseModel):
    """A pod volume: any Kubernetes volume source except hostPath."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            _forbid(
                "!has(self.hostPath)",
                "hostPath volumes are not allowed: leased pods cannot mount the provider's"
                " node filesystem, use spec.storage or emptyDir",
                field_path=".hostPath",
            )
        )
    )

    name: str | None = Field(default=None, max_length=63, description="Volume name.")
    host_path: dict[str, Any] | None = Field(
        default=None, description="Refused: hostPath volumes are not allowed."
    )


class NodeAffinityFree(LooseModel):
    """Pod (anti-)affinity is allowed; node affinity is refused."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            _forbid(
                "!has(self.nodeAffinity)",
                "affinity.nodeAffinity is not allowed: " + PLACED,
                field_path=".nodeAffinity",
            )
        )
    )

    node_affinity: dict[str, Any] | None = Field(
        default=None, description="Refused: Kommons chooses the nodes."
    )


HostNetwork = Annotated[
    bool,
    _forbid(
        "self == false",
        "hostNetwork must not be true: leased pods cannot use the provider's host network",
    ),
]
HostPID = Annotated[
    bool,
    _forbid(
        "self == false",
        "hostPID must not be true: leased pods cannot see the provider's host processes",
    ),
]
HostIPC = Annotated[
    bool,
    _forbid("self == false", "hostIPC must not be true: leased pods cannot use the host's IPC"),
]


class PodSpec(LooseModel):
    """The leased pod's spec: any Kubernetes pod field, minus the unsafe ones."""

    containers: list[Container] = Field(
        min_length=1,
        max_length=1,
        description="The replica's one container: it receives the leased resources"
        " (use initContainers for set-up steps).",
    )
    init_containers: list[Container] | None = Field(
        default=None, max_length=20, description="Init containers (up to 20)."
    )
    ephemeral_containers: (
        Annotated[
            list[dict[str, Any]],
            _forbid(
                "size(self) == 0",
                "ephemeralContainers are not allowed in a leased pod template",
            ),
        ]
        | None
    ) = Field(default=None, max_length=20, description="Refused: must be absent or empty.")
    volumes: list[Volume] | None = Field(
        default=None, max_length=64, description="Volumes; hostPath is refused."
    )
    host_network: HostNetwork | None = Field(default=None, description="Must be absent or false.")
    host_pid: HostPID | None = Field(
        default=None, alias="hostPID", description="Must be absent or false."
    )
    host_ipc: HostIPC | None = Field(
        default=None, alias="hostIPC", description="Must be absent or false."
    )
    node_name: (
        Annotated[
            str,
            Field(max_length=253),
            _forbid("size(self) == 0", "nodeName must not be set: " + PLACED),
        ]
        | None
    ) = Field(default=None, description="Refused: Kommons chooses the provider and node.")
    node_selector: (
        Annotated[
            dict[str, Annotated[str, Field(max_length=63)]],
            _forbid("size(self) == 0", "nodeSelector must not be set: " + PLACED),
        ]
        | None
    ) = Field(
        default=None,
        max_length=64,
        description="Refused: Kommons selects nodes (GPU model through spec.resources.gpu).",
    )
    affinity: NodeAffinityFree | None = Field(
        default=None, description="Pod (anti-)affinity; nodeAffinity is refused."
    )
    security_context: PodSecurityContext | None = Field(
        default=None, description="Pod security context; privilege-granting fields are refused."
    )


class TemplateMetadata(ApiModel):
    """Labels and annotations of the leased pods."""

    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=64, description="Labels added to every pod."
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


# --------------------------------------------------------------------------------------
# The same checks in Python
# --------------------------------------------------------------------------------------


def _security_violations(path: str, sc: Mapping[str, Any], *, pod: bool) -> Iterator[str]:
    if not pod:
        if sc.get("privileged") is True:
            yield f"{path}.privileged: privileged must not be true"
        if sc.get("allowPrivilegeEscalation") is True:
            yield f"{path}.allowPrivilegeEscalation: allowPrivilegeEscalation must not be true"
        added = (sc.get("capabilities") or {}).get("add") or []
        for cap in added:
            if cap not in ALLOWED_ADDED_CAPABILITIES:
                yield f"{path}.capabilities.add: capability {cap} may not be added"
    if sc.get("runAsUser") == 0:
        yield f"{path}.runAsUser: runAsUser must not be 0 (root)"
    if sc.get("runAsNonRoot") is False:
        yield f"{path}.runAsNonRoot: runAsNonRoot must not be false"
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield f"{path}.seccompProfile.type: seccompProfile.type must not be Unconfined"


def template_violations(template: Mapping[str, Any], *, path: str = "template") -> list[str]:
    """Return why a pod template (wire form) would be refused; empty when it is acceptable.

    Mirrors the CEL rules of :class:`PodTemplate` so a component that receives a template
    from elsewhere (the agent) can check it again before materialising it.

    Args:
        template: a PodTemplateSpec as a dict with camelCase keys.
        path: prefix for the field paths in the messages.

    Returns:
        One ``"field.path: why"`` string per violation.
    """
    out: list[str] = []
    spec: Mapping[str, Any] = template.get("spec") or {}
    sp = f"{path}.spec"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            out.append(f"{sp}.{field}: {field} must not be true")
    if spec.get("nodeName"):
        out.append(f"{sp}.nodeName: nodeName must not be set")
    if spec.get("nodeSelector"):
        out.append(f"{sp}.nodeSelector: nodeSelector must not be set")
    if "nodeAffinity" in (spec.get("affinity") or {}):
        out.append(f"{sp}.affinity.nodeAffinity: nodeAffinity is not allowed")
    if spec.get("ephemeralContainers"):
        out.append(f"{sp}.ephemeralContainers: ephemeralContainers are not allowed")
    out.extend(
        _security_violations(f"{sp}.securityContext", spec.get("securityContext") or {}, pod=True)
    )
    for i, vol in enumerate(spec.get("volumes") or []):
        if "hostPath" in vol:
            out.append(f"{sp}.volumes[{i}].hostPath: hostPath volumes are not allowed")
    for kind in ("initContainers", "containers"):
        for i, ctr in enumerate(spec.get(kind) or []):
            cp = f"{sp}.{kind}[{i}]"
            out.extend(
                _security_violations(
                    f"{cp}.securityContext", ctr.get("securityContext") or {}, pod=False
                )
            )
            for j, port in enumerate(ctr.get("ports") or []):
                if port.get("hostPort"):
                    out.append(f"{cp}.ports[{j}].hostPort: hostPort is not allowed")
                if port.get("hostIP"):
                    out.append(f"{cp}.ports[{j}].hostIP: hostIP is not allowed")
    return out
