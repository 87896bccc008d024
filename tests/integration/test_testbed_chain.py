"""Evidence that the bed's chain node is a real anvil: chain id, a mined transfer, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3

from kommons_testbed.anvil import (
    ANVIL_CHAIN_ID,
    block_number,
    mine,
    revert,
    rpc,
    snapshot,
    start_anvil,
)
from kommons_testbed.handles import ChainAccount, ChainHandle
from kommons_testbed.processes import is_alive, stop

pytestmark = [
    pytest.mark.bed,
    # processes.spawn lets go of its Popen while the server runs on purpose (the process outlives
    # its starter and is stopped by pid); CPython's Popen.__del__ reports that as a ResourceWarning.
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]


def address(account: ChainAccount) -> ChecksumAddress:
    """The account's address typed for web3 (it is already EIP-55; this only checks it)."""
    checksummed = Web3.to_checksum_address(account.address)
    assert checksummed == account.address
    return checksummed


@pytest.fixture(scope="module")
def anvil_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("anvil")


@pytest.fixture(scope="module")
def anvil_chain(anvil_dir: Path) -> Iterator[ChainHandle]:
    record, handle = start_anvil(anvil_dir)
    try:
        yield handle
    finally:
        stop(record)
        assert not is_alive(record.pid)


@pytest.fixture(scope="module")
def w3(anvil_chain: ChainHandle) -> Web3:
    return Web3(HTTPProvider(anvil_chain.rpc_url, request_kwargs={"timeout": 10}))


def test_answers_chain_id(anvil_chain: ChainHandle, w3: Web3) -> None:
    assert anvil_chain.chain_id == ANVIL_CHAIN_ID == 31337
    assert int(rpc(anvil_chain, "eth_chainId"), 16) == 31337
    assert w3.eth.chain_id == 31337
    assert anvil_chain.rpc_url.startswith("http://127.0.0.1:")


def test_handle_accounts_are_funded_and_keys_match(anvil_chain: ChainHandle, w3: Web3) -> None:
    assert len(anvil_chain.accounts) == 10
    for account in anvil_chain.accounts:
        assert Web3.is_checksum_address(account.address)
        assert Account.from_key(account.private_key).address == account.address
        assert w3.eth.get_balance(address(account)) > 0


def test_log_is_in_state_dir(anvil_chain: ChainHandle, anvil_dir: Path) -> None:
    log = (anvil_dir / "logs" / "anvil.log").read_text()
    port = anvil_chain.rpc_url.rsplit(":", 1)[1]
    assert f"Listening on 127.0.0.1:{port}" in log


def test_signed_transfer_is_mined_and_balances_change_exactly(
    anvil_chain: ChainHandle, w3: Web3
) -> None:
    sender, receiver = anvil_chain.accounts[1], anvil_chain.accounts[2]
    value = Web3.to_wei(1.25, "ether")
    before_sender = w3.eth.get_balance(address(sender))
    before_receiver = w3.eth.get_balance(address(receiver))
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = {
        "type": 2,
        "chainId": anvil_chain.chain_id,
        "nonce": w3.eth.get_transaction_count(address(sender)),
        "to": address(receiver),
        "value": value,
        "gas": 21_000,
        "maxPriorityFeePerGas": Web3.to_wei(1, "gwei"),
        "maxFeePerGas": 2 * base_fee + Web3.to_wei(1, "gwei"),
    }
    signed = Account.sign_transaction(tx, sender.private_key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)

    assert receipt["status"] == 1
    assert receipt["from"] == sender.address
    assert receipt["to"] == receiver.address
    assert receipt["blockNumber"] >= 1
    assert tx_hash.to_0x_hex() == receipt["transactionHash"].to_0x_hex()
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert receipt["gasUsed"] == 21_000
    assert gas_cost > 0
    assert w3.eth.get_balance(address(sender)) == before_sender - value - gas_cost
    assert w3.eth.get_balance(address(receiver)) == before_receiver + value


def test_snapshot_and_revert_undo_state(anvil_chain: ChainHandle, w3: Web3) -> None:
    account = address(anvil_chain.accounts[3])
    original = w3.eth.get_balance(account)
    start_block = block_number(anvil_chain)
    snap = snapshot(anvil_chain)

    rpc(anvil_chain, "anvil_setBalance", [account, hex(12345)])
    mine(anvil_chain, 3)
    assert w3.eth.get_balance(account) == 12345
    assert block_number(anvil_chain) == start_block + 3

    assert revert(anvil_chain, snap) is True
    assert w3.eth.get_balance(account) == original
    assert block_number(anvil_chain) == start_block
    # A snapshot id is used up by one revert.
    assert revert(anvil_chain, snap) is False
