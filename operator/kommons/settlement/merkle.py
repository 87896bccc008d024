"""The epoch's Merkle tree, in OpenZeppelin's StandardMerkleTree format (pure, deterministic).

A leaf is ``(uint64 epochId, address payer, address provider, uint256 amount)``, hashed as
``keccak256(bytes.concat(keccak256(abi.encode(epochId, payer, provider, amount))))``; inner
nodes hash their two children in sorted order. The leaves are sorted by hash before the tree is
built, exactly as ``StandardMerkleTree.of(values, LEAF_ENCODING)`` of the npm package
``@openzeppelin/merkle-tree`` does, so the same set of leaves gives the same root and proofs in
any order, here and in the standard tool (``tests/unit/test_settlement_merkle.py`` checks it).
:meth:`MerkleTree.dump` writes the tool's ``standard-v1`` JSON, which
``StandardMerkleTree.load`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

LEAF_ENCODING = ("uint64", "address", "address", "uint256")
"""The leaf's Solidity types: ``(epochId, payer, provider, amount)``."""
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH = re.compile(r"^0x[0-9a-f]{64}$")
_UINT64_MAX = 2**64 - 1
_UINT256_MAX = 2**256 - 1


@dataclass(frozen=True)
class LeafValue:
    """One leaf: what ``payer`` owes ``provider`` for epoch ``epoch_id``, in token base units."""

    epoch_id: int
    payer: str
    """0x address (any case; hashed as 20 bytes)."""
    provider: str
    """0x address of the provider's payout account."""
    amount: int
    """Token base units (an integer ≥ 0)."""

    def __post_init__(self) -> None:
        if not 0 <= self.epoch_id <= _UINT64_MAX:
            raise ValueError(f"epoch_id {self.epoch_id} is not a uint64")
        for name in ("payer", "provider"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _ADDRESS.match(value):
                raise ValueError(f"{name} {value!r} is not a 0x-prefixed 20-byte hex address")
        if not 0 <= self.amount <= _UINT256_MAX:
            raise ValueError(f"amount {self.amount} is not a uint256 (base units, ≥ 0)")

    def key(self) -> tuple[int, str, str]:
        """``(epoch_id, payer, provider)`` with lower-case addresses: one leaf per key."""
        return (self.epoch_id, self.payer.lower(), self.provider.lower())

    def as_values(self) -> list[str]:
        """The leaf as the npm tool's value array: decimal strings and checksummed addresses."""
        return [
            str(self.epoch_id),
            to_checksum_address(self.payer),
            to_checksum_address(self.provider),
            str(self.amount),
        ]


def leaf_hash(leaf: LeafValue) -> str:
    """The leaf's node hash: ``keccak256(keccak256(abi.encode(...)))`` as 0x + 64 hex."""
    encoded = encode(
        list(LEAF_ENCODING), [leaf.epoch_id, leaf.payer.lower(), leaf.provider.lower(), leaf.amount]
    )
    return "0x" + keccak(keccak(encoded)).hex()


def _hash_pair(a: str, b: str) -> str:
    low, high = sorted((bytes.fromhex(a[2:]), bytes.fromhex(b[2:])))
    return "0x" + keccak(low + high).hex()


@dataclass(frozen=True)
class MerkleTree:
    """A built tree: its root, and a proof for each of its leaves."""

    root: str
    """0x + 64 lower-case hex."""
    leaves: tuple[LeafValue, ...]
    """The leaves in tree order (sorted by leaf hash)."""
    nodes: tuple[str, ...] = field(repr=False)
    """The tree as a flat array (root first), the npm package's layout."""
    _index: dict[str, int] = field(repr=False, compare=False)

    def proof(self, leaf: LeafValue) -> list[str]:
        """The sibling hashes from ``leaf`` up to the root (empty for a one-leaf tree).

        Raises:
            KeyError: ``leaf`` is not in the tree (its amount or addresses differ).
        """
        h = leaf_hash(leaf)
        if h not in self._index:
            raise KeyError(
                f"leaf (epoch {leaf.epoch_id}, payer {leaf.payer}, provider {leaf.provider}, "
                f"amount {leaf.amount}) is not in the tree with root {self.root}"
            )
        index = self._index[h]
        proof = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            proof.append(self.nodes[sibling])
            index = (index - 1) // 2
        return proof

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` JSON of ``@openzeppelin/merkle-tree`` (``StandardMerkleTree.load``).

        Values are strings (decimal numbers, checksummed addresses), as the npm tool writes them.
        """
        return {
            "format": "standard-v1",
            "leafEncoding": list(LEAF_ENCODING),
            "tree": list(self.nodes),
            "values": [
                {"value": leaf.as_values(), "treeIndex": self._index[leaf_hash(leaf)]}
                for leaf in self.leaves
            ],
        }


def build_tree(leaves: Sequence[LeafValue]) -> MerkleTree:
    """Build the tree of a set of leaves; the result does not depend on their order.

    Raises:
        ValueError: No leaves, or two leaves for the same (epoch, payer, provider) — the
            contract pays each such triple once, so the caller must sum them first.
    """
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    seen: dict[tuple[int, str, str], LeafValue] = {}
    for leaf in leaves:
        if leaf.key() in seen:
            raise ValueError(
                f"two leaves for epoch {leaf.epoch_id}, payer {leaf.payer}, provider "
                f"{leaf.provider}: sum them into one (the contract pays each triple once)"
            )
        seen[leaf.key()] = leaf
    hashed = sorted((leaf_hash(leaf), leaf) for leaf in leaves)
    size = 2 * len(hashed) - 1
    nodes: list[str] = [""] * size
    for i, (h, _) in enumerate(hashed):
        nodes[size - 1 - i] = h
    for i in range(size - 1 - len(hashed), -1, -1):
        nodes[i] = _hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
    index = {h: size - 1 - i for i, (h, _) in enumerate(hashed)}
    return MerkleTree(
        root=nodes[0],
        leaves=tuple(leaf for _, leaf in hashed),
        nodes=tuple(nodes),
        _index=index,
    )


def verify(root: str, leaf: LeafValue, proof: Sequence[str]) -> bool:
    """Whether ``proof`` leads from ``leaf`` to ``root`` (what ``MerkleProof.verify`` checks).

    A malformed root or proof element (not 0x + 64 hex) is simply not a valid proof.
    """
    if not _HASH.match(root.lower()) or not all(_HASH.match(p.lower()) for p in proof):
        return False
    node = leaf_hash(leaf)
    for sibling in proof:
        node = _hash_pair(node, sibling.lower())
    return node == root.lower()
