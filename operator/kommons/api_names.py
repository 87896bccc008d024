"""Names shared by every part of Kommons: the API group, version and annotation prefix."""

GROUP = "kommons.io"
"""API group of every Kommons kind."""
VERSION = "v1alpha1"
"""The one served and stored API version."""
API_VERSION = f"{GROUP}/{VERSION}"
"""``apiVersion`` of every Kommons object."""
PREFIX = "kommons.io"
"""Prefix of Kommons' own labels, annotations and finalizers."""
FINALIZER = f"{PREFIX}/finalizer"
FINALIZER_HUB = f"{PREFIX}/placements"
"""The hub's finalizer on a ComputeLease: its placements are removed before it goes.

Not kopf's finalizer (``kommons.io/<role>``, see :mod:`kommons.kopf_settings`): kopf removes
its own finalizer from objects it has no deletion handler for.
"""
FINALIZER_METERING = f"{PREFIX}/metering"
"""The hub's finalizer on a LeasePlacement: its final metering checkpoint is ingested into the
lease's ledger before it goes (removed by the hub once only it is left)."""
LABEL_LEASE_UID = f"{PREFIX}/lease-uid"
LABEL_LEASE_NAME = f"{PREFIX}/lease-name"
LABEL_LEASE_NAMESPACE = f"{PREFIX}/lease-namespace"
LABEL_PLACEMENT = f"{PREFIX}/placement"
LABEL_PROVIDER = f"{PREFIX}/provider"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kommons"
PROVIDER_NAMESPACE_PREFIX = "kommons-provider-"
CLAIMS_CONFIGMAP_PREFIX = "kommons-claims-"
"""Name prefix of the hub's claims ConfigMaps in the providers' hub namespaces
(``kommons-claims-<epochId>``, :mod:`kommons.settlement.proofs`); agents may only read them."""


def provider_namespace(provider: str) -> str:
    """The hub namespace that belongs to one provider: its placements and heartbeat live there."""
    return f"{PROVIDER_NAMESPACE_PREFIX}{provider}"
