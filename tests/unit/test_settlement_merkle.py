"""kommons.settlement.merkle against the standard tool, @openzeppelin/merkle-tree (npm).

Behaviour matrix:
- for leaf sets of 1, 2, 3, 5, 8 and 13 leaves (odd counts included), the root and every proof
  equal those of ``StandardMerkleTree.of(values, ["uint64","address","address","uint256"])``,
  computed by ``contracts/merkle.mjs`` with the pinned npm package;
- the npm tool's static ``verify`` accepts our proofs and refuses a leaf with a changed amount;
- ``dump()`` is the tool's own ``standard-v1`` dump (same tree, values, tree indices);
- pure properties: the root does not depend on the leaves' order; every proof verifies; a
  proof does not verify another amount, payer or epoch; a one-leaf tree's root is the leaf hash
  with an empty proof;
- refused input: no leaves, two leaves for one (epoch, payer, provider), malformed values.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kommons.settlement.merkle import LeafValue, build_tree, leaf_hash, verify

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "contracts" / "merkle.mjs"


def npm_tool(mode: str, payload: Any) -> dict[str, Any]:
    """Run contracts/merkle.mjs (the pinned @openzeppelin/merkle-tree) on ``payload``."""
    if not (REPO / "contracts" / "node_modules" / "@openzeppelin" / "merkle-tree").exists():
        pytest.fail("@openzeppelin/merkle-tree is not installed: run `make deps`")
    done = subprocess.run(
        ["node", str(SCRIPT), mode],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def address(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))


def leaf_set(size: int, seed: int) -> list[LeafValue]:
    rng = random.Random(seed)
    payers = [address(rng) for _ in range(max(1, size // 3))]
    leaves: dict[tuple[str, str], LeafValue] = {}
    while len(leaves) < size:
        payer, provider = rng.choice(payers), address(rng)
        amount = rng.choice([0, 1, 10**6, rng.randrange(2**256)])
        leaves[(payer, provider)] = LeafValue(seed, payer, provider, amount)
    return list(leaves.values())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_root_and_proofs_match_the_npm_standard_merkle_tree(size: int) -> None:
    leaves = leaf_set(size, seed=size + 40)
    ours = build_tree(leaves)
    theirs = npm_tool("build", [leaf.as_values() for leaf in leaves])
    assert ours.root == theirs["root"]
    assert [ours.proof(leaf) for leaf in leaves] == theirs["proofs"]
    assert ours.dump() == {
        **theirs["dump"],
        "values": sorted(theirs["dump"]["values"], key=lambda v: -v["treeIndex"]),
    }


def test_the_npm_tool_verifies_our_proofs_and_refuses_a_changed_amount() -> None:
    leaves = leaf_set(5, seed=7)
    tree = build_tree(leaves)
    leaf = leaves[2]
    good = {"root": tree.root, "value": leaf.as_values(), "proof": tree.proof(leaf)}
    assert npm_tool("verify", good) == {"valid": True}
    changed = LeafValue(leaf.epoch_id, leaf.payer, leaf.provider, leaf.amount + 1)
    bad = {**good, "value": changed.as_values()}
    assert npm_tool("verify", bad) == {"valid": False}


def test_one_leaf_tree_is_the_leaf_hash_with_an_empty_proof() -> None:
    leaf = leaf_set(1, seed=3)[0]
    tree = build_tree([leaf])
    assert tree.root == leaf_hash(leaf)
    assert tree.proof(leaf) == []
    assert verify(tree.root, leaf, [])


addresses = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40).map(lambda s: "0x" + s)
leaves_strategy = st.lists(
    st.tuples(addresses, addresses, st.integers(min_value=0, max_value=2**256 - 1)),
    min_size=1,
    max_size=20,
    unique_by=lambda t: (t[0], t[1]),
)


@settings(max_examples=60, deadline=None)
@given(raw=leaves_strategy, epoch=st.integers(min_value=1, max_value=2**64 - 1), data=st.data())
def test_every_proof_verifies_and_order_does_not_matter(
    raw: list[tuple[str, str, int]], epoch: int, data: st.DataObject
) -> None:
    leaves = [LeafValue(epoch, payer, provider, amount) for payer, provider, amount in raw]
    tree = build_tree(leaves)
    shuffled = data.draw(st.permutations(leaves))
    assert build_tree(shuffled).root == tree.root
    for leaf in leaves:
        proof = tree.proof(leaf)
        assert verify(tree.root, leaf, proof)
        other_amount = LeafValue(epoch, leaf.payer, leaf.provider, (leaf.amount + 1) % 2**256)
        assert not verify(tree.root, other_amount, proof)
        if epoch > 1:
            assert not verify(
                tree.root, LeafValue(epoch - 1, leaf.payer, leaf.provider, leaf.amount), proof
            )


def test_addresses_are_case_insensitive_for_hashing() -> None:
    payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    provider = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
    a = LeafValue(1, payer, provider, 5)
    b = LeafValue(1, payer.lower(), provider.lower(), 5)
    assert leaf_hash(a) == leaf_hash(b)
    assert build_tree([a]).proof(b) == []


def test_refused_input() -> None:
    leaf = leaf_set(1, seed=9)[0]
    with pytest.raises(ValueError, match="at least one leaf"):
        build_tree([])
    twin = LeafValue(leaf.epoch_id, leaf.payer.upper().replace("0X", "0x"), leaf.provider, 1)
    with pytest.raises(ValueError, match="sum them into one"):
        build_tree([leaf, twin])
    with pytest.raises(ValueError, match="epoch_id"):
        LeafValue(-1, leaf.payer, leaf.provider, 1)
    with pytest.raises(ValueError, match="payer"):
        LeafValue(1, "0x1234", leaf.provider, 1)
    with pytest.raises(ValueError, match="amount"):
        LeafValue(1, leaf.payer, leaf.provider, 2**256)
    with pytest.raises(KeyError, match="not in the tree"):
        build_tree([leaf]).proof(LeafValue(leaf.epoch_id, leaf.payer, leaf.provider, 12345))
    assert not verify("0x1234", leaf, [])
