"""``kommons logs LEASE``: a bounded tail of a lease's logs, relayed through the hub.

The tenant's kubeconfig reaches only the hub: the command asks (an annotation on the lease) and
reads the answer the hub gathers from the providers' agents (a ConfigMap next to the lease);
see :mod:`kommons.lease_logs`.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import typer

from kommons import lease_logs
from kommons.cli_common import (
    CommandError,
    KubeconfigOpt,
    NamespaceOption,
    Output,
    OutputOption,
    connect_hub,
    emit,
    namespace_for,
    user_errors,
)

DEFAULT_WAIT_SECONDS = lease_logs.ANSWER_SECONDS + 15


def render(body: dict[str, Any]) -> str:
    """The gathered logs as text: one ``==> provider/pod/container <==`` section per key."""
    sections = []
    for key, text in sorted((body.get("data") or {}).items()):
        provider, _, rest = str(key).partition(".")
        pod, _, container = rest.rpartition(".")
        where = f"{provider}/{pod}/{container}" if pod else f"{provider}/{container}"
        body_text = str(text) if str(text).endswith("\n") else f"{text}\n"
        sections.append(f"==> {where} <==\n{body_text}")
    return "".join(sections)


def logs(
    name: Annotated[str, typer.Argument(help="The lease.")],
    namespace: NamespaceOption = None,
    tail: Annotated[
        int,
        typer.Option(
            min=1,
            max=lease_logs.MAX_TAIL_LINES,
            help="Lines per container (each container's log is also cut at 64 KiB).",
        ),
    ] = lease_logs.DEFAULT_TAIL_LINES,
    wait: Annotated[
        float,
        typer.Option(min=1, help="Seconds to wait for the hub's answer."),
    ] = DEFAULT_WAIT_SECONDS,
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """The last lines of each of the lease's containers, from every provider it runs on.

    Fetched through the hub: no connection to a provider, no provider credentials.

    A provider that does not answer in time is named on stderr.
    """
    from kommons.kube import NotFound
    from kommons.kube import resources as r

    with user_errors():
        kube = connect_hub(kubeconfig)
        where = namespace_for(kubeconfig, namespace)
        request = lease_logs.LogsRequest(uuid.uuid4().hex[:12], tail)
        patch = {"metadata": {"annotations": {lease_logs.REQUEST: request.annotation()}}}
        try:
            kube.patch(r.COMPUTE_LEASES, name, patch, where)
        except NotFound as exc:
            raise CommandError(f"no ComputeLease {name} in namespace {where}") from exc
        deadline = time.monotonic() + wait
        body = None
        while time.monotonic() < deadline:
            found = kube.get_or_none(r.CONFIGMAPS, lease_logs.tenant_name(name), where)
            if lease_logs.answered(found, request):
                body = found
                break
            time.sleep(0.5)
        if body is None:
            raise CommandError(
                f"no answer from the hub within {wait:.0f}s (is the hub running? "
                "`kommons lease explain` shows where the lease runs)"
            )
    status = (body.get("metadata") or {}).get("annotations", {}).get(lease_logs.STATUS, "")
    document = {"status": status, "logs": body.get("data") or {}}
    emit(document, output, lambda: render(body).rstrip("\n"))
    if status != "complete":
        typer.echo(f"warning: {status}", err=True)
