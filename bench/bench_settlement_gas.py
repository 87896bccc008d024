"""Gas of the Settlement contract against a straightforward one, on a real anvil.

Deploys ``Settlement`` (contracts/Settlement.sol) and ``NaiveSettlement``
(contracts/bench/NaiveSettlement.sol: one struct per epoch, one claimed flag per leaf hash, a
token transfer per claim) side by side and prints the gas used (receipts' ``gasUsed``) of:

* a deposit (a payer's first, and a later one);
* one commit of an epoch whose tree has 1, 100, 2,048, 4,096 and 10,000 leaves (a commit sends
  only the root and the total, so its gas must not depend on the number of leaves);
* one claim at proof depths 0 to 14 (trees of 1, 100, 2,048, 4,096, 10,000 leaves): a
  provider's first claim ever, a later claim of the same (payer, provider) pair, a claim for a
  new payer (also at depths 11, 12 and 14);
* ``withdrawEarnings`` (one token transfer, however many claims it collects), then a claim of
  the next epoch for the provider that withdrew (its earnings slot is rewritten, not created).

Gas is deterministic: the figures do not depend on the machine's load. ``--quick`` skips the
2,048-, 4,096- and 10,000-leaf trees. Nothing is asserted. Run::

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
    parser.add_argument("--quick", action="store_true", help="skip the trees above 100 leaves")
    args = parser.parse_args(argv)
    sizes = [1, 100] if args.quick else [1, 100, 2_048, 4_096, 10_000]
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
    op, payers, prov, prov2 = keys[0], [*keys[1:5], keys[7]], keys[5], keys[6]
    token = deploy_token(w3, op)
    ours = SettlementChain(
        w3,
        deploy_settlement(
            w3, op, token=token, admin=op.address, operator=op.address, withdrawal_delay=600
        ),
    )
    naive = Naive(w3, deploy_naive(w3, op, token))
    bench = _Bench(ours, naive, op, rng)
    rows = bench.deposits(payers, token)
    # the first commit ever also writes lastEpochId from zero: measure it apart
    rows.append(bench.commit("commit (the contract's first epoch)", tree_with(1, 1, [], rng)))
    payer, payer2, *new_payers = (p.address for p in payers)
    for size in sizes:
        real = [
            (payer, prov.address, 5 * UNIT),
            (payer2, prov.address, 3 * UNIT),
            (payer, prov2.address, 2 * UNIT),
        ][: max(1, min(size, 3))]
        if size > 100:  # a new pair at a deeper proof (3 at most: payers 3, 4 and 5)
            real.append((new_payers.pop(0), prov.address, 4 * UNIT))
        rows.extend(bench.epoch(size, real))
    rows.append(("withdrawEarnings (all of prov-a's claims)", bench.withdraw(prov), None))
    # the epoch after the withdrawal: its claim rewrites prov-a's earnings slot (never zeroed)
    rows.extend(bench.epoch(sizes[-1], [(payer, prov.address, 6 * UNIT)]))
    return rows


class _Bench:
    """Commits and claims the same leaves on both contracts and labels each claim."""

    def __init__(self, ours: SettlementChain, naive: Naive, op: PrivateKey, rng: random.Random):
        self.ours, self.naive, self.op, self.rng = ours, naive, op, rng
        self.epoch_id = 1
        self.seen_providers: set[str] = set()
        self.seen_pairs: set[tuple[str, str]] = set()
        self.withdrawn: set[str] = set()

    def deposits(
        self, payers: Sequence[PrivateKey], token: str
    ) -> list[tuple[str, int | None, int | None]]:
        """Fund and deposit for every payer; rows for a payer's first and later deposit."""
        w3, naive = self.ours.w3, self.naive
        token_c = w3.eth.contract(address=token, abi=artifact("TestToken").abi)  # type: ignore[call-overload]
        gas: dict[str, list[int]] = {"ours": [], "naive": []}
        for p in payers:
            mint(w3, self.op, token, p.address, 10**9 * UNIT)
            naive.gas(p, token_c.functions.approve(naive.contract.address, 2**255))
            for _ in range(2):
                gas["ours"].append(self.ours.with_key(p).deposit(10**6 * UNIT).gas_used)
                gas["naive"].append(naive.gas(p, naive.contract.functions.deposit(10**6 * UNIT)))
        return [
            ("deposit (payer's first)", gas["ours"][0], gas["naive"][0]),
            ("deposit (later)", gas["ours"][1], gas["naive"][1]),
        ]

    def commit(self, label: str, tree: MerkleTree) -> tuple[str, int | None, int | None]:
        """Commit ``tree`` as epoch ``self.epoch_id`` on both contracts."""
        total = sum(leaf.amount for leaf in tree.leaves)
        ours = self.ours.with_key(self.op).commit(self.epoch_id, tree.root, total).gas_used
        fn = self.naive.contract.functions.commitEpoch(
            self.epoch_id, bytes.fromhex(tree.root[2:]), total
        )
        return (label, ours, self.naive.gas(self.op, fn))

    def epoch(
        self, size: int, real: Sequence[tuple[str, str, int]]
    ) -> list[tuple[str, int | None, int | None]]:
        """Commit the next epoch (``size`` leaves, ``real`` among them) and claim ``real``."""
        self.epoch_id += 1
        leaves = [LeafValue(self.epoch_id, *leaf) for leaf in real]
        tree = tree_with(self.epoch_id, size, leaves, self.rng)
        label = f"commit, {size:,} leaves" if size > 1 else "commit, 1 leaf"
        rows = [self.commit(label, tree)]
        for leaf in leaves:
            proof = tree.proof(leaf)
            args = (self.epoch_id, leaf.payer, leaf.provider, leaf.amount)
            ours = self.ours.with_key(self.op).claim(*args, proof).gas_used
            naive = self.naive.gas(
                self.op,
                self.naive.contract.functions.claim(*args, [bytes.fromhex(p[2:]) for p in proof]),
            )
            rows.append((f"claim, proof depth {len(proof)}: {self.kind(leaf)}", ours, naive))
        return rows

    def kind(self, leaf: LeafValue) -> str:
        """What storage the claim of ``leaf`` finds (and remember it for the next ones)."""
        pair = (leaf.payer, leaf.provider)
        if leaf.provider not in self.seen_providers:
            kind = "a new provider's first claim"
        elif pair not in self.seen_pairs:
            kind = "a known provider, new payer"
        elif leaf.provider in self.withdrawn:
            kind = "a pair claimed before, after a withdrawEarnings"
        else:
            kind = "a pair claimed in an earlier epoch"
        self.seen_providers.add(leaf.provider)
        self.seen_pairs.add(pair)
        self.withdrawn.discard(leaf.provider)
        return kind

    def withdraw(self, provider: PrivateKey) -> int:
        """``withdrawEarnings`` by ``provider`` (ours only: the naive contract pays per claim)."""
        self.withdrawn.add(provider.address)
        return self.ours.with_key(provider).withdraw_earnings().gas_used


if __name__ == "__main__":
    main()
