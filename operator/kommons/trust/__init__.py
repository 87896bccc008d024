"""The trust boundary between hub, providers and tenants, as objects the API server enforces.

:mod:`.policies` builds (purely, no I/O) the ``ValidatingAdmissionPolicy`` objects that stop a
provider agent from writing what only the hub may write, and the tenant ClusterRoles. The hub
admin installs them with ``kommons install-policies`` (see ``docs/security.md``).
"""
