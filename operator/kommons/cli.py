"""The ``kommons`` command: run the hub or an agent, onboard providers."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Annotated

import typer

from kommons import __version__

app = typer.Typer(
    help="Kommons: federate community Kubernetes clusters into one open compute market.",
    no_args_is_help=True,
    add_completion=False,
)

KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="Kubeconfig of the hub cluster (default: $KUBECONFIG, else in-cluster).",
        exists=True,
        dir_okay=False,
    ),
]
JsonLogs = Annotated[bool, typer.Option("--log-json", help="Log one JSON object per line.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging, kopf included.")]
MetricsPort = Annotated[
    int,
    typer.Option(
        min=0, max=65535, help="Serve Prometheus metrics on this port at /metrics (0: off)."
    ),
]
MetricsAddress = Annotated[str, typer.Option(help="Address the metrics port listens on.")]

_PROVIDER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _default_kubeconfig(given: Path | None) -> Path | None:
    if given is not None:
        return given
    env = os.environ.get("KUBECONFIG")
    return Path(env) if env else None


def _check_provider_name(name: str) -> str:
    if not _PROVIDER_NAME.fullmatch(name) or len(name) > 45:
        raise typer.BadParameter(
            f"{name!r} is not a valid provider name: use lowercase letters, digits and '-',"
            " at most 45 characters (it becomes part of the namespace kommons-provider-NAME)"
        )
    return name


@app.command()
def version() -> None:
    """Print the Kommons version."""
    typer.echo(__version__)


@app.command()
def hub(
    kubeconfig: KubeconfigOption = None,
    heartbeat_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat before a provider is Unreachable and its"
            " replicas fail over (shorter: faster failover, more false alarms; docs/failover.md)."
        ),
    ] = 20.0,
    replace_after: Annotated[
        float,
        typer.Option(
            help="Seconds replicas may stay not ready for a provider-side reason before they"
            " are re-placed on another provider."
        ),
    ] = 300.0,
    retry_seconds: Annotated[
        float,
        typer.Option(
            help="Longest back-off between two attempts to place a lease that waits for capacity"
            " (it is retried at once when the market changes, at most this far apart)."
        ),
    ] = 30.0,
    ready_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds replicas may take to become ready before the lease's Ready condition"
            " carries the provider's reason."
        ),
    ] = 120.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="Leases whose API writes are in flight at once (decisions are made one at a"
            " time); more helps only while the hub's API server has capacity to spare.",
        ),
    ] = 8,
    reputation_half_life: Annotated[
        float,
        typer.Option(
            min=1,
            help="Seconds after which observed uptime weighs half in a provider's reputation.",
        ),
    ] = 86400.0,
    reputation_uptime_prior: Annotated[
        float,
        typer.Option(
            min=0,
            help="Reachable seconds every provider is credited with in its uptime ratio.",
        ),
    ] = 3600.0,
    reputation_write_seconds: Annotated[
        float,
        typer.Option(
            min=1,
            help="Shortest interval between two writes of a provider's status.reputation.",
        ),
    ] = 30.0,
    payment_horizon_seconds: Annotated[
        int,
        typer.Option(
            min=0,
            help="A BillingAccount's escrow, less what is metered but not settled, must pay its"
            " leases' projected burn for this long; otherwise they get PaymentOK=False"
            " (docs/payment.md).",
        ),
    ] = 3600,
    payment_grace_seconds: Annotated[
        int,
        typer.Option(
            min=0,
            help="How long leases run on with PaymentOK=False before the hub suspends them"
            " (a top-up resumes them).",
        ),
    ] = 900,
    balance_poll_seconds: Annotated[
        float,
        typer.Option(min=1, help="How often the payment guard reads escrow balances on chain."),
    ] = 30.0,
    leader_elect: Annotated[
        bool,
        typer.Option(
            help="Act only while holding the hub's coordination.k8s.io Lease (run two or more"
            " replicas for HA; on by default so a second replica can never act too)."
        ),
    ] = True,
    leader_namespace: Annotated[
        str | None,
        typer.Option(
            help="Namespace of the election Lease (default: $POD_NAMESPACE, the pod's"
            " namespace, else kommons-system; created if missing)."
        ),
    ] = None,
    leader_lease_name: Annotated[str, typer.Option(help="Name of the election Lease.")] = (
        "kommons-hub"
    ),
    leader_lease_duration: Annotated[
        float,
        typer.Option(help="Seconds a standby waits for a silent leader before taking over."),
    ] = 15.0,
    leader_renew_deadline: Annotated[
        float,
        typer.Option(help="Seconds the leader may fail to renew before it exits (status 3)."),
    ] = 10.0,
    leader_retry_period: Annotated[
        float, typer.Option(help="Seconds between two attempts to acquire or renew.")
    ] = 2.0,
    identity: Annotated[
        str | None,
        typer.Option(help="This replica's holder identity (default: <hostname>_<pid>)."),
    ] = None,
    chain_rpc: Annotated[
        str | None,
        typer.Option(
            help="JSON-RPC URL of the chain the Settlement contract is on; without it the hub"
            " runs with settlement and the payment guard off (metering still runs)."
        ),
    ] = None,
    settlement_address: Annotated[
        str | None,
        typer.Option(help="Address (0x…) of the Settlement contract (with --chain-rpc)."),
    ] = None,
    operator_key_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the operator's 0x private key (mount a Secret there; mode"
            " 0600); without it the hub only reads the chain and commits no epochs.",
            dir_okay=False,
        ),
    ] = None,
    chain_confirmations: Annotated[
        int,
        typer.Option(
            min=1,
            help="Blocks (the commit's own included) before an epoch's commit counts as"
            " confirmed: 1 on anvil-like chains, more on a public chain.",
        ),
    ] = 1,
    # --- settlement loop (docs/settlement-loop.md) ---
    epoch_seconds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Length of a settlement epoch; each is committed on chain in one transaction"
            " (shorter: providers paid sooner, more commits).",
        ),
    ] = 3600,
    seal_delay_seconds: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds after an epoch's end before its usage is frozen and sealed (leave the"
            " agents time for their last reports: more than --metering-report-seconds).",
        ),
    ] = 300,
    claim_for_providers: Annotated[
        bool,
        typer.Option(
            help="After an epoch is confirmed, claim every leaf on its provider's behalf with"
            " the operator key (the hub pays the gas; off: providers run `kommons claim`)."
        ),
    ] = False,
    metrics_port: MetricsPort = 8080,
    metrics_address: MetricsAddress = "0.0.0.0",
    log_json: JsonLogs = False,
    verbose: Verbose = False,
) -> None:
    """Run the hub operator: schedule leases onto providers and track them."""
    from kommons.hub.chain_options import ChainOptions
    from kommons.hub.handlers import HubOptions
    from kommons.hub.leader import ElectionOptions, default_identity, default_namespace
    from kommons.hub.payment import PaymentSettings
    from kommons.hub.reputation import ReputationSettings
    from kommons.hub.runner import run_hub
    from kommons.logs import setup_logging

    setup_logging(json_format=log_json, verbose=verbose)
    election: ElectionOptions | None = None
    if leader_elect:
        try:
            election = ElectionOptions(
                identity=identity or default_identity(),
                namespace=leader_namespace or default_namespace(),
                name=leader_lease_name,
                lease_duration=leader_lease_duration,
                renew_deadline=leader_renew_deadline,
                retry_period=leader_retry_period,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    try:
        chain = ChainOptions.from_cli(
            chain_rpc=chain_rpc,
            settlement_address=settlement_address,
            operator_key_file=operator_key_file,
            confirmations=chain_confirmations,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = HubOptions(
        kubeconfig=_default_kubeconfig(kubeconfig),
        chain=chain,
        heartbeat_timeout=heartbeat_timeout,
        replace_after=replace_after,
        retry_seconds=retry_seconds,
        ready_timeout=ready_timeout,
        workers=workers,
        reputation=ReputationSettings(
            half_life_seconds=reputation_half_life,
            uptime_prior_seconds=reputation_uptime_prior,
            write_seconds=reputation_write_seconds,
        ),
        payment=PaymentSettings(
            horizon_seconds=payment_horizon_seconds,
            grace_seconds=payment_grace_seconds,
            poll_seconds=balance_poll_seconds,
        ),
        epoch_seconds=epoch_seconds,
        seal_delay_seconds=seal_delay_seconds,
        claim_for_providers=claim_for_providers,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )
    asyncio.run(run_hub(options, election))


@app.command()
def agent(
    provider: Annotated[
        str,
        typer.Option(
            help="This provider's name (as onboarded on the hub).", callback=_check_provider_name
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            help="Agent config (YAML): payoutAddress, pricing, offer, heartbeat/report periods.",
            exists=True,
            dir_okay=False,
        ),
    ],
    hub_kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Kubeconfig for the hub (from `kommons onboard`).", exists=True, dir_okay=False
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Kubeconfig of this provider's own cluster (default: in-cluster).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    metering_report_seconds: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Write each placement's metering checkpoint at least this often (seconds)"
            " while a pod is ready; every pod transition is written at once.",
        ),
    ] = 30.0,
    metrics_port: MetricsPort = 8080,
    metrics_address: MetricsAddress = "0.0.0.0",
    log_json: JsonLogs = False,
    verbose: Verbose = False,
) -> None:
    """Run the provider agent: heartbeat, report inventory, run the hub's placements."""
    from kommons.agent.config import ConfigError, load_config
    from kommons.agent.hub_link import RegistrationError
    from kommons.agent.runner import AgentOptions, run_agent
    from kommons.logs import setup_logging

    setup_logging(json_format=log_json, verbose=verbose)
    try:
        options = AgentOptions(
            provider=provider,
            hub_kubeconfig=hub_kubeconfig,
            kubeconfig=kubeconfig,
            config=load_config(config),
            metering_report_seconds=metering_report_seconds,
            metrics_port=metrics_port,
            metrics_address=metrics_address,
        )
        asyncio.run(run_agent(options))
    except (ConfigError, RegistrationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def onboard(
    provider: Annotated[str, typer.Argument(help="Provider name.", callback=_check_provider_name)],
    region: Annotated[
        str, typer.Option(help="The provider's region, e.g. eu-west (the agent cannot change it).")
    ],
    payout_address: Annotated[
        str,
        typer.Option(help="The provider's EVM payout address (0x...); its agent may replace it."),
    ],
    out: Annotated[
        Path, typer.Option(help="Where to write the agent's hub kubeconfig.", dir_okay=False)
    ],
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="A label KEY=VALUE on the Provider, e.g. kommons.io/tier=community (repeat);"
            " pools select providers on them and the agent cannot change them.",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="Pull: the provider runs `kommons agent`. Push: the hub runs the agent itself,"
            " with the provider cluster's kubeconfig from --kubeconfig-secret (docs/push-mode.md).",
            case_sensitive=False,
        ),
    ] = "Pull",
    kubeconfig_secret: Annotated[
        str | None,
        typer.Option(
            help="Push only: NAMESPACE/NAME[:KEY] of the Secret on the hub holding the provider"
            " cluster's kubeconfig (KEY defaults to kubeconfig); keep it where only the hub can"
            " read it.",
        ),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    token_hours: Annotated[int, typer.Option(help="Lifetime of the agent's token.")] = 24 * 365,
) -> None:
    """Admit a provider: its hub namespace, least-privilege RBAC, and a kubeconfig for its agent."""
    from kommons.hub.onboarding import (
        Onboarding,
        OnboardingError,
        missing_policies,
        parse_labels,
        parse_secret_ref,
    )
    from kommons.hub.onboarding import onboard as do_onboard
    from kommons.kube import KubeError, connect

    push = mode.lower() == "push"
    if mode.lower() not in ("pull", "push"):
        raise typer.BadParameter(f"{mode!r}: use Pull or Push", param_hint="--mode")
    try:
        request = Onboarding(
            provider=provider,
            region=region,
            payout_address=payout_address,
            labels=parse_labels(label or []),
            mode="Push" if push else "Pull",
            kubeconfig_secret=parse_secret_ref(kubeconfig_secret) if kubeconfig_secret else None,
        )
    except OnboardingError as exc:
        raise typer.BadParameter(str(exc)) from exc
    hub_kube = connect(_default_kubeconfig(kubeconfig), field_manager="kommons-onboard")
    try:
        text = do_onboard(hub_kube, request, token_seconds=token_hours * 3600)
    except KubeError as exc:
        typer.echo(f"error: onboarding {provider} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.chmod(0o600)
    typer.echo(f"onboarded provider {provider}; agent kubeconfig written to {out}")
    missing = missing_policies(hub_kube)
    if missing:
        typer.echo(
            f"warning: the trust-boundary policies are not installed ({', '.join(missing)}):"
            " agents can rewrite their placements and Provider; run `kommons install-policies`",
            err=True,
        )
    if push:
        typer.echo(
            f"the hub runs the agent of {provider} (push mode); the provider declares its prices"
            f" and offer in its Provider's spec with {out} (docs/push-mode.md)"
        )
    else:
        typer.echo(
            f"next: kommons agent --provider {provider} --hub-kubeconfig {out} --config AGENT.yaml"
        )


@app.command("install-policies")
def install_policies(kubeconfig: KubeconfigOption = None) -> None:
    """Install the trust boundary on the hub: agent admission policies and tenant roles."""
    from kommons.hub.onboarding import install_policies as do_install
    from kommons.kube import KubeError, connect

    hub_kube = connect(_default_kubeconfig(kubeconfig), field_manager="kommons-onboard")
    try:
        names = do_install(hub_kube)
    except (KubeError, RuntimeError) as exc:
        typer.echo(f"error: installing the trust-boundary policies failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for name in names:
        typer.echo(f"applied {name}")
    typer.echo(
        "bind a tenant: kubectl create rolebinding NAME -n NAMESPACE --clusterrole kommons-tenant"
        " --user USER; let it read the market: kubectl create clusterrolebinding NAME"
        " --clusterrole kommons-market-viewer --user USER"
    )


@app.command()
def claim(
    epoch: Annotated[int, typer.Argument(help="The epoch id (SettlementEpoch epoch-<id>).")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the 0x private key that signs (and pays gas for) the claims; any"
            " key works, the contract pays the leaf's payee. Not needed with --dry-run.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    chain_rpc: Annotated[
        str | None, typer.Option(help="JSON-RPC URL of the chain (not needed with --dry-run).")
    ] = None,
    settlement_address: Annotated[
        str | None,
        typer.Option(
            help="Address of the Settlement contract (not needed with --dry-run; default: the"
            " one named in the provider's claims ConfigMap, when read from there)."
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(help="Claim the leaves of this Provider (name); default: every leaf."),
    ] = None,
    payee: Annotated[
        str | None, typer.Option(help="Claim the leaves paying this address instead.")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            help="Read the SettlementEpoch from this JSON/YAML file (`kubectl get"
            " settlementepoch epoch-N -o json`) instead of from the hub.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    from_provider_claims: Annotated[
        bool,
        typer.Option(
            help="Read the provider's claims (ConfigMap kommons-claims-EPOCH in its hub namespace,"
            " readable with its agent kubeconfig) instead of the SettlementEpoch; also done when"
            " reading the SettlementEpoch is forbidden and --provider is given.",
        ),
    ] = False,
    kubeconfig: KubeconfigOption = None,
    decimals: Annotated[
        int, typer.Option(min=0, max=36, help="Fractional digits of the settlement token.")
    ] = 6,
    dry_run: Annotated[
        bool, typer.Option(help="Check the proofs against the root and print, send nothing.")
    ] = False,
) -> None:
    """Claim a provider's earnings of a confirmed epoch on chain, with the epoch's proofs.

    Reads the provider's leaves and proofs (from the SettlementEpoch on the hub or in a file, or
    from the provider's claims ConfigMap with its own agent kubeconfig), checks every proof
    against the root, then sends claim(epochId, payer, provider, amount, proof) for each leaf;
    a leaf already claimed is reported and skipped. Example, with the provider's kubeconfig
    from onboarding (the contract address is taken from the claims when not given):

        kommons claim 42 --provider prov-a --kubeconfig agent.kubeconfig
        --chain-rpc http://127.0.0.1:8545 --key-file key.txt
    """
    import yaml

    from kommons.cli_claim import read_claims
    from kommons.kube import KubeError, connect
    from kommons.money import format_units

    try:
        hub = (
            None
            if from_file is not None
            else connect(_default_kubeconfig(kubeconfig), field_manager="kommons-claim")
        )
        read = read_claims(
            epoch,
            hub=hub,
            from_file=from_file,
            from_provider_claims=from_provider_claims,
            provider=provider,
            payee=payee,
            decimals=decimals,
        )
    except (OSError, KubeError, ValueError, yaml.YAMLError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if not read.items:
        typer.echo(f"epoch {epoch}: no leaf for {provider or payee or 'anyone'}", err=True)
        raise typer.Exit(1)
    for item in read.items:
        typer.echo(
            f"epoch {epoch}: {format_units(item.amount, decimals=decimals)} from"
            f" {item.billing_account} ({item.payer}) to {item.provider} ({item.payee}):"
            f" proof of {len(item.proof)} hashes verified ({read.source})"
        )
    if dry_run:
        return
    contract = settlement_address or read.chain.settlement_address
    if chain_rpc is None or contract is None or key_file is None:
        typer.echo("error: --chain-rpc, --settlement-address and --key-file are needed", err=True)
        raise typer.Exit(2)
    committed_on = read.chain.settlement_address
    if committed_on is not None and committed_on.lower() != contract.lower():
        typer.echo(
            f"error: --settlement-address {contract} is not the contract the hub committed"
            f" epoch {epoch} on ({committed_on}, in {read.source})",
            err=True,
        )
        raise typer.Exit(2)
    from kommons.settlement.claims import submit_claims

    failed = 0
    try:
        for line, ok in submit_claims(
            chain_rpc, contract, key_file, read.items, chain_id=read.chain.chain_id
        ):
            typer.echo(line, err=not ok)
            failed += 0 if ok else 1
    except ValueError as exc:  # the key file (its content is never shown), another chain
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if failed:
        raise typer.Exit(1)


def _add_market_commands() -> None:
    from kommons.cli_logs import logs
    from kommons.cli_market import bill, lease_app, pool_app, provider_app

    app.add_typer(lease_app, name="lease")
    app.command()(logs)
    app.add_typer(provider_app, name="provider")
    app.add_typer(pool_app, name="pool")
    app.command()(bill)


_add_market_commands()


def main() -> None:
    """Entry point of the ``kommons`` console script."""
    app(prog_name="kommons")


if __name__ == "__main__":
    main()
