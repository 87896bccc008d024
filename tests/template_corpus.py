"""A corpus of pod templates for the admission/sanitiser parity tests (no test in here).

Hand-written, independent of :data:`kommons.api.template.TEMPLATE_RULES`: one case per pod
template field a tenant might write (safe and unsafe values), each on a restricted-compliant
base template, plus seeded random combinations of several of them. ``accepted`` is what a
tenant should expect from admission; the parity tests check the API server, the Python
check and the agent's sanitiser against it and against each other.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


def base_template() -> JSON:
    """A restricted-compliant template touching every object the cases change."""
    return {
        "metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {
                    "name": "init",
                    "image": "busybox:1.36",
                    "command": ["true"],
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "nginxinc/nginx-unprivileged:1.27-alpine",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                }
            ],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "cfg", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}},
            ],
        },
    }


def _node(template: JSON, where: str) -> JSON:
    spec = template["spec"]
    app = spec["containers"][0]
    nodes = {
        "template": lambda: template,
        "metadata": lambda: template["metadata"],
        "pod": lambda: spec,
        "podSC": lambda: spec["securityContext"],
        "podSeccomp": lambda: spec["securityContext"]["seccompProfile"],
        "container": lambda: app,
        "init": lambda: spec["initContainers"][0],
        "containerSC": lambda: app["securityContext"],
        "initSC": lambda: spec["initContainers"][0]["securityContext"],
        "caps": lambda: app["securityContext"]["capabilities"],
        "seccomp": lambda: app["securityContext"]["seccompProfile"],
        "port": lambda: app["ports"][0],
        "emptyDir": lambda: spec["volumes"][0]["emptyDir"],
        "projected": lambda: spec["volumes"][1]["projected"],
        "source": lambda: spec["volumes"][1]["projected"]["sources"][0],
        "affinity": lambda: spec.setdefault("affinity", {}),
        "labels": lambda: template["metadata"]["labels"],
    }
    if where == "volume":  # a new volume of its own
        spec["volumes"].append({"name": f"v{len(spec['volumes'])}"})
        return spec["volumes"][-1]
    if where == "newSource":
        sources = spec["volumes"][1]["projected"]["sources"]
        sources.append({})
        return sources[-1]
    return nodes[where]()


@dataclass(frozen=True)
class Change:
    """Set ``key`` to ``value`` in the object ``where`` of the base template."""

    where: str
    key: str
    value: Any
    accepted: bool

    @property
    def id(self) -> str:
        """A readable test id."""
        value = str(self.value).replace(" ", "")[:24]
        return f"{self.where}.{self.key}={value}"

    def apply(self, template: JSON) -> None:
        """Apply the change to ``template`` (in place)."""
        _node(template, self.where)[self.key] = copy.deepcopy(self.value)


OK, NO = True, False
TOL = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
TERM = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
NODE_AFFINITY = {
    "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]
    }
}

CHANGES: tuple[Change, ...] = (
    # metadata
    Change("labels", "tier", "frontend", OK),
    Change("labels", "kommons.io/placement", "other", NO),
    Change("labels", "app.kubernetes.io/managed-by", "me", NO),
    Change("metadata", "annotations", {"a": "b"}, OK),
    # pod: identity, credentials
    Change("pod", "serviceAccountName", "default", NO),
    Change("pod", "serviceAccount", "default", NO),
    Change("pod", "automountServiceAccountToken", True, NO),
    Change("pod", "automountServiceAccountToken", False, OK),
    Change("pod", "imagePullSecrets", [{"name": "registry"}], NO),
    Change("pod", "enableServiceLinks", True, NO),
    Change("pod", "enableServiceLinks", False, OK),
    # pod: placement, scheduling
    Change("pod", "nodeName", "node-1", NO),
    Change("pod", "nodeName", "", OK),
    Change("pod", "nodeSelector", {"kubernetes.io/hostname": "n1"}, NO),
    Change("pod", "nodeSelector", {}, OK),
    Change("pod", "schedulerName", "my-scheduler", NO),
    Change("pod", "tolerations", TOL, NO),
    Change("pod", "priorityClassName", "system-node-critical", NO),
    Change("pod", "priority", 1000000, NO),
    Change("pod", "preemptionPolicy", "Never", NO),
    Change("pod", "schedulingGates", [{"name": "wait"}], NO),
    Change("pod", "schedulingGates", [], OK),
    Change(
        "pod",
        "topologySpreadConstraints",
        [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
        OK,
    ),
    Change("affinity", "nodeAffinity", NODE_AFFINITY, NO),
    Change(
        "affinity", "podAffinity", {"requiredDuringSchedulingIgnoredDuringExecution": [TERM]}, NO
    ),
    Change(
        "affinity",
        "podAntiAffinity",
        {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": TERM}
            ]
        },
        OK,
    ),
    Change("affinity", "somethingNew", {}, NO),
    # pod: runtime, resources
    Change("pod", "runtimeClassName", "runc", NO),
    Change("pod", "overhead", {"cpu": "1"}, NO),
    Change("pod", "resourceClaims", [{"name": "gpu", "resourceClaimName": "x"}], NO),
    Change("pod", "resources", {"limits": {"cpu": "1"}}, NO),
    Change("pod", "hostUsers", False, NO),
    Change("pod", "hostUsers", True, NO),
    # pod: host namespaces
    Change("pod", "hostNetwork", True, NO),
    Change("pod", "hostNetwork", False, OK),
    Change("pod", "hostPID", True, NO),
    Change("pod", "hostPID", False, OK),
    Change("pod", "hostIPC", True, NO),
    Change("pod", "hostIPC", False, OK),
    Change("pod", "shareProcessNamespace", True, OK),
    Change("pod", "ephemeralContainers", [{"name": "dbg", "image": "busybox"}], NO),
    Change("pod", "ephemeralContainers", [], OK),
    # pod: lifecycle
    Change("pod", "terminationGracePeriodSeconds", 30, OK),
    Change("pod", "terminationGracePeriodSeconds", 60, OK),
    Change("pod", "terminationGracePeriodSeconds", 0, OK),
    Change("pod", "terminationGracePeriodSeconds", 61, NO),
    Change("pod", "terminationGracePeriodSeconds", 86400, NO),
    Change("pod", "activeDeadlineSeconds", 3600, NO),
    Change("pod", "restartPolicy", "Always", OK),
    Change("pod", "restartPolicy", "Never", NO),
    Change("pod", "restartPolicy", "OnFailure", NO),
    # pod: names, DNS (kept as written)
    Change("pod", "hostname", "web", OK),
    Change("pod", "subdomain", "svc", OK),
    Change("pod", "setHostnameAsFQDN", True, OK),
    Change("pod", "dnsPolicy", "None", OK),
    Change("pod", "dnsConfig", {"nameservers": ["1.1.1.1"]}, OK),
    Change("pod", "hostAliases", [{"ip": "10.0.0.1", "hostnames": ["db"]}], OK),
    Change("pod", "os", {"name": "linux"}, OK),
    Change("pod", "readinessGates", [{"conditionType": "x.io/ready"}], OK),
    # pod security context
    Change("podSC", "runAsUser", 1000, OK),
    Change("podSC", "runAsUser", 0, NO),
    Change("podSC", "runAsGroup", 3000, OK),
    Change("podSC", "runAsGroup", 0, NO),
    Change("podSC", "fsGroup", 2000, OK),
    Change("podSC", "fsGroup", 0, NO),
    Change("podSC", "supplementalGroups", [4000, 5000], OK),
    Change("podSC", "supplementalGroups", [0], NO),
    Change("podSC", "fsGroupChangePolicy", "OnRootMismatch", OK),
    Change("podSC", "runAsNonRoot", False, NO),
    Change("podSC", "sysctls", [{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}], NO),
    Change("podSC", "seLinuxOptions", {"level": "s0:c1"}, NO),
    Change("podSC", "seLinuxChangePolicy", "MountOption", NO),
    Change("podSC", "supplementalGroupsPolicy", "Strict", NO),
    Change("podSC", "appArmorProfile", {"type": "RuntimeDefault"}, NO),
    Change("podSC", "windowsOptions", {"runAsUserName": "x"}, NO),
    Change("podSC", "futureField", True, NO),
    Change("podSeccomp", "type", "Unconfined", NO),
    Change("podSeccomp", "type", "Localhost", NO),
    Change("podSeccomp", "localhostProfile", "p.json", NO),
    # container
    Change("container", "resources", {"limits": {"cpu": "64"}}, NO),
    Change("container", "resources", {}, NO),
    Change(
        "container", "resizePolicy", [{"resourceName": "cpu", "restartPolicy": "NotRequired"}], NO
    ),
    Change("init", "resources", {"requests": {"memory": "1Gi"}}, NO),
    Change("container", "env", [{"name": "A", "value": "1"}], OK),
    Change("container", "command", ["nginx", "-g", "daemon off;"], OK),
    Change("container", "readinessProbe", {"httpGet": {"path": "/", "port": 8080}}, OK),
    Change("container", "lifecycle", {"preStop": {"sleep": {"seconds": 5}}}, OK),
    Change("container", "workingDir", "/tmp", OK),
    Change("init", "restartPolicy", "Always", NO),
    # container security context
    Change("containerSC", "privileged", True, NO),
    Change("containerSC", "privileged", False, OK),
    Change("containerSC", "allowPrivilegeEscalation", True, NO),
    Change("containerSC", "runAsNonRoot", False, NO),
    Change("containerSC", "runAsUser", 0, NO),
    Change("containerSC", "runAsUser", 101, OK),
    Change("containerSC", "runAsGroup", 0, NO),
    Change("containerSC", "runAsGroup", 101, OK),
    Change("containerSC", "readOnlyRootFilesystem", True, OK),
    Change("containerSC", "readOnlyRootFilesystem", False, OK),
    Change("containerSC", "procMount", "Unmasked", NO),
    Change("containerSC", "procMount", "Default", OK),
    Change("containerSC", "seLinuxOptions", {"type": "spc_t"}, NO),
    Change("containerSC", "appArmorProfile", {"type": "Unconfined"}, NO),
    Change("containerSC", "windowsOptions", {"hostProcess": True}, NO),
    Change("containerSC", "futureField", 1, NO),
    Change("initSC", "privileged", True, NO),
    Change("initSC", "runAsUser", 0, NO),
    Change("initSC", "capabilities", {"add": ["NET_ADMIN"]}, NO),
    Change("caps", "add", ["NET_BIND_SERVICE"], OK),
    Change("caps", "add", ["SYS_ADMIN"], NO),
    Change("caps", "add", ["NET_BIND_SERVICE", "NET_RAW"], NO),
    Change("caps", "drop", ["NET_RAW"], OK),
    Change("caps", "drop", [], OK),
    Change("seccomp", "type", "Unconfined", NO),
    Change("seccomp", "type", "Localhost", NO),
    Change("seccomp", "type", "RuntimeDefault", OK),
    # ports
    Change("port", "hostPort", 80, NO),
    Change("port", "hostPort", 0, OK),
    Change("port", "hostIP", "0.0.0.0", NO),
    Change("port", "hostIP", "", OK),
    # volumes
    *(
        Change("volume", source, value, NO)
        for source, value in (
            ("hostPath", {"path": "/"}),
            ("persistentVolumeClaim", {"claimName": "data"}),
            ("nfs", {"server": "10.0.0.2", "path": "/"}),
            ("iscsi", {"targetPortal": "10.0.0.3:3260", "iqn": "iqn.x", "lun": 0}),
            ("csi", {"driver": "secrets-store.csi.k8s.io"}),
            ("ephemeral", {"volumeClaimTemplate": {"spec": {}}}),
            ("gitRepo", {"repository": "https://example.com/x.git"}),
            ("image", {"reference": "busybox"}),
            ("rbd", {"monitors": ["10.0.0.4"], "image": "x"}),
            ("cephfs", {"monitors": ["10.0.0.4"]}),
            ("flexVolume", {"driver": "x/y"}),
            ("awsElasticBlockStore", {"volumeID": "vol-1"}),
            ("gcePersistentDisk", {"pdName": "pd"}),
            ("fc", {"wwids": ["x"]}),
            ("scaleIO", {"gateway": "g", "system": "s", "secretRef": {"name": "x"}}),
            ("azureDisk", {"diskName": "d", "diskURI": "u"}),
            ("azureFile", {"secretName": "s", "shareName": "x"}),
            ("cinder", {"volumeID": "v"}),
            ("flocker", {"datasetName": "d"}),
            ("glusterfs", {"endpoints": "e", "path": "p"}),
            ("photonPersistentDisk", {"pdID": "p"}),
            ("portworxVolume", {"volumeID": "v"}),
            ("quobyte", {"registry": "r", "volume": "v"}),
            ("storageos", {"volumeName": "v"}),
            ("vsphereVolume", {"volumePath": "p"}),
            ("someFutureSource", {}),
        )
    ),
    Change("volume", "emptyDir", {}, OK),
    Change("volume", "emptyDir", {"medium": "Memory", "sizeLimit": "64Mi"}, OK),
    Change("volume", "configMap", {"name": "cfg"}, OK),
    Change("volume", "secret", {"secretName": "s"}, OK),
    Change(
        "volume",
        "downwardAPI",
        {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        OK,
    ),
    Change("emptyDir", "sizeLimit", "1Gi", OK),
    Change("emptyDir", "sizeLimit", "2Gi", OK),
    Change("emptyDir", "sizeLimit", "3Gi", NO),
    Change("emptyDir", "sizeLimit", "1Ti", NO),
    Change("emptyDir", "medium", "Memory", OK),
    Change("emptyDir", "medium", "", OK),
    Change("emptyDir", "medium", "HugePages", NO),
    Change("projected", "defaultMode", 420, OK),
    Change("newSource", "serviceAccountToken", {"path": "token", "audience": "api"}, NO),
    Change("newSource", "clusterTrustBundle", {"name": "b", "path": "ca.pem"}, NO),
    Change(
        "newSource",
        "podCertificate",
        {"signerName": "x.io/s", "keyType": "ED25519", "credentialBundlePath": "c"},
        NO,
    ),
    Change("newSource", "secret", {"name": "s"}, OK),
    Change("newSource", "downwardAPI", {"items": []}, OK),
)
"""Every single-field case."""


@dataclass(frozen=True)
class Case:
    """A template to submit and what admission should say."""

    id: str
    template: JSON
    accepted: bool


def single_cases() -> list[Case]:
    """One case per :data:`CHANGES` entry, plus the base template itself."""
    out = [Case("base", base_template(), True)]
    for change in CHANGES:
        template = base_template()
        change.apply(template)
        out.append(Case(change.id, template, change.accepted))
    return out


def combined_cases(count: int, *, seed: int = 7) -> list[Case]:
    """``count`` templates, each with 2 to 5 random changes (seeded, so reproducible).

    Every other one combines safe changes only, so both verdicts are well represented.
    """
    rng = random.Random(seed)
    safe = [c for c in CHANGES if c.accepted]
    out = []
    for n in range(count):
        picked = rng.sample(safe if n % 2 else CHANGES, rng.randint(2, 5))
        template = base_template()
        for change in picked:
            change.apply(template)
        # the last change to a (where, key) wins
        final: dict[tuple[str, str, int], Change] = {}
        for i, change in enumerate(picked):
            fresh = change.where in ("volume", "newSource")  # these add an object of their own
            final[(change.where, change.key, i if fresh else -1)] = change
        accepted = all(c.accepted for c in final.values())
        out.append(Case(f"combo{n}:" + "+".join(c.id for c in picked), template, accepted))
    return out
