"""Where each kind of object lives in the API: group, version, plural, scope."""

from __future__ import annotations

from dataclasses import dataclass

from kommons.api_names import GROUP, VERSION


@dataclass(frozen=True)
class Resource:
    """One API resource (a kind's REST collection)."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of the collection, or of one object when ``name`` is given.

        For a namespaced resource without ``namespace`` it is the all-namespaces collection.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
NODES = Resource("", "v1", "nodes", False, "Node")
PODS = Resource("", "v1", "pods", True, "Pod")
EVENTS = Resource("", "v1", "events", True, "Event")
SECRETS = Resource("", "v1", "secrets", True, "Secret")
CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", True, "ServiceAccount")
RESOURCE_QUOTAS = Resource("", "v1", "resourcequotas", True, "ResourceQuota")
LIMIT_RANGES = Resource("", "v1", "limitranges", True, "LimitRange")
DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment")
JOBS = Resource("batch", "v1", "jobs", True, "Job")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", True, "StatefulSet")
PERSISTENT_VOLUME_CLAIMS = Resource(
    "", "v1", "persistentvolumeclaims", True, "PersistentVolumeClaim"
)
PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", False, "PersistentVolume")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", False, "StorageClass")
SERVICES = Resource("", "v1", "services", True, "Service")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", True, "Ingress")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", True, "NetworkPolicy")
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", True, "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", True, "RoleBinding")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False, "ClusterRoleBinding"
)
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", False, "CustomResourceDefinition"
)

COMPUTE_LEASES = Resource(GROUP, VERSION, "computeleases", True, "ComputeLease")
PROVIDERS = Resource(GROUP, VERSION, "providers", False, "Provider")
PROVIDER_POOLS = Resource(GROUP, VERSION, "providerpools", False, "ProviderPool")
BILLING_ACCOUNTS = Resource(GROUP, VERSION, "billingaccounts", False, "BillingAccount")
LEASE_PLACEMENTS = Resource(GROUP, VERSION, "leaseplacements", True, "LeasePlacement")
SETTLEMENT_EPOCHS = Resource(GROUP, VERSION, "settlementepochs", False, "SettlementEpoch")
