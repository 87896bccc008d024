"""Session registry of a shared bed: the last session out stops a bed that tests started.

Behaviour matrix: registered live pids are listed (not our own by default); dead pids are
pruned; the started-by-tests mark is separate from the session entries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kommons_testbed import sessions


def test_register_list_unregister(tmp_path: Path) -> None:
    assert sessions.live_sessions(tmp_path) == []
    sessions.register(tmp_path)
    assert sessions.live_sessions(tmp_path) == []  # ourselves excluded
    assert sessions.live_sessions(tmp_path, exclude_self=False) == [os.getpid()]
    sessions.register(tmp_path, pid=1)  # init: alive
    assert sessions.live_sessions(tmp_path) == [1]
    sessions.unregister(tmp_path)
    sessions.unregister(tmp_path)  # twice is fine
    assert sessions.live_sessions(tmp_path, exclude_self=False) == [1]


def test_dead_sessions_are_pruned(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    sessions.register(tmp_path, pid=proc.pid)
    assert sessions.live_sessions(tmp_path) == []
    assert not (tmp_path / "sessions" / str(proc.pid)).exists()


def test_started_by_tests_mark(tmp_path: Path) -> None:
    assert not sessions.started_by_tests(tmp_path)
    sessions.mark_started_by_tests(tmp_path)
    assert sessions.started_by_tests(tmp_path)
    assert sessions.live_sessions(tmp_path) == []
