"""The bed's settlement handle, its pure parts.

The deployment itself runs in tests/integration/test_settlement_bed.py and
test_settlement_contract.py.

Behaviour matrix:
- ``hub_args`` are exactly the hub's three chain options;
- the handle survives ``save``/``load`` unchanged, in a 0600 file; no file → None;
- the key file is created 0600 (and replaced, never appended to);
- the bed's payees are the payout addresses of examples/providers (accounts 5, 6, 7).
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from kommons_testbed.handles import ChainAccount
from kommons_testbed.settlement_bed import SettlementDeployment, write_key_file

REPO = Path(__file__).resolve().parents[2]
ANVIL_ADDRESSES = [  # anvil's well-known dev accounts 0..7
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
]


def account(i: int) -> ChainAccount:
    return ChainAccount(address=ANVIL_ADDRESSES[i], private_key="0x" + f"{i + 1:02x}" * 32)


def deployment(tmp_path: Path) -> SettlementDeployment:
    return SettlementDeployment(
        rpc_url="http://127.0.0.1:1234",
        token="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        settlement="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        operator=account(0),
        payers=tuple(account(i) for i in range(1, 5)),
        payees={name: account(5 + i) for i, name in enumerate(("prov-a", "prov-b", "prov-c"))},
        operator_key_file=tmp_path / "operator.key",
        withdrawal_delay=600,
    )


def test_hub_args_are_the_three_chain_options(tmp_path: Path) -> None:
    assert deployment(tmp_path).hub_args() == [
        "--chain-rpc",
        "http://127.0.0.1:1234",
        "--settlement-address",
        "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        "--operator-key-file",
        str(tmp_path / "operator.key"),
    ]


def test_the_handle_is_saved_and_loaded_unchanged(tmp_path: Path) -> None:
    assert SettlementDeployment.load(tmp_path) is None
    saved = deployment(tmp_path)
    saved.save(tmp_path)
    assert SettlementDeployment.load(tmp_path) == saved
    assert stat.S_IMODE((tmp_path / "settlement.json").stat().st_mode) == 0o600


def test_the_key_file_is_private_and_replaced(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k" / "operator.key", "0x" + "ab" * 32)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_key_file(path, "0x" + "cd" * 32)
    assert path.read_text() == "0x" + "cd" * 32 + "\n"


def test_payees_are_the_example_providers_payout_addresses() -> None:
    for i, name in enumerate(("prov-a", "prov-b", "prov-c")):
        config = yaml.safe_load((REPO / "examples" / "providers" / f"{name}.yaml").read_text())
        assert config["payoutAddress"] == ANVIL_ADDRESSES[5 + i], name
