"""The bed's guard rails, without starting clusters.

Behaviour matrix: missing binaries -> one BedError naming them and `make deps`; a directory
that is not a bed's is never taken over or removed; a stale state (nothing alive) is cleared
by `up` and `down`; `down`/`status` without a bed say so; CLI errors are one line, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kommons_testbed import tools
from kommons_testbed.bed import MARKER, Testbed, _claim_dir
from kommons_testbed.cli import main
from kommons_testbed.processes import BedError, ProcessRecord, is_alive, spawn
from kommons_testbed.state import BedState, load_state

pytestmark = pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning")


@pytest.fixture
def no_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KOMMONS_BIN", str(tmp_path / "empty-bin"))
    tools.bin_dir.cache_clear()
    yield
    tools.bin_dir.cache_clear()


@pytest.mark.usefixtures("no_binaries")
def test_missing_binaries_say_run_make_deps(tmp_path: Path) -> None:
    with pytest.raises(BedError, match=r"run `make deps`") as info:
        Testbed.up(tmp_path / "bed", providers=1, chain=False)
    for name in ("etcd", "kube-apiserver", "kwok"):
        assert name in str(info.value)
    assert not (tmp_path / "bed").exists()


def test_versions_sh_gives_the_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOMMONS_BIN", raising=False)
    tools.bin_dir.cache_clear()
    try:
        assert tools.bin_dir().name.startswith("k8s-v1.36.3-kwok-v0.8.0-etcd-")
    finally:
        tools.bin_dir.cache_clear()


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(BedError, match="not a bed directory"):
        _claim_dir(tmp_path, lambda _: None)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def stale_state(directory: Path) -> BedState:
    """A state whose only process has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("")
    state = BedState(
        dir=directory,
        etcd_url="http://127.0.0.1:1",
        clusters={},
        processes={"etcd": ProcessRecord("etcd", proc.pid, (sys.executable,), directory / "l")},
        started_at=time.time(),
    )
    state.save()
    return state


def test_stale_state_is_cleared_by_claim(tmp_path: Path) -> None:
    bed = tmp_path / "bed"
    stale_state(bed)
    said: list[str] = []
    _claim_dir(bed, said.append)
    assert load_state(bed) is None
    assert any("stopped bed" in s for s in said)
    assert (bed / MARKER).exists()


def test_running_bed_is_refused(tmp_path: Path) -> None:
    bed = tmp_path / "bed"
    state = stale_state(bed)
    me = ProcessRecord("etcd", os.getpid(), (sys.executable,), bed / "l")
    state.processes = {"etcd": me}
    state.save()
    with pytest.raises(BedError, match=r"already running.*make testbed-down"):
        _claim_dir(bed, lambda _: None)
    assert load_state(bed) is not None


def test_cli_down_and_status_without_a_bed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(tmp_path / "none"), "down"]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert main(["--dir", str(tmp_path / "none"), "status"]) == 1
    assert "no bed" in capsys.readouterr().out


def test_cli_down_of_a_stale_bed_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bed = tmp_path / "bed"
    stale_state(bed)
    assert main(["--dir", str(bed), "down"]) == 0
    assert "was not running" in capsys.readouterr().out
    assert not bed.exists()


def test_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("not a bed")
    assert main(["--dir", str(tmp_path), "up", "--providers", "0", "--no-chain"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kommons-testbed: ")
    assert "Traceback" not in err


def test_adopted_process_is_stopped_by_down_and_not_a_problem(tmp_path: Path) -> None:
    bed_dir = tmp_path / "bed"
    bed = Testbed(stale_state(bed_dir))
    sleeper = spawn("operator", [sys.executable, "-c", "import time; time.sleep(60)"],
                    bed_dir / "logs" / "operator.log")  # fmt: skip
    bed.adopt(sleeper)
    with pytest.raises(BedError, match="bed component"):
        bed.adopt(ProcessRecord("etcd", sleeper.pid, sleeper.argv, sleeper.log))
    reloaded = Testbed.load(bed_dir)
    assert reloaded.process("operator").pid == sleeper.pid
    assert not any("operator" in p for p in reloaded.problems())
    reloaded.down()
    assert not is_alive(sleeper.pid)
    assert not bed_dir.exists()
