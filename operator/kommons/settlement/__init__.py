"""Settlement: the epoch's Merkle tree (:mod:`.merkle`) and the chain adapter (:mod:`.chain`).

This package is the only place in Kommons that imports web3 or ``eth_*`` (an import-linter
contract in ``pyproject.toml`` checks it).
"""
