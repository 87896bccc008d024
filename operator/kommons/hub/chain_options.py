"""The hub's chain options: where the Settlement contract is and which key commits epochs.

``kommons hub --chain-rpc URL --settlement-address 0x… --operator-key-file PATH
[--chain-confirmations N]`` turns settlement and the payment guard on. Without ``--chain-rpc``
the hub runs with both off (it says so once at start) and still meters usage.

The key itself is never stored here: :meth:`ChainOptions.load_key` reads the file when the
settlement loop needs it, into a :class:`~kommons.settlement.chain.PrivateKey` that never
shows itself in logs.
"""

from __future__ import annotations

import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from kommons.settlement.chain import PrivateKey, SettlementChain

log = logging.getLogger("kommons.hub")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_CONFIRMATIONS = 1
"""Blocks a commit needs (its own included) before its epoch is Confirmed; 1 suits anvil-like
chains that never reorganise on their own. Use more on a public chain (an L2: e.g. 5–10)."""


@dataclass(frozen=True)
class ChainOptions:
    """The chain the hub settles on."""

    rpc_url: str
    """JSON-RPC endpoint (``http(s)://`` or ``ws(s)://``)."""
    settlement_address: str
    """The Settlement contract (0x + 40 hex)."""
    operator_key_file: Path | None
    """File holding the operator's 0x private key (a mounted Secret); None: read only (the
    payment guard works, epochs are not committed)."""
    confirmations: int = DEFAULT_CONFIRMATIONS
    """Blocks (the commit's own included) before a commit counts as confirmed."""

    @classmethod
    def from_cli(
        cls,
        *,
        chain_rpc: str | None,
        settlement_address: str | None,
        operator_key_file: Path | None,
        confirmations: int = DEFAULT_CONFIRMATIONS,
    ) -> ChainOptions | None:
        """Validate the hub's chain options; None when ``--chain-rpc`` is not given.

        Raises:
            ValueError: An option is malformed or missing; the message names it.
        """
        if chain_rpc is None:
            given = [
                name
                for name, value in (
                    ("--settlement-address", settlement_address),
                    ("--operator-key-file", operator_key_file),
                )
                if value is not None
            ]
            if given:
                raise ValueError(f"{' and '.join(given)} need --chain-rpc (the chain's RPC URL)")
            return None
        if not re.match(r"^(https?|wss?)://[^\s/]+", chain_rpc):
            raise ValueError(
                f"--chain-rpc {chain_rpc!r} is not an http(s):// or ws(s):// URL of a JSON-RPC node"
            )
        if settlement_address is None:
            raise ValueError("--chain-rpc needs --settlement-address (the Settlement contract)")
        if not _ADDRESS.match(settlement_address):
            raise ValueError(
                f"--settlement-address {settlement_address!r} is not a 0x-prefixed 20-byte address"
            )
        if confirmations < 1:
            raise ValueError(f"--chain-confirmations {confirmations} must be at least 1")
        options = cls(
            rpc_url=chain_rpc,
            settlement_address=settlement_address,
            operator_key_file=operator_key_file,
            confirmations=confirmations,
        )
        if operator_key_file is not None:
            try:
                options.load_key()
            except ValueError as exc:
                raise ValueError(f"--operator-key-file: {exc}") from None
        return options

    def load_key(self) -> PrivateKey | None:
        """Read the operator key (None when no key file was given).

        Raises:
            ValueError: The file cannot be read or holds no key (never quoting it).
        """
        if self.operator_key_file is None:
            return None
        return PrivateKey.from_file(self.operator_key_file)

    def connect(self) -> SettlementChain:
        """The Settlement adapter, signing with the operator key (if there is one)."""
        return SettlementChain.connect(self.rpc_url, self.settlement_address, self.load_key())


def log_chain_mode(options: ChainOptions | None) -> None:
    """Say once, at start, whether settlement is on and against what (never the key)."""
    if options is None:
        log.info(
            "settlement disabled: no --chain-rpc (metering still runs; no epochs are"
            " committed and the payment guard is off)"
        )
        return
    key = options.operator_key_file
    if key is None:
        log.warning(
            "settlement read-only: no --operator-key-file, epochs will not be committed"
            " (chain %s, contract %s)",
            options.rpc_url,
            options.settlement_address,
        )
        return
    mode = key.stat().st_mode if key.exists() else 0
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("operator key file %s is readable by others: chmod 0600 it", key)
    log.info(
        "settlement enabled: chain %s, contract %s, operator key from %s, %d confirmation(s)",
        options.rpc_url,
        options.settlement_address,
        key,
        options.confirmations,
    )
