"""A thin typed REST client over the ``kubernetes`` package, for any resource (built-in or CRD).

Objects are plain ``dict``s as the API serves them; typed models live in :mod:`kommons.api`.
Writes of whole objects use server-side apply, so repeating a write is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import kubernetes.client
import kubernetes.config

from kommons.kube.errors import KubeError, NotFound
from kommons.kube.resources import Resource

JSON = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class Kube:
    """One cluster's API, reached with one set of credentials."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, field_manager: str) -> None:
        self.api_client = api_client
        self.field_manager = field_manager

    @property
    def server(self) -> str:
        """The API server URL."""
        return str(self.api_client.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        """Send one request; return the decoded JSON body or raise a :class:`KubeError`."""
        raw_body = self._send(
            method, path, body=body, query=query, content_type=content_type, timeout=timeout
        )
        return cast(JSON, json.loads(raw_body)) if raw_body else {}

    def request_text(
        self, path: str, *, query: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> str:
        """GET a plain-text endpoint (e.g. ``pods/log``); raise a :class:`KubeError`."""
        raw = self._send("GET", path, query=query, accept="*/*", timeout=timeout)
        return raw.decode("utf-8", errors="replace")

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = 30.0,
    ) -> bytes:
        url_path = f"{path}?{urlencode(dict(query))}" if query else path
        method_, url, headers, data, _ = self.api_client.param_serialize(
            method=method,
            resource_path=url_path,
            header_params={"Content-Type": content_type, "Accept": accept},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(
                method_, url, header_params=headers, body=data, _request_timeout=timeout
            )
        except kubernetes.client.ApiException as exc:
            raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            raise KubeError.from_response(int(exc.status or 0), raw, method, path) from exc
        response.read()  # type: ignore[no-untyped-call]
        raw_body: bytes = response.data or b""
        if response.status >= 400:
            raise KubeError.from_response(response.status, raw_body, method, path)
        return raw_body

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        """Read one object."""
        return self.request("GET", resource.path(namespace, name))

    def get_or_none(
        self, resource: Resource, name: str, namespace: str | None = None
    ) -> JSON | None:
        """Read one object, or ``None`` when it does not exist."""
        try:
            return self.get(resource, name, namespace)
        except NotFound:
            return None

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        """List objects (all namespaces when ``namespace`` is ``None``)."""
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        result = self.request("GET", resource.path(namespace), query=query)
        return list(result.get("items", []))

    def create(self, resource: Resource, body: JSON, namespace: str | None = None) -> JSON:
        """Create an object (raises :class:`~kommons.kube.errors.Conflict` if it exists)."""
        return self.request("POST", resource.path(namespace), body=body)

    def apply(self, resource: Resource, body: JSON, *, subresource: str = "") -> JSON:
        """Server-side apply ``body`` (which names itself) as this client's field manager."""
        meta = body["metadata"]
        path = resource.path(meta.get("namespace"), meta["name"])
        if subresource:
            path += f"/{subresource}"
        return self.request(
            "PATCH",
            path,
            body=body,
            query={"fieldManager": self.field_manager, "force": "true"},
            content_type=APPLY_PATCH,
        )

    def replace(self, resource: Resource, body: JSON) -> JSON:
        """Replace an object (PUT) with its ``metadata.resourceVersion`` as precondition.

        A concurrent write makes this fail with :class:`~kommons.kube.errors.Conflict`.
        """
        meta = body["metadata"]
        return self.request("PUT", resource.path(meta.get("namespace"), meta["name"]), body=body)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JSON,
        namespace: str | None = None,
        *,
        subresource: str = "",
    ) -> JSON:
        """JSON merge-patch an object (or its ``status`` subresource)."""
        path = resource.path(namespace, name)
        if subresource:
            path += f"/{subresource}"
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
    ) -> bool:
        """Delete an object in the background; ``False`` when it was already gone.

        With ``uid`` the delete applies only to that incarnation of the object (a newer object
        of the same name answers :class:`~kommons.kube.errors.Conflict`).
        """
        body: JSON = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource.path(namespace, name), body=body)
        except NotFound:
            return False
        return True


def load_api_client(
    kubeconfig: Path | None,
    *,
    context: str | None = None,
    connections: int | None = None,
    user_agent: str | None = None,
) -> kubernetes.client.ApiClient:
    """An API client from a kubeconfig file, or from the pod's service account when ``None``.

    ``connections`` sizes the HTTP connection pool (default: the client library's, 5 per
    core); a caller writing from N threads at once wants at least N, or every request beyond
    the pool opens and discards a TLS connection. ``user_agent`` (``name/version``) names the
    writer in ``managedFields`` of what it creates, updates or patches (the part before ``/``).
    """
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    client = kubernetes.client.ApiClient(configuration)
    if user_agent is not None:
        client.user_agent = user_agent
    return client


def connect(
    kubeconfig: Path | None,
    *,
    field_manager: str,
    context: str | None = None,
    connections: int | None = None,
    user_agent: str | None = None,
) -> Kube:
    """A :class:`Kube` for the cluster named by ``kubeconfig`` (in-cluster when ``None``)."""
    client = load_api_client(
        kubeconfig, context=context, connections=connections, user_agent=user_agent
    )
    return Kube(client, field_manager=field_manager)
