"""Gas of the Settlement contract against a straightforward one, on a real anvil.

Deploys ``Settlement`` (contracts/Settlement.sol) and ``NaiveSettlement``
(contracts/bench/NaiveSettlement.sol: one struct per epoch, one claimed flag per leaf hash, a
token transfer per claim) side by side and prints the gas used (receipts' ``gasUsed``) of:

* a deposit (a payer's first, and a later one);
* one commit of an epoch whose tree has 1, 100 and 10,000 leaves (a commit sends only the
  root and the total, so its gas must not depend on the number of leaves);
* one claim at proof depths 0, 7 and 14 (trees of 1, 100, 10,000 leaves): a provider's first
  claim ever, a later claim of the same (payer, provider) pair, a claim for a new payer;
* ``withdrawEarnings`` (one token transfer, however many claims it collects).

Gas is deterministic: the figures do not depend on the machine's load. ``--quick`` skips the
10,000-leaf tree. Nothing is asserted. Run::

    .venv/bin/python bench/bench_settlement_gas.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from web3 import Web3

from kommons.settlement.chain import (
    PrivateKey,
    SettlementChain,
    artifact,
    deploy_settlement,
    deploy_token,
    mint,
    web3_for,
)
from kommons.settlement.merkle import LeafValue, MerkleTree, build_tree
from kommons_testbed import anvil
from kommons_testbed.processes import stop

UNIT = 10**6
NAIVE_ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "NaiveSettlement.json"


class Naive:
    """Just enough of a client for NaiveSettlement (bench only)."""

    def __init__(self, w3: Web3, address: str) -> None:
        data = json.loads(NAIVE_ARTIFACT.read_text())
        self.w3 = w3
        self.contract = w3.eth.contract(address=address, abi=data["abi"])  # type: ignore[call-overload]

    def gas(self, key: PrivateKey, fn: Any) -> int:
        """Send ``fn`` signed by ``key``; the gas it used."""
        tx = fn.build_transaction(
            {
                "from": key.address,
                "nonce": self.w3.eth.get_transaction_count(key.address, "pending"),
                "chainId": self.w3.eth.chain_id,
            }
        )
        raw, tx_hash = key.sign(tx)
        self.w3.eth.send_raw_transaction(raw)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 1, f"naive {fn.fn_name} reverted"
        return int(receipt["gasUsed"])


def deploy_naive(w3: Web3, key: PrivateKey, token: str) -> str:
    """Deploy NaiveSettlement (admin and operator: ``key``)."""
    data = json.loads(NAIVE_ARTIFACT.read_text())
    factory = w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    tx = factory.constructor(token, key.address, key.address).build_transaction(
        {
            "from": key.address,
            "nonce": w3.eth.get_transaction_count(key.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
    )
    raw, tx_hash = key.sign(tx)
    w3.eth.send_raw_transaction(raw)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return str(receipt["contractAddress"])


def random_address(rng: random.Random) -> str:
    """A random checksummed address (a filler leaf's payer or provider)."""
    return Web3.to_checksum_address("0x" + rng.randbytes(20).hex())


def tree_with(epoch: int, size: int, real: Sequence[LeafValue], rng: random.Random) -> MerkleTree:
    """A tree of ``size`` leaves: the ``real`` ones (to be claimed) plus random fillers."""
    leaves = list(real)
    while len(leaves) < size:
        leaves.append(
            LeafValue(epoch, random_address(rng), random_address(rng), rng.randrange(1, 10**9))
        )
    return build_tree(leaves)


def row(name: str, ours: int | None, naive: int | None) -> str:
    """One Markdown table row with the ratio ours / naive."""
    o = f"{ours:,}" if ours is not None else "—"
    n = f"{naive:,}" if naive is not None else "—"
    ratio = f"{ours / naive:.2f}" if ours and naive else ""
    return f"| {name} | {o} | {n} | {ratio} |"


def main(argv: Sequence[str] | None = None) -> None:
    """Start anvil, measure, print the table (Markdown, for docs/settlement.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-leaf tree")
    args = parser.parse_args(argv)
    sizes = [1, 100] if args.quick else [1, 100, 10_000]
    rng = random.Random(9)
    with tempfile.TemporaryDirectory(prefix="kommons-gas-") as tmp:
        record, handle = anvil.start_anvil(Path(tmp))
        try:
            rows = run(
                handle.rpc_url, [PrivateKey(a.private_key) for a in handle.accounts], sizes, rng
            )
        finally:
            stop(record)
    print("| operation | Settlement gas | naive gas | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, naive in rows:
        print(row(name, ours, naive))


def run(
    rpc_url: str, keys: Sequence[PrivateKey], sizes: Sequence[int], rng: random.Random
) -> list[tuple[str, int | None, int | None]]:
    """Deploy both contracts on ``rpc_url`` and measure; rows of (operation, ours, naive)."""
    w3 = web3_for(rpc_url, timeout=120)
    op, payer, payer2, prov, prov2 = keys[0], keys[1], keys[2], keys[5], keys[6]
    token = deploy_token(w3, op)
    ours = SettlementChain(
        w3,
        deploy_settlement(
            w3, op, token=token, admin=op.address, operator=op.address, withdrawal_delay=600
        ),
    )
    naive = Naive(w3, deploy_naive(w3, op, token))
    rows: list[tuple[str, int | None, int | None]] = []
    for p in (payer, payer2):
        mint(w3, op, token, p.address, 10**9 * UNIT)
    # deposits: first and later, both contracts
    o_first = ours.with_key(payer).deposit(10**6 * UNIT).gas_used
    o_later = ours.with_key(payer).deposit(10**6 * UNIT).gas_used
    ours.with_key(payer2).deposit(10**6 * UNIT)
    token_c = w3.eth.contract(address=token, abi=artifact("TestToken").abi)
    naive.gas(payer, token_c.functions.approve(naive.contract.address, 2**255))
    naive.gas(payer2, token_c.functions.approve(naive.contract.address, 2**255))
    n_first = naive.gas(payer, naive.contract.functions.deposit(10**6 * UNIT))
    n_later = naive.gas(payer, naive.contract.functions.deposit(10**6 * UNIT))
    naive.gas(payer2, naive.contract.functions.deposit(10**6 * UNIT))
    rows.append(("deposit (payer's first)", o_first, n_first))
    rows.append(("deposit (later)", o_later, n_later))
    # the first commit ever also writes lastEpochId from zero: measure it apart
    epoch = 1
    first_tree = tree_with(epoch, 1, [], rng)
    o_c0 = ours.with_key(op).commit(epoch, first_tree.root, 1).gas_used
    n_c0 = naive.gas(
        op, naive.contract.functions.commitEpoch(epoch, bytes.fromhex(first_tree.root[2:]), 1)
    )
    rows.append(("commit (the contract's first epoch)", o_c0, n_c0))
    seen_providers: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    for size in sizes:
        epoch += 1
        real = [
            LeafValue(epoch, payer.address, prov.address, 5 * UNIT),
            LeafValue(epoch, payer2.address, prov.address, 3 * UNIT),
            LeafValue(epoch, payer.address, prov2.address, 2 * UNIT),
        ][: max(1, min(size, 3))]
        tree = tree_with(epoch, size, real, rng)
        total = sum(leaf.amount for leaf in tree.leaves)
        o_commit = ours.with_key(op).commit(epoch, tree.root, total).gas_used
        n_commit = naive.gas(
            op, naive.contract.functions.commitEpoch(epoch, bytes.fromhex(tree.root[2:]), total)
        )
        label = f"commit, {size:,} leaves" if size > 1 else "commit, 1 leaf"
        rows.append((label, o_commit, n_commit))
        for leaf in real:
            proof = tree.proof(leaf)
            o_claim = (
                ours.with_key(op)
                .claim(epoch, leaf.payer, leaf.provider, leaf.amount, proof)
                .gas_used
            )
            n_claim = naive.gas(
                op,
                naive.contract.functions.claim(
                    epoch,
                    leaf.payer,
                    leaf.provider,
                    leaf.amount,
                    [bytes.fromhex(p[2:]) for p in proof],
                ),
            )
            pair = (leaf.payer, leaf.provider)
            if leaf.provider not in seen_providers:
                kind = "a new provider's first claim"
            elif pair not in seen_pairs:
                kind = "a known provider, new payer"
            else:
                kind = "a pair claimed in an earlier epoch"
            seen_providers.add(leaf.provider)
            seen_pairs.add(pair)
            rows.append((f"claim, proof depth {len(proof)}: {kind}", o_claim, n_claim))
    o_w = ours.with_key(prov).withdraw_earnings().gas_used
    rows.append(("withdrawEarnings (all of prov-a's claims)", o_w, None))
    return rows


if __name__ == "__main__":
    main()
