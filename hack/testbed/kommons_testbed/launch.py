"""Start one component on OS-chosen ports and wait until it is ready (retrying port clashes).

A port from :func:`~kommons_testbed.processes.free_port` can be taken by someone else between
the pick and the bind; a component that dies saying "address already in use" is started again
on new ports.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kommons_testbed.processes import BedError, ProcessRecord, free_port, is_alive, spawn, stop

_CLASH = ("address already in use", "bind: address in use")
ATTEMPTS = 3


def log_tail(log: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of ``log`` (for error messages)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start(
    name: str,
    argv_for: Callable[[Mapping[str, int]], Sequence[str]],
    *,
    ports: Sequence[str] = (),
    log: Path,
    ready: Callable[[Mapping[str, int]], bool],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> tuple[ProcessRecord, dict[str, int]]:
    """Spawn ``argv_for(ports)`` and wait until ``ready(ports)``; retry on a port clash.

    Args:
        name: component name (``prov-a/kube-apiserver``), used in messages and the record.
        argv_for: builds the command line from the chosen ports.
        ports: names of the ports to pick freshly on each attempt; without any (a process
            restarted in place on its old ports) a clash is an error, not a retry.
        log: the component's log file (appended to).
        ready: true once the component serves; exceptions count as "not yet".
        timeout: seconds to wait for readiness per attempt.
        env: environment of the process (default: inherited).

    Returns:
        The process record and the ports it runs on.

    Raises:
        BedError: the component died or did not become ready; the message has its log tail.
    """
    for attempt in range(1, ATTEMPTS + 1):
        chosen = {p: free_port() for p in ports}
        log_start = log.stat().st_size if log.exists() else 0
        record = spawn(name, list(argv_for(chosen)), log, env=env)
        outcome = _wait_ready(record, chosen, ready, timeout)
        if outcome == "ready":
            return record, chosen
        stop(record, timeout=5)
        recent = _read_from(log, log_start).lower()
        clash = any(c in recent for c in _CLASH)
        if clash and ports and attempt < ATTEMPTS:
            continue
        what = "exited" if outcome == "died" else f"was not ready within {timeout:.0f}s"
        raise BedError(f"{name} {what} (ports {chosen}); log {log}:\n{log_tail(log)}")
    raise AssertionError("unreachable")  # pragma: no cover


def _read_from(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _wait_ready(
    record: ProcessRecord,
    ports: Mapping[str, int],
    ready: Callable[[Mapping[str, int]], bool],
    timeout: float,
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(record.pid):
            return "died"
        try:
            if ready(ports):
                return "ready"
        except Exception:  # not serving yet, in whatever way
            pass
        time.sleep(0.1)
    return "timeout"


def http_ok(
    url: str,
    *,
    token: str | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout: float = 2.0,
) -> bool:
    """Whether GET ``url`` answers 200 (TLS verified against ``ca_file`` unless ``insecure``)."""
    context: ssl.SSLContext | None = None
    if url.startswith("https:"):
        if insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False
