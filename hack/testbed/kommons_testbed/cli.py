"""``kommons-testbed up|down|status|env``: the bed from the command line (``make testbed-*``)."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from kommons_testbed import tools
from kommons_testbed.bed import DIR_ENV, Testbed, default_dir, rss_kib, running_processes
from kommons_testbed.config import DEFAULT_HARDWARE_FILE
from kommons_testbed.processes import BedError, is_alive
from kommons_testbed.stack import Stack
from kommons_testbed.state import load_state

_print_lock = threading.Lock()


def _say(text: str) -> None:
    with _print_lock:  # progress comes from the start-up threads
        print(text, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    """Start a bed and print how to reach it (SIGTERM/Ctrl-C stop what was started)."""
    signal.signal(signal.SIGTERM, _interrupt)
    bed = Testbed.up(
        args.dir,
        providers=args.providers,
        hardware=args.hardware,
        chain=not args.no_chain,
        progress=_say,
    )
    _print_summary(bed)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start what is missing of bed and stack, apply the examples, show them Running."""
    from kommons_testbed.demo import run  # imports the product package; only `run` needs it

    signal.signal(signal.SIGTERM, _interrupt)
    directory: Path = (args.dir or default_dir()).resolve()
    return run(directory, providers=args.providers, progress=_say, push=args.push or ())


def cmd_hollow(args: argparse.Namespace) -> int:
    """Run hollow agents (hub side of N simulated providers); see :mod:`kommons_testbed.hollow`."""
    from kommons_testbed import hollow  # imports the product package; only `hollow` needs it

    return hollow.run_from_args(hollow.build_parser().parse_args(args.rest), args.dir)


def cmd_chaos(args: argparse.Namespace) -> int:
    """Print a seeded churn's plan; run it on the bed and check convergence (docs/chaos.md)."""
    from kommons_testbed import chaos_run  # imports the product package; only `chaos` needs it

    signal.signal(signal.SIGTERM, _interrupt)
    return chaos_run.run((args.dir or default_dir()).resolve(), args, _say)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the bed's processes by pid and remove its directory."""
    directory: Path = (args.dir or default_dir()).resolve()
    state = load_state(directory)
    if state is None:
        _say(f"no bed in {directory}: nothing to stop")
        return 0
    alive = running_processes(state)
    if not alive:
        _say(f"the bed in {directory} was not running; removing its state")
    Testbed(state).down(progress=_say)
    _say(f"bed stopped; {directory} removed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the bed's clusters, ports and processes; exit 1 unless it is healthy."""
    directory: Path = (args.dir or default_dir()).resolve()
    state = load_state(directory)
    if state is None:
        _say(f"no bed in {directory} (start one with `make testbed-up`)")
        return 1
    bed = Testbed(state)
    _print_summary(bed)
    total = 0
    _say("processes:")
    for name, rec in state.processes.items():
        alive = is_alive(rec.pid)
        rss = rss_kib(rec.pid) if alive else 0
        total += rss
        mark = f"running  {rss / 1024:7.1f} MiB" if alive else "DEAD"
        _say(f"  {name:32} pid {rec.pid:<8} {mark}   log {rec.log}")
    _say(f"total RSS: {total / 1024:.0f} MiB")
    problems = bed.problems()
    if problems:
        _say("problems:\n  " + "\n  ".join(problems))
        return 1
    _say("healthy")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Print shell exports for the running bed: ``eval "$(kommons-testbed env)"``."""
    directory: Path = (args.dir or default_dir()).resolve()
    state = load_state(directory)
    if state is None:
        raise BedError(f"no bed in {directory}: run `make testbed-up` first")
    kubeconfig = state.merged_kubeconfig or state.hub.kubeconfig
    print(f"export {DIR_ENV}={shlex.quote(str(directory))}")
    print(f"export KUBECONFIG={shlex.quote(str(kubeconfig))}")
    print(f'export PATH={shlex.quote(str(tools.bin_dir()))}:"$PATH"')
    stack = Stack.load(directory)
    for name, port in sorted((stack.metrics_ports if stack else {}).items()):
        # KOMMONS_HUB_METRICS, KOMMONS_AGENT_PROV_A_METRICS, …: what Prometheus would scrape
        variable = "KOMMONS_" + name.upper().replace("-", "_") + "_METRICS"
        print(f"export {variable}=http://127.0.0.1:{port}/metrics")
    return 0


def _print_summary(bed: Testbed) -> None:
    state = bed.state
    took = f" (started in {state.startup_seconds}s)" if state.startup_seconds else ""
    _say(f"bed in {bed.dir}{took}")
    for c in state.clusters.values():
        extra = f"  region {c.region}, nodes {len(c.nodes)}" if c.role == "provider" else ""
        _say(f"  {c.name:8} {c.server}  kubeconfig {c.kubeconfig}{extra}")
    if state.chain:
        _say(f"  chain    {state.chain.rpc_url}  chain id {state.chain.chain_id}")
    if state.prometheus:
        _say(f"  prometheus {state.prometheus.url}")
    if state.merged_kubeconfig:
        _say(f"all clusters: kubectl --kubeconfig {state.merged_kubeconfig} --context <name> ...")


def _add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="the churn's seed")
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--leases", type=int, default=500, help="leases created (default 500)")
    parser.add_argument(
        "--round-seconds", type=float, default=12.0, help="length of a round (default 12)"
    )
    parser.add_argument(
        "--deadline", type=float, default=900.0, help="seconds to wait for convergence"
    )
    parser.add_argument("--plan-only", action="store_true", help="print the plan; touch no bed")


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="kommons-testbed",
        description="Kommons test bed: real hub + provider control planes, kwok nodes, anvil.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"state directory (default ${DIR_ENV} or <repo>/.testbed)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a bed")
    up.add_argument("--providers", type=int, default=3, help="provider clusters (default 3)")
    up.add_argument(
        "--hardware",
        type=Path,
        default=DEFAULT_HARDWARE_FILE,
        help=f"simulated provider hardware (default {DEFAULT_HARDWARE_FILE})",
    )
    up.add_argument("--no-chain", action="store_true", help="do not start anvil")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the bed and remove its state")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show clusters, ports, processes")
    status.set_defaults(func=cmd_status)
    env = sub.add_parser("env", help='print exports (KUBECONFIG, PATH): eval "$(... env)"')
    env.set_defaults(func=cmd_env)
    run = sub.add_parser(
        "run",
        help="bed + Kommons stack (hub, agents) + examples/, shown Running (make run)",
    )
    run.add_argument("--providers", type=int, default=3, help="provider clusters (default 3)")
    run.add_argument(
        "--push",
        action="append",
        metavar="PROVIDER",
        help="onboard PROVIDER in push mode: the hub runs its agent (repeat; e.g. prov-c)",
    )
    run.set_defaults(func=cmd_run)
    hollow = sub.add_parser(
        "hollow",
        help="simulate N providers' agents on the hub, without clusters (`hollow --help`)",
        add_help=False,
        prefix_chars="+",  # every argument goes to the hollow fleet's own parser
    )
    hollow.add_argument("rest", nargs="*")
    hollow.set_defaults(func=cmd_hollow)
    chaos = sub.add_parser(
        "chaos",
        help="seeded churn of leases with SIGKILLs of hub and agents, then a convergence check",
    )
    _add_chaos_arguments(chaos)
    chaos.set_defaults(func=cmd_chaos)
    for p in (up, down, status, env, run, chaos):
        p.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors are one clear message, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BedError as exc:
        print(f"kommons-testbed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("kommons-testbed: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
