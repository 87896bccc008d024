"""``kommons lease|bill|provider|pool``: read the market from the hub and print it.

Thin: read objects with the caller's kubeconfig, parse them into :mod:`kommons.api` models,
print what :mod:`kommons.reports` renders (or the objects, with ``-o json|yaml``). Every error
a user can meet (unknown object, hub unreachable, bad kubeconfig, access denied) is one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from kommons import reports
from kommons.api import ComputeLease, LeasePlacement, Provider, ProviderPool, SettlementEpoch
from kommons.api_names import provider_namespace
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

ModelT = TypeVar("ModelT", bound=BaseModel)


lease_app = typer.Typer(help="Tenants: your leases, where they run and why, what they cost.")
provider_app = typer.Typer(help="Providers: your standing on the hub.")
pool_app = typer.Typer(help="Hub admins: a pool's providers and leases.")


def _parse(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    return model.model_validate(body)


def _now() -> datetime:
    return datetime.now(UTC)


AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Every namespace you may read.")
]


def _read_leases(
    kubeconfig: Path | None, namespace: str | None, all_namespaces: bool
) -> tuple[list[ComputeLease], str | None]:
    """The leases of one namespace (or all, ``None``), and which namespace that was."""
    from kommons.kube import resources as r

    kube = connect_hub(kubeconfig)
    where = None if all_namespaces else namespace_for(kubeconfig, namespace)
    return [_parse(ComputeLease, b) for b in kube.list(r.COMPUTE_LEASES, where)], where


@lease_app.command("list")
def lease_list(
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """List leases: phase, ready replicas, providers, cost so far, age."""
    with user_errors():
        leases, where = _read_leases(kubeconfig, namespace, all_namespaces)
    emit(
        [lease.to_api() for lease in leases],
        output,
        lambda: (
            reports.table(reports.LEASE_HEADERS, reports.lease_rows(leases, _now()))
            if leases
            else f"no leases in {'any namespace' if where is None else 'namespace ' + where}"
        ),
    )


def _read_lease(kubeconfig: Path | None, name: str, namespace: str | None) -> ComputeLease:
    from kommons.kube import NotFound
    from kommons.kube import resources as r

    kube = connect_hub(kubeconfig)
    where = namespace_for(kubeconfig, namespace)
    try:
        return _parse(ComputeLease, kube.get(r.COMPUTE_LEASES, name, where))
    except NotFound as exc:
        raise CommandError(f"no ComputeLease {name} in namespace {where}") from exc


@lease_app.command("describe")
def lease_describe(
    name: Annotated[str, typer.Argument(help="The lease.")],
    namespace: NamespaceOption = None,
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Show one lease: spec, conditions, placements, decision, history and cost."""
    with user_errors():
        lease = _read_lease(kubeconfig, name, namespace)
    emit(lease.to_api(), output, lambda: reports.explain_lease(lease, _now()))


@lease_app.command("explain")
def lease_explain(
    name: Annotated[str, typer.Argument(help="The lease.")],
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Where the lease runs and why, what moved on failover, and its cost so far."""
    with user_errors():
        lease = _read_lease(kubeconfig, name, namespace)
    typer.echo(reports.explain_lease(lease, _now()))


def bill(
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Cost per lease and epoch: what earlier epochs settled, what is metered and not yet."""
    with user_errors():
        leases, _ = _read_leases(kubeconfig, namespace, all_namespaces)
    lines = reports.bill_lines(leases)
    emit(
        [
            {
                "namespace": x.namespace,
                "lease": x.lease,
                "epoch": x.epoch,
                "provider": x.provider,
                "billingAccount": x.account,
                "readySeconds": x.ready_seconds,
                "amount": str(x.amount),
            }
            for x in lines
        ],
        output,
        lambda: reports.table(reports.BILL_HEADERS, reports.bill_rows(lines)),
    )


def _earnings(kube: Any, provider: str) -> dict[str, str] | None:
    """Confirmed epochs' amounts for the provider, or None without read access to epochs."""
    from kommons.kube import Forbidden
    from kommons.kube import resources as r

    try:
        bodies = kube.list(r.SETTLEMENT_EPOCHS)
    except Forbidden:
        return None
    out: dict[int, Decimal] = {}
    for body in bodies:
        epoch = _parse(SettlementEpoch, body)
        status = epoch.status
        if status is None or status.phase != "Confirmed" or epoch.spec.epoch_id is None:
            continue
        for leaf in status.leaves or ():
            if provider in leaf.provider.split(","):  # "a,b": payout address shared
                out[epoch.spec.epoch_id] = out.get(epoch.spec.epoch_id, Decimal(0)) + Decimal(
                    leaf.amount
                )
    return {str(epoch): str(amount) for epoch, amount in sorted(out.items())}


@provider_app.command("status")
def provider_status(
    name: Annotated[str, typer.Argument(help="The Provider (as onboarded).")],
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Heartbeat, capacity, placements, reputation and earnings of one provider.

    Works with the agent's own hub kubeconfig (its namespace and Provider) or an admin's.
    """
    from kommons.kube import NotFound
    from kommons.kube import resources as r

    with user_errors():
        kube = connect_hub(kubeconfig)
        try:
            provider = _parse(Provider, kube.get(r.PROVIDERS, name))
        except NotFound as exc:
            raise CommandError(f"no Provider {name} on the hub") from exc
        placements = [
            _parse(LeasePlacement, b)
            for b in kube.list(r.LEASE_PLACEMENTS, provider_namespace(name))
        ]
        earnings = _earnings(kube, name)
    emit(
        {
            "provider": provider.to_api(),
            "placements": [p.to_api() for p in placements],
            "earnings": earnings,
        },
        output,
        lambda: reports.provider_report(provider, placements, _now(), earnings),
    )


@pool_app.command("status")
def pool_status(
    name: Annotated[str, typer.Argument(help="The ProviderPool.")],
    output: OutputOption = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """A pool's policy, the providers it admits (phase, free capacity) and its leases."""
    from kommons.hub.views import pool_policy
    from kommons.kube import NotFound
    from kommons.kube import resources as r

    with user_errors():
        kube = connect_hub(kubeconfig)
        try:
            pool = _parse(ProviderPool, kube.get(r.PROVIDER_POOLS, name))
        except NotFound as exc:
            raise CommandError(f"no ProviderPool {name} on the hub") from exc
        policy = pool_policy(pool)
        members = [
            provider
            for provider in (_parse(Provider, b) for b in kube.list(r.PROVIDERS))
            if policy.admits(provider.metadata.labels or {}, provider.spec.region)
        ]
        leases = [
            lease
            for lease in (_parse(ComputeLease, b) for b in kube.list(r.COMPUTE_LEASES))
            if lease.spec.pool_ref.name == name
        ]
    emit(
        {
            "pool": pool.to_api(),
            "providers": [p.metadata.name for p in members],
            "leases": [f"{x.metadata.namespace}/{x.metadata.name}" for x in leases],
        },
        output,
        lambda: reports.pool_report(pool, members, leases),
    )
