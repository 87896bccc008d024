"""launch.start with a real process (Python's http.server) standing in for a component.

Behaviour matrix: a free port -> ready; a port taken between pick and bind -> started again on
a new port; a component that exits -> BedError with its log tail; a restart without fresh
ports that clashes -> BedError (no retry).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kommons_testbed import launch
from kommons_testbed.processes import BedError, free_port, is_alive, stop

pytestmark = pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning")


def server_argv(ports: Mapping[str, int]) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(ports["http"])]


def ready(ports: Mapping[str, int]) -> bool:
    return launch.http_ok(f"http://127.0.0.1:{ports['http']}/")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_starts_and_waits_until_ready(tmp_path: Path) -> None:
    record, ports = launch.start(
        "web", server_argv, ports=("http",), log=tmp_path / "web.log", ready=ready, timeout=20
    )
    try:
        assert ready(ports)
        assert record.argv[-1] == str(ports["http"])
    finally:
        stop(record)
    assert not is_alive(record.pid)


def test_port_clash_is_retried_on_a_new_port(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken_port, free_port()])
    monkeypatch.setattr(launch, "free_port", lambda: next(picks))
    record, ports = launch.start(
        "web", server_argv, ports=("http",), log=tmp_path / "web.log", ready=ready, timeout=20
    )
    try:
        assert ports["http"] != taken_port
        assert "Address already in use" in (tmp_path / "web.log").read_text()
    finally:
        stop(record)


def test_clash_without_fresh_ports_is_an_error(tmp_path: Path, taken_port: int) -> None:
    with pytest.raises(BedError, match="exited") as info:
        launch.start(
            "web",
            lambda _: server_argv({"http": taken_port}),
            log=tmp_path / "web.log",
            ready=ready,
            timeout=20,
        )
    assert "Address already in use" in str(info.value)


def test_a_component_that_exits_reports_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad flag --frobnicate'); sys.exit(3)"]
    with pytest.raises(BedError, match="bad flag --frobnicate"):
        launch.start("broken", lambda _: argv, log=tmp_path / "b.log", ready=ready, timeout=10)


def test_not_ready_in_time_is_an_error_and_the_process_is_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(BedError, match="not ready within 1s"):
        launch.start("slow", lambda _: argv, log=tmp_path / "s.log", ready=lambda _: False,
                     timeout=1)  # fmt: skip
