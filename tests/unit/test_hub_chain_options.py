"""The hub's chain options (``kommons hub --chain-rpc …``): parsing, validation, the start log.

Behaviour matrix:
- no ``--chain-rpc`` → None (settlement off), and the hub logs once that it is disabled;
  ``--settlement-address`` or ``--operator-key-file`` without it → an error naming them;
- ``--chain-rpc`` needs an http(s)/ws(s) URL and a 0x address; confirmations ≥ 1;
- the key file must hold a key (the error names the file, never its content); without a key
  file the hub is read-only and says so;
- the start log names the chain and the contract, warns on a key file others can read, and
  never contains the key;
- the CLI refuses bad options with a message naming the option.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kommons.cli import app
from kommons.hub.chain_options import ChainOptions, log_chain_mode

RPC = "http://127.0.0.1:8545"
ADDRESS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
KEY = "0x" + "ac" * 32


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "operator.key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


def test_without_chain_rpc_settlement_is_off(caplog: pytest.LogCaptureFixture) -> None:
    assert (
        ChainOptions.from_cli(chain_rpc=None, settlement_address=None, operator_key_file=None)
        is None
    )
    with caplog.at_level(logging.INFO, logger="kommons.hub"):
        log_chain_mode(None)
    assert [r.getMessage() for r in caplog.records if "settlement" in r.getMessage()] == [
        "settlement disabled: no --chain-rpc (metering still runs; no epochs are committed and"
        " the payment guard is off)"
    ]


def test_chain_options_without_chain_rpc_are_refused(key_file: Path) -> None:
    with pytest.raises(
        ValueError, match="--settlement-address and --operator-key-file need --chain-rpc"
    ):
        ChainOptions.from_cli(
            chain_rpc=None, settlement_address=ADDRESS, operator_key_file=key_file
        )


@pytest.mark.parametrize(
    ("rpc", "address", "confirmations", "message"),
    [
        ("127.0.0.1:8545", ADDRESS, 1, "--chain-rpc '127.0.0.1:8545' is not an http"),
        (RPC, None, 1, "--chain-rpc needs --settlement-address"),
        (RPC, "0x1234", 1, "--settlement-address '0x1234' is not a 0x-prefixed 20-byte address"),
        (RPC, ADDRESS, 0, "--chain-confirmations 0 must be at least 1"),
    ],
)
def test_malformed_options_name_the_option(
    rpc: str, address: str | None, confirmations: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ChainOptions.from_cli(
            chain_rpc=rpc,
            settlement_address=address,
            operator_key_file=None,
            confirmations=confirmations,
        )


def test_a_key_file_without_a_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    bad = tmp_path / "key"
    bad.write_text("hunter2-not-a-key\n")
    with pytest.raises(
        ValueError, match=r"--operator-key-file: the key file .* does not hold"
    ) as exc:
        ChainOptions.from_cli(chain_rpc=RPC, settlement_address=ADDRESS, operator_key_file=bad)
    assert "hunter2" not in str(exc.value)


def test_enabled_settlement_logs_chain_and_contract_never_the_key(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = ChainOptions.from_cli(
        chain_rpc=RPC, settlement_address=ADDRESS, operator_key_file=key_file, confirmations=3
    )
    assert options is not None
    assert options.confirmations == 3
    key = options.load_key()
    assert key is not None
    assert KEY[2:] not in repr(options) + repr(key)
    assert options.connect().key is not None
    key_file.chmod(0o644)
    with caplog.at_level(logging.INFO, logger="kommons.hub"):
        log_chain_mode(options)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"settlement enabled: chain {RPC}, contract {ADDRESS}" in text
    assert "readable by others" in text
    assert KEY[2:] not in text


def test_without_a_key_file_the_hub_is_read_only(caplog: pytest.LogCaptureFixture) -> None:
    options = ChainOptions.from_cli(
        chain_rpc=RPC, settlement_address=ADDRESS, operator_key_file=None
    )
    assert options is not None
    assert options.load_key() is None
    with caplog.at_level(logging.INFO, logger="kommons.hub"):
        log_chain_mode(options)
    assert "settlement read-only" in caplog.text


def test_the_cli_refuses_bad_chain_options(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = CliRunner().invoke(
        app,
        [
            "hub",
            "--kubeconfig",
            str(kubeconfig),
            "--chain-rpc",
            RPC,
            "--settlement-address",
            "0x12",
        ],
    )
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())  # rich boxes and wraps the text
    assert "--settlement-address '0x12' is not a 0x-prefixed 20-byte address" in words
