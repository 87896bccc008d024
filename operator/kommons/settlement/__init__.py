"""Settlement: epochs, the Merkle tree, the chain adapter (the only package importing web3)."""
