"""Time from an epoch's end to its confirmed commit on anvil, through the hub's settlement loop.

1. A bed with only the hub's API server (no provider cluster; or ``--attach`` to a running bed
   on which no hub runs a settlement loop), its own anvil with a TestToken and a Settlement,
   two billing accounts, two providers and a lease whose ``status.usage`` the bench writes for
   every epoch as it opens (three leaves per epoch).
2. The settlement loop of the hub (:class:`kommons.hub.settlement_loop.SettlementLoop`, its
   default 2 s step, ``--seal-delay-seconds 0``, 1 confirmation, anvil automining) runs in a
   thread on the real clock for ``--epochs`` epochs of ``--epoch-seconds``.
3. The bench polls the epochs every 50 ms and stamps, from each epoch's end: frozen (phase
   Sealed), sealed (root written), submitted (commit sent), confirmed.

Prints p50/max per stamp; asserts nothing about time. A real hub adds ``--seal-delay-seconds``
(default 300 s) before the freeze, and the chain's block time × confirmations at the end.
Run: ``.venv/bin/python bench/bench_settlement_loop.py [--quick] [--attach]`` (bed in
``$KOMMONS_TESTBED_DIR`` or ``/tmp/kommons-bench-settlement``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import load_average, percentile, say, table

from kommons.api import SettlementEpoch
from kommons.hub.settlement_loop import SettlementLoop, SettlementOptions
from kommons.kube import Kube, connect
from kommons.kube import resources as r
from kommons.settlement.chain import (
    SettlementChain,
    deploy_settlement,
    deploy_token,
    web3_for,
)
from kommons_testbed.anvil import start_anvil
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import stop
from kommons_testbed.stack import install_crds
from kommons_testbed.state import load_state

TENANT = "bench-settle"
LEASE = "bench-settle"
STAMPS = ("frozen", "sealed", "submitted", "confirmed")
LABELS = {
    "frozen": "epoch frozen (phase Sealed)",
    "sealed": "leaves, proofs and root written",
    "submitted": "commit signed, recorded and sent",
    "confirmed": "commit confirmed (phase Confirmed)",
}
JSON = dict[str, Any]


def setup(kube: Kube, accounts: list[str], payees: list[str]) -> None:
    """Two billing accounts, two providers, one lease to carry the usage."""
    for body in kube.list(r.SETTLEMENT_EPOCHS):
        kube.delete(r.SETTLEMENT_EPOCHS, body["metadata"]["name"])
    for i, address in enumerate(accounts):
        kube.apply(
            r.BILLING_ACCOUNTS,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "BillingAccount",
                "metadata": {"name": f"bench-acct-{i}"},
                "spec": {"address": address, "namespaceSelector": {"matchLabels": {"b": "x"}}},
            },
        )
    for i, address in enumerate(payees):
        kube.apply(
            r.PROVIDERS,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "Provider",
                "metadata": {"name": f"bench-prov-{i}"},
                "spec": {
                    "region": "bench",
                    "payoutAddress": address,
                    "pricing": {"cpuCoreHour": "0.01", "memoryGiBHour": "0.001"},
                    "cordoned": True,
                },
            },
        )
    if kube.get_or_none(r.NAMESPACES, TENANT) is None:
        kube.create(
            r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT}}
        )
    if kube.get_or_none(r.COMPUTE_LEASES, LEASE, TENANT) is None:
        kube.create(
            r.COMPUTE_LEASES,
            {
                "apiVersion": "kommons.io/v1alpha1",
                "kind": "ComputeLease",
                "metadata": {"name": LEASE, "namespace": TENANT},
                "spec": {
                    "poolRef": {"name": "bench-none"},
                    "replicas": 1,
                    "resources": {"cpu": "100m", "memory": "64Mi"},
                    "maxPricePerHour": "1",
                    "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                },
            },
            TENANT,
        )


def cleanup(kube: Kube) -> None:
    """Remove what the bench created (its usage would bill an attached bed's next epochs)."""
    kube.delete(r.NAMESPACES, TENANT)
    for i in range(2):
        kube.delete(r.BILLING_ACCOUNTS, f"bench-acct-{i}")
        kube.delete(r.PROVIDERS, f"bench-prov-{i}")
    for body in kube.list(r.SETTLEMENT_EPOCHS):
        kube.delete(r.SETTLEMENT_EPOCHS, body["metadata"]["name"])


def write_usage(kube: Kube, epoch_ids: list[int]) -> None:
    """Three leaves per epoch (the second account pays one provider only)."""
    usage = [
        {
            "epochId": epoch_id,
            "provider": f"bench-prov-{p}",
            "placementUid": f"p{a}{p}",
            "billingAccount": f"bench-acct-{a}",
            "readySeconds": 10,
            "amount": f"0.{epoch_id:02d}{a}{p}",
        }
        for epoch_id in epoch_ids
        for a, p in ((0, 0), (0, 1), (1, 0))
    ]
    kube.patch(r.COMPUTE_LEASES, LEASE, {"status": {"usage": usage}}, TENANT, subresource="status")


def stamp_of(epoch: SettlementEpoch) -> str | None:
    """The furthest stamp the epoch has reached."""
    status = epoch.status
    if status is None:
        return None
    if status.phase == "Confirmed":
        return "confirmed"
    if status.phase == "Submitted":
        return "submitted"
    if status.phase == "Sealed":
        return "sealed" if status.root is not None else "frozen"
    return None


def run(kube: Kube, chain: SettlementChain, args: argparse.Namespace) -> JSON:
    """Run the loop for ``args.epochs`` epochs; seconds from each epoch's end per stamp."""
    options = SettlementOptions(
        epoch_seconds=args.epoch_seconds, seal_delay_seconds=0, step_seconds=args.step_seconds
    )
    loop = SettlementLoop(kube, chain, options)
    done = threading.Event()

    def drive() -> None:
        while not done.is_set():
            try:
                loop.step()
            except Exception as exc:  # the hub logs and retries; so does the bench
                say(f"step failed: {exc}")
            done.wait(options.step_seconds)

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    seen: dict[int, dict[str, float]] = {}
    ends: dict[int, datetime] = {}
    usage_for: set[int] = set()
    deadline = time.monotonic() + args.epochs * args.epoch_seconds + 120
    try:
        while time.monotonic() < deadline:
            epochs = [SettlementEpoch.model_validate(b) for b in kube.list(r.SETTLEMENT_EPOCHS)]
            now = datetime.now(UTC)
            new = {e.spec.epoch_id or 0 for e in epochs} - usage_for
            if new:
                usage_for |= new
                write_usage(kube, sorted(usage_for))
            for epoch in epochs:
                epoch_id = epoch.spec.epoch_id or 0
                ends[epoch_id] = epoch.spec.end
                reached = stamp_of(epoch)
                if reached is None:
                    continue
                stamps = seen.setdefault(epoch_id, {})
                for name in STAMPS[: STAMPS.index(reached) + 1]:
                    stamps.setdefault(name, (now - epoch.spec.end).total_seconds())
            confirmed = [i for i in seen if "confirmed" in seen[i]]
            if len(confirmed) >= args.epochs:
                break
            time.sleep(0.05)
    finally:
        done.set()
        thread.join(timeout=30)
    measured = sorted(i for i in seen if "confirmed" in seen[i])[: args.epochs]
    return {
        "epochs": len(measured),
        "epochSeconds": args.epoch_seconds,
        "stepSeconds": args.step_seconds,
        "fromEnd": {name: [seen[i][name] for i in measured] for name in STAMPS},
    }


def report(results: JSON, elapsed: float) -> str:
    """The table: p50 and max seconds from an epoch's end to each stamp."""
    rows: list[tuple[str, object]] = []
    for name in STAMPS:
        values = results["fromEnd"][name]
        p50, top = percentile(values, 50), max(values) if values else None
        rows.append(
            (
                LABELS[name],
                "n/a" if p50 is None or top is None else f"p50 {p50:.2f} s, max {top:.2f} s",
            )
        )
    rows.append(("epochs measured", results["epochs"]))
    rows.append(("loop step", f"{results['stepSeconds']} s"))
    rows.append(("load average (1 min)", load_average()))
    rows.append(("bench wall time", f"{elapsed:.0f} s"))
    title = (
        f"settlement loop on anvil: seconds from an epoch's end ({results['epochSeconds']} s"
        " epochs, seal delay 0, 1 confirmation)"
    )
    return table(title, rows)


def main() -> int:
    """Start (or attach to) a bed and anvil, run the loop, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    parser.add_argument("--epochs", type=int, default=8, help="epochs measured (default 8)")
    parser.add_argument("--epoch-seconds", type=int, default=6, help="epoch length (default 6)")
    parser.add_argument(
        "--step-seconds", type=float, default=2.0, help="loop step (default 2, the hub's)"
    )
    parser.add_argument("--attach", action="store_true", help="use the running bed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 3
    directory = Path(os.environ.get("KOMMONS_TESTBED_DIR") or "/tmp/kommons-bench-settlement")
    started = time.monotonic()
    if args.attach:
        state = load_state(directory)
        if state is None:
            raise SystemExit(f"no bed in {directory} to attach to")
        bed = Testbed(state)
    else:
        say(f"starting a bed in {directory} (the hub's API server only)")
        bed = Testbed.up(directory, providers=0, chain=False, progress=say)
    anvil_dir = directory / "bench-anvil"
    anvil_dir.mkdir(parents=True, exist_ok=True)
    record, handle = start_anvil(anvil_dir)
    try:
        kube = connect(bed.hub.kubeconfig, field_manager="bench-settlement")
        install_crds(kube)
        operator = handle.accounts[0]
        w3 = web3_for(handle.rpc_url)
        token = deploy_token(w3, operator.private_key)
        address = deploy_settlement(
            w3,
            operator.private_key,
            token=token,
            admin=operator.address,
            operator=operator.address,
            withdrawal_delay=3600,
        )
        setup(
            kube,
            [a.address for a in handle.accounts[1:3]],
            [a.address for a in handle.accounts[5:7]],
        )
        chain = SettlementChain.connect(handle.rpc_url, address, operator.private_key)
        say(f"running the loop for {args.epochs} epochs of {args.epoch_seconds} s")
        try:
            results = run(kube, chain, args)
        finally:
            cleanup(kube)
    finally:
        stop(record)
        if not args.attach:
            say("stopping the bed")
            bed.down()
    elapsed = time.monotonic() - started
    print(report(results, elapsed), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results | {"seconds": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
