"""``make run``: bed + Kommons stack + the examples, shown Running.

Idempotent: a healthy bed and a running stack are reused; only what is missing is started.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kommons.kube import resources as r
from kommons_testbed import tools
from kommons_testbed.bed import Testbed
from kommons_testbed.processes import BedError, wait_for
from kommons_testbed.stack import REPO, Stack, start_stack
from kommons_testbed.state import load_state

EXAMPLES = REPO / "examples"
EXAMPLE_LEASES = (("team-a", "web"), ("team-a", "train"))
Progress = Callable[[str], None]


def _bed(directory: Path, providers: int, progress: Progress) -> Testbed:
    state = load_state(directory)
    if state is not None:
        bed = Testbed(state)
        if not bed.problems():
            progress(f"reusing the running bed in {directory}")
            return bed
        progress(f"the bed in {directory} is unhealthy; restarting it")
        bed.down(progress=progress)
    return Testbed.up(directory, providers=providers, progress=progress)


def _stack(bed: Testbed, progress: Progress, push: Sequence[str] = ()) -> Stack:
    stack = Stack.load(bed.dir, bed)
    if stack is not None and all(stack.alive(name) for name in stack.processes):
        progress("reusing the running hub operator and agents")
        return stack
    if stack is not None:
        stack.down()
    return start_stack(bed, progress=progress, push=push)


def kubectl(bed: Testbed, *args: str) -> str:
    """Run the bed's kubectl against the hub; return its output."""
    argv = [str(tools.binary("kubectl")), "--kubeconfig", str(bed.hub.kubeconfig), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def run(
    directory: Path,
    *,
    providers: int,
    progress: Progress,
    timeout: float = 120.0,
    push: Sequence[str] = (),
) -> int:
    """Bring everything up, apply the examples, wait for the leases to run, show them.

    ``push`` names providers onboarded in push mode (the hub runs their agents).
    """
    started = time.monotonic()
    bed = _bed(directory, providers, progress)
    stack = _stack(bed, progress, push)
    progress(kubectl(bed, "apply", "-f", str(EXAMPLES)).strip())
    hub = stack.hub_kube()

    def running() -> bool:
        return all(
            (hub.get(r.COMPUTE_LEASES, name, ns).get("status") or {}).get("phase") == "Running"
            for ns, name in EXAMPLE_LEASES
        )

    try:
        wait_for(running, timeout=timeout, what="the example leases to be Running", every=0.5)
    except BedError as exc:
        progress(kubectl(bed, "get", "computeleases", "-A"))
        raise BedError(f"{exc}; logs: {stack.dir / 'logs'}") from exc
    kc = f"--kubeconfig {bed.hub.kubeconfig}"
    progress(f"everything is up in {time.monotonic() - started:.0f}s\n")
    progress("$ kubectl get computeleases -n team-a")
    progress(kubectl(bed, "get", "computeleases", "-n", "team-a"))
    progress("$ kubectl get providers")
    progress(kubectl(bed, "get", "providers"))
    progress(
        "Look around:\n"
        f"  export PATH={tools.binary('kubectl').parent}:$PATH\n"
        f"  kubectl {kc} get kommons -A\n"
        f"  kubectl {kc} describe computelease web -n team-a\n"
        f"  kubectl {kc} explain computelease.spec\n"
        f"  kubectl --kubeconfig {bed.providers['prov-a'].kubeconfig} get pods -A"
        "   # the workload on provider prov-a\n"
        f"  logs: {stack.dir / 'logs'}\n"
        "Stop everything with `make stop`."
    )
    return 0
