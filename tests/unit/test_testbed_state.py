"""The state file: a round trip keeps every field; a missing file is None; garbage is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from kommons_testbed.handles import ChainAccount, ChainHandle, PrometheusHandle
from kommons_testbed.processes import BedError, ProcessRecord
from kommons_testbed.state import BedState, ClusterState, load_state


def make_state(directory: Path) -> BedState:
    ca = directory / "pki/ca.crt"
    hub = ClusterState("hub", "hub", 6443, "/p/hub", directory / "hub.kubeconfig", ca, "tok")
    prov = ClusterState(
        "prov-a", "provider", 6444, "/p/a", directory / "a.kubeconfig", ca, "tok2",
        region="eu-west", nodes=["n1"],
    )  # fmt: skip
    return BedState(
        dir=directory,
        etcd_url="http://127.0.0.1:2379",
        clusters={"hub": hub, "prov-a": prov},
        processes={"etcd": ProcessRecord("etcd", 42, ("/bin/etcd", "--x"), directory / "l.log")},
        started_at=1.5,
        startup_seconds=7.25,
        chain=ChainHandle("http://127.0.0.1:8545", 31337, (ChainAccount("0xA", "0x1"),)),
        prometheus=PrometheusHandle("http://127.0.0.1:9090", directory / "p.yml"),
        merged_kubeconfig=directory / "kubeconfig",
    )


def test_round_trip(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    state.save()
    loaded = load_state(tmp_path)
    assert loaded == state
    assert loaded is not None
    assert loaded.hub.server == "https://127.0.0.1:6443"
    assert list(loaded.providers) == ["prov-a"]
    assert loaded.providers["prov-a"].handle().admin_token == "tok2"


def test_missing_is_none(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None


def test_garbage_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(BedError, match="not a valid bed state file"):
        load_state(tmp_path)


def test_other_format_version_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"version": 99}')
    with pytest.raises(BedError, match="format"):
        load_state(tmp_path)
