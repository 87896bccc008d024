"""Start, watch and stop the bed's processes by pid, and wait for things with clear time-outs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class BedError(RuntimeError):
    """Something about the bed went wrong; the message says what and where to look."""


@dataclass(frozen=True)
class ProcessRecord:
    """A process the bed started (persisted in the bed's state file)."""

    name: str
    pid: int
    argv: tuple[str, ...]
    log: Path

    def to_json(self) -> dict[str, object]:
        """Return a JSON-serialisable form for the bed's state file."""
        return {"name": self.name, "pid": self.pid, "argv": list(self.argv), "log": str(self.log)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRecord:
        """Rebuild a record written by :meth:`to_json`."""
        argv = data["argv"]
        assert isinstance(argv, list)
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            argv=tuple(str(a) for a in argv),
            log=Path(str(data["log"])),
        )


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log``.

    The process outlives the caller (``make testbed-up`` exits while the bed runs); it is
    stopped later by pid with :func:`stop`.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return ProcessRecord(name=name, pid=proc.pid, argv=tuple(argv), log=log)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    """Collect a zombie child of ours so it does not linger."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(record: ProcessRecord, *, timeout: float = 10.0) -> None:
    """Stop ``record``'s process: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Some components (kube-scheduler without its apiserver) ignore SIGTERM, hence the fallback.
    A process that is already gone is fine.
    """
    if not _owned(record):
        return
    _signal(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(record.pid):
            return
        time.sleep(0.05)
    kill(record)


def kill(record: ProcessRecord) -> None:
    """SIGKILL ``record``'s process (a crash, for fault tests) and wait until it is gone."""
    if not _owned(record):
        return
    _signal(record.pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(record.pid), timeout=10, what=f"{record.name} to die")


def _owned(record: ProcessRecord) -> bool:
    """Whether ``record.pid`` is still the process we started (pids are reused)."""
    if not is_alive(record.pid):
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == record.argv[0]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    """Poll ``check`` until it is true; raise :class:`BedError` naming ``what`` on time-out.

    Exceptions raised by ``check`` count as "not yet"; the last one is put in the error.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except Exception as exc:  # the caller's check may fail in any way while waiting
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last})" if last else ""
            raise BedError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(every)


def free_port() -> int:
    """Return a loopback TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
