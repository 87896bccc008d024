"""Which test sessions use a bed, so the last one out (not the first) stops a shared bed.

Each pytest session using the bed writes ``<dir>/sessions/<pid>``. A bed started by a test
session carries ``<dir>/sessions/.started-by-tests``; such a bed is stopped by whichever session
ends last. A bed started with ``make testbed-up`` has no such file and is never stopped by tests.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from kommons_testbed.processes import is_alive

_DIR = "sessions"
_STARTED_BY_TESTS = ".started-by-tests"


def register(directory: Path, pid: int | None = None) -> None:
    """Record that session ``pid`` (default: this process) uses the bed in ``directory``."""
    sessions = directory / _DIR
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / str(pid or os.getpid())).write_text("")


def unregister(directory: Path, pid: int | None = None) -> None:
    """Forget session ``pid`` (default: this process)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / _DIR / str(pid or os.getpid())).unlink()


def live_sessions(directory: Path, *, exclude_self: bool = True) -> list[int]:
    """Return the pids of registered sessions that still run (stale entries are removed)."""
    sessions = directory / _DIR
    if not sessions.is_dir():
        return []
    live = []
    for entry in sessions.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if exclude_self and pid == os.getpid():
            continue
        if is_alive(pid):
            live.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return sorted(live)


def mark_started_by_tests(directory: Path) -> None:
    """Mark the bed in ``directory`` as started by a test session (tests may stop it)."""
    sessions = directory / _DIR
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / _STARTED_BY_TESTS).write_text("")


def started_by_tests(directory: Path) -> bool:
    """Whether the bed in ``directory`` was started by a test session."""
    return (directory / _DIR / _STARTED_BY_TESTS).exists()
