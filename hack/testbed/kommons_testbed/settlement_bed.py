"""The bed's settlement deployment: a TestToken and a Settlement on the bed's anvil.

Accounts (anvil's well-known dev accounts, in its order):

- account 0: admin and operator (commits epochs); its key goes to a 0600 file in the bed dir,
  which the hub reads with ``--operator-key-file``;
- accounts 1–4: tenants (payers): each gets minted tokens, an unlimited allowance for the
  Settlement and an initial escrow deposit;
- accounts 5–7: the payout addresses of prov-a, prov-b, prov-c (``examples/providers``).

:func:`deploy_settlement_bed` deploys and funds; :class:`SettlementDeployment` is the handle
(``Stack.settlement``) and is saved as ``<bed>/settlement.json`` so a later process finds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kommons.settlement.chain import (
    PrivateKey,
    SettlementChain,
    deploy_settlement,
    deploy_token,
    mint,
    web3_for,
)
from kommons_testbed.handles import ChainAccount, ChainHandle
from kommons_testbed.processes import BedError

STATE_FILE = "settlement.json"
OPERATOR_KEY_FILE = "operator.key"
PAYER_ACCOUNTS = range(1, 5)
PAYEE_ACCOUNTS = range(5, 8)
DEFAULT_PROVIDERS = ("prov-a", "prov-b", "prov-c")
TOKEN_DECIMALS = 6
"""The bed's token has 6 decimals, like ``kommons.money.DEFAULT_DECIMALS``."""
DEFAULT_MINT = 1_000_000 * 10**TOKEN_DECIMALS
"""Tokens minted to each payer (1 000 000.000000)."""
DEFAULT_DEPOSIT = 1_000 * 10**TOKEN_DECIMALS
"""Each payer's initial escrow (1 000.000000 tokens)."""
DEFAULT_WITHDRAWAL_DELAY = 600
"""Seconds between a withdrawal request and its payment (tests move anvil's clock)."""


@dataclass(frozen=True)
class SettlementDeployment:
    """The bed's deployed token and Settlement, and who plays which part."""

    rpc_url: str
    token: str
    settlement: str
    operator: ChainAccount
    """Admin and operator (anvil account 0)."""
    payers: tuple[ChainAccount, ...]
    """Tenants' escrow accounts (anvil accounts 1–4)."""
    payees: dict[str, ChainAccount]
    """Provider name → payout account (prov-a/b/c: anvil accounts 5–7)."""
    operator_key_file: Path
    """The operator's key, mode 0600, for ``kommons hub --operator-key-file``."""
    withdrawal_delay: int
    decimals: int = TOKEN_DECIMALS

    def hub_args(self, *, operator: bool = True) -> list[str]:
        """The ``kommons hub`` options that turn settlement on against this deployment.

        ``operator=False`` leaves out the operator key: the hub reads the chain (escrow
        balances) but commits nothing.
        """
        args = ["--chain-rpc", self.rpc_url, "--settlement-address", self.settlement]
        if operator:
            args += ["--operator-key-file", str(self.operator_key_file)]
        return args

    def chain(self, account: ChainAccount | None = None) -> SettlementChain:
        """A :class:`SettlementChain` on it, signing as ``account`` (default: the operator)."""
        signer = account or self.operator
        return SettlementChain.connect(self.rpc_url, self.settlement, signer.private_key)

    def to_json(self) -> dict[str, Any]:
        """The deployment as JSON (keys included: these are anvil's public dev keys)."""
        return {
            "rpcUrl": self.rpc_url,
            "token": self.token,
            "settlement": self.settlement,
            "operator": _account_json(self.operator),
            "payers": [_account_json(a) for a in self.payers],
            "payees": {name: _account_json(a) for name, a in self.payees.items()},
            "operatorKeyFile": str(self.operator_key_file),
            "withdrawalDelay": self.withdrawal_delay,
            "decimals": self.decimals,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SettlementDeployment:
        """Read what :meth:`to_json` wrote."""
        return cls(
            rpc_url=str(data["rpcUrl"]),
            token=str(data["token"]),
            settlement=str(data["settlement"]),
            operator=_account(data["operator"]),
            payers=tuple(_account(a) for a in data["payers"]),
            payees={str(k): _account(v) for k, v in data["payees"].items()},
            operator_key_file=Path(data["operatorKeyFile"]),
            withdrawal_delay=int(data["withdrawalDelay"]),
            decimals=int(data.get("decimals", TOKEN_DECIMALS)),
        )

    def save(self, bed_dir: Path) -> None:
        """Write ``<bed_dir>/settlement.json`` (0600: it holds the dev keys)."""
        path = bed_dir / STATE_FILE
        path.write_text(json.dumps(self.to_json(), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, bed_dir: Path) -> SettlementDeployment | None:
        """The deployment saved in ``bed_dir``, or None."""
        path = bed_dir / STATE_FILE
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()))


