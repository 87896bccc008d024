"""A small hierarchy of named errors for HTTP failures of the Kubernetes API."""

from __future__ import annotations

import json


class KubeError(RuntimeError):
    """The Kubernetes API refused or failed a request."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path

    @staticmethod
    def from_response(status: int, body: bytes, method: str, path: str) -> KubeError:
        """Build the most specific error for an HTTP status and a ``metav1.Status`` body."""
        reason, message = "", body.decode(errors="replace")[:500]
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                reason = str(data.get("reason", ""))
                message = str(data.get("message", message))
        except ValueError:
            pass
        kind = _BY_STATUS.get(status, KubeError)
        return kind(status, reason, message, method, path)


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class Conflict(KubeError):
    """409: already exists, or a stale resourceVersion."""


class Forbidden(KubeError):
    """403: RBAC, admission (quota, Pod Security) or namespace termination refused it."""


class Invalid(KubeError):
    """422: the object failed validation (schema, CEL)."""


_BY_STATUS: dict[int, type[KubeError]] = {
    404: NotFound,
    409: Conflict,
    403: Forbidden,
    422: Invalid,
}
