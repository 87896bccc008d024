"""Pure parts of the bed's anvil support: versions.sh pins, log and config-out parsing, lookup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kommons_testbed import anvil
from kommons_testbed.anvil import (
    anvil_binary,
    anvil_version,
    parse_config_out,
    parse_listening_port,
    parse_versions_sh,
)
from kommons_testbed.processes import BedError

ANVIL_BANNER = """\

                             _   _
                            (_) | |
      __ _   _ __   __   __  _  | |
   / _` | | '_ \\  \\ \\ / / | | | |
  | (_| | | | | |  \\ V /  | | | |
   \\__,_| |_| |_|   \\_/   |_| |_|

    1.7.1-v1.7.1 (c2b4a8c 2026-01-01T00:00:00.000000000Z)
    https://github.com/foundry-rs/foundry

Available Accounts
==================

(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)

Chain ID
==================

31337

Listening on 127.0.0.1:44111
eth_chainId
"""

# anvil's --config-out shape (first two default dev accounts of its well-known mnemonic).
ADDRESSES = [
    "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
]
KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
]
CONFIG_OUT: dict[str, object] = {
    "available_accounts": ADDRESSES,
    "private_keys": KEYS,
    "wallet": {},
    "base_fee": "1000000000",
}


def test_listening_line_gives_the_port() -> None:
    assert parse_listening_port(ANVIL_BANNER) == 44111


@pytest.mark.parametrize(
    "text",
    ["", "Chain ID\n31337\n", "Listening on 127.0.0.1:\n", "Listening on 127.0.0.1:441"],
)
def test_no_port_until_the_line_is_complete(text: str) -> None:
    assert parse_listening_port(text) is None


def test_listening_line_must_start_a_line() -> None:
    assert parse_listening_port("eth_call: Listening on 127.0.0.1:1234 nope\n") is None
    assert parse_listening_port("x\nListening on 127.0.0.1:1234\r\n") == 1234


def test_config_out_gives_checksummed_accounts_with_0x_keys() -> None:
    accounts = parse_config_out(CONFIG_OUT)
    assert [a.address for a in accounts] == [
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ]
    assert accounts[0].private_key == KEYS[0]


def test_config_out_keys_without_0x_get_it() -> None:
    data = dict(CONFIG_OUT, private_keys=[k[2:] for k in KEYS])
    assert parse_config_out(data)[1].private_key == KEYS[1]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"available_accounts": [], "private_keys": []},
        dict(CONFIG_OUT, private_keys=KEYS[:1]),
        dict(CONFIG_OUT, private_keys=["0x1234", "0x5678"]),
    ],
)
def test_malformed_config_out_is_a_clear_error(data: dict[str, object]) -> None:
    with pytest.raises(BedError, match="config-out"):
        parse_config_out(data)


def test_versions_sh_pins_are_parsed() -> None:
    text = 'KUBE_VERSION=v1.36.3\nANVIL_VERSION="1.7.1"\nKOMMONS_CACHE="${KOMMONS_CACHE:-x}"\n'
    assert parse_versions_sh(text) == {"KUBE_VERSION": "v1.36.3", "ANVIL_VERSION": "1.7.1"}


def test_anvil_version_comes_from_the_repo_versions_sh() -> None:
    versions_sh = Path(anvil.__file__).resolve().parent.parent / "versions.sh"
    assert f"ANVIL_VERSION={anvil_version()}" in versions_sh.read_text()


def test_missing_anvil_says_run_make_deps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOMMONS_ANVIL", raising=False)
    monkeypatch.setenv("KOMMONS_CACHE", str(tmp_path))
    with pytest.raises(BedError, match=r"anvil not installed; run `make deps`"):
        anvil_binary()


def test_binary_resolves_the_install_script_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOMMONS_ANVIL", raising=False)
    monkeypatch.setenv("KOMMONS_CACHE", str(tmp_path))
    binary = (
        tmp_path
        / "npm"
        / f"anvil-{anvil_version()}"
        / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    )
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert anvil_binary() == binary


def test_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "my-anvil"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KOMMONS_ANVIL", str(fake))
    assert anvil_binary() == fake
    os.chmod(fake, 0o644)
    with pytest.raises(BedError, match="make deps"):
        anvil_binary()
