"""Kubernetes adapters: the only place in Kommons that imports the ``kubernetes`` client."""

from kommons.kube.errors import Conflict, Forbidden, Invalid, KubeError, NotFound
from kommons.kube.resources import Resource
from kommons.kube.rest import Kube, connect

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "Kube",
    "KubeError",
    "NotFound",
    "Resource",
    "connect",
]