def _account_json(account: ChainAccount) -> dict[str, str]:
    return {"address": account.address, "privateKey": account.private_key}


def _account(data: dict[str, str]) -> ChainAccount:
    return ChainAccount(address=data["address"], private_key=data["privateKey"])


def write_key_file(path: Path, private_key: str) -> Path:
    """Write a private key to ``path`` with mode 0600 (created so, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(private_key + "\n")
    return path


def deploy_settlement_bed(
    chain: ChainHandle,
    bed_dir: Path,
    *,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    mint_amount: int = DEFAULT_MINT,
    deposit: int = DEFAULT_DEPOSIT,
    withdrawal_delay: int = DEFAULT_WITHDRAWAL_DELAY,
) -> SettlementDeployment:
    """Deploy the token and the Settlement on ``chain`` and fund the payers.

    Args:
        chain: The bed's anvil (at least 8 funded accounts).
        bed_dir: Where the operator key file and ``settlement.json`` go.
        providers: Provider names, given payout accounts 5, 6, 7 … in this order.
        mint_amount: Tokens (base units) minted to each payer.
        deposit: Each payer's initial escrow (0: none); the payer also approves the
            Settlement for an unlimited amount, so tests can top up with ``deposit`` alone.
        withdrawal_delay: The Settlement's withdrawal delay in seconds.

    Raises:
        BedError: The chain has too few accounts for the providers.
    """
    needed = PAYEE_ACCOUNTS.start + len(providers)
    if len(chain.accounts) < max(needed, PAYEE_ACCOUNTS.stop):
        raise BedError(f"the chain has {len(chain.accounts)} accounts; the bed needs {needed}")
    w3 = web3_for(chain.rpc_url)
    operator = chain.accounts[0]
    token = deploy_token(w3, operator.private_key, decimals=TOKEN_DECIMALS)
    settlement = deploy_settlement(
        w3,
        operator.private_key,
        token=token,
        admin=operator.address,
        operator=operator.address,
        withdrawal_delay=withdrawal_delay,
    )
    payers = tuple(chain.accounts[i] for i in PAYER_ACCOUNTS)
    contract = SettlementChain(w3, settlement)
    for payer in payers:
        mint(w3, operator.private_key, token, payer.address, mint_amount)
        signer = contract.with_key(PrivateKey(payer.private_key))
        signer.approve(2**256 - 1)
        if deposit:
            signer.deposit(deposit)
    key_file = write_key_file(bed_dir / OPERATOR_KEY_FILE, operator.private_key)
    deployment = SettlementDeployment(
        rpc_url=chain.rpc_url,
        token=token,
        settlement=settlement,
        operator=operator,
        payers=payers,
        payees={name: chain.accounts[PAYEE_ACCOUNTS.start + i] for i, name in enumerate(providers)},
        operator_key_file=key_file,
        withdrawal_delay=withdrawal_delay,
    )
    deployment.save(bed_dir)
    return deployment


def ensure_settlement_bed(
    chain: ChainHandle, bed_dir: Path, *, providers: Sequence[str] = DEFAULT_PROVIDERS
) -> SettlementDeployment:
    """The bed's deployment: the saved one while its contract is still on this chain, else new.

    A bed keeps its anvil (and the hub its epochs) between stacks, so a restarted stack goes on
    with the same contract; a new anvil gets a new deployment.
    """
    saved = SettlementDeployment.load(bed_dir)
    if (
        saved is not None
        and saved.rpc_url == chain.rpc_url
        and set(providers) <= set(saved.payees)
        and web3_for(chain.rpc_url).eth.get_code(saved.settlement)  # type: ignore[arg-type]
    ):
        return saved
    return deploy_settlement_bed(chain, bed_dir, providers=providers)


def fresh_payer(
    deployment: SettlementDeployment, *, deposit: int = DEFAULT_DEPOSIT
) -> ChainAccount:
    """A new escrow account of its own: gas money, tokens, allowance and ``deposit`` in escrow.

    Tests that compare balances to the base unit use one so nothing else on the bed (other
    tests' leases, earlier runs) pays from the same address.
    """
    from eth_account import Account

    account = Account.create()
    w3 = web3_for(deployment.rpc_url)
    w3.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])  # type: ignore[arg-type]
    mint(w3, deployment.operator.private_key, deployment.token, account.address, deposit)
    signer = SettlementChain(w3, deployment.settlement).with_key(
        PrivateKey(account.key.to_0x_hex())
    )
    signer.approve(2**256 - 1)
    if deposit:
        signer.deposit(deposit)
    return ChainAccount(address=account.address, private_key=account.key.to_0x_hex())
