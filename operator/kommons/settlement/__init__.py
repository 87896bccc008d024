"""Settlement: everything between metered usage and the chain.

The epoch's Merkle tree (:mod:`.merkle`) and the chain adapter (:mod:`.chain`); epochs,
charges, sealing, the commit decision and claims (:mod:`.epochs`, :mod:`.charges`,
:mod:`.sealing`, :mod:`.submission`, :mod:`.claims`). This package is the only place in
Kommons that imports web3 or ``eth_*`` (an import-linter contract in ``pyproject.toml``
checks it).
"""
