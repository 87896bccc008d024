"""The web3 adapter: the only module of Kommons that talks to the chain.

:class:`SettlementChain` reads and writes the ``Settlement`` contract (``contracts/``; ABI and
bytecode from :mod:`kommons.settlement.artifacts`) through any JSON-RPC endpoint, signing locally
with the key it was given. Every failure comes out as a :class:`ChainError`:

- :class:`ContractRevert` when the contract refused; ``reason`` is the custom error's name
  (``EpochNotIncreasing``, ``InsufficientEscrow`` …) or the revert string, the same on anvil and
  on eth-tester (whose revert exceptions differ);
- ``ChainError(transient=True)`` when the node could not be reached (a retry may help);
- ``ChainError(kind=…)`` for a node's refusal of a transaction (``nonce-too-low``,
  ``replacement-underpriced`` …).

Private keys live in :class:`PrivateKey`, whose ``repr`` and ``str`` never show them.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import requests
from eth_abi.abi import decode
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    ProviderConnectionError,
    RequestTimedOut,
    TransactionNotFound,
    Web3RPCError,
)

T = TypeVar("T")
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


# --- errors ---------------------------------------------------------------------------------


class ChainError(Exception):
    """A chain operation failed.

    Attributes:
        transient: Whether a retry may help (the node was unreachable or timed out).
        kind: A short name of what happened (``rpc-unavailable``, ``nonce-too-low``,
            ``replacement-underpriced``, ``revert``, ``rpc-error``, ``timeout``).
    """

    def __init__(self, message: str, *, transient: bool = False, kind: str = "rpc-error") -> None:
        super().__init__(message)
        self.transient = transient
        self.kind = kind


class ContractRevert(ChainError):
    """The contract refused the call.

    Attributes:
        reason: The custom error's name (e.g. ``InsufficientEscrow``), the ``require`` string,
            ``Panic(0x11)``, or ``unknown`` when the node gave no revert data.
        args: The custom error's decoded arguments, by name.
    """

    def __init__(self, reason: str, args: Mapping[str, Any] | None = None) -> None:
        self.reason = reason
        self.error_args = dict(args or {})
        shown = ", ".join(f"{k}={v}" for k, v in self.error_args.items())
        super().__init__(f"the contract reverted: {reason}({shown})", kind="revert")


# --- values ---------------------------------------------------------------------------------


class PrivateKey:
    """A secp256k1 private key that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_hex", "address")

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not _KEY.match(value):
            raise ValueError("a private key must be 64 hex digits (optionally 0x-prefixed)")
        self._hex = value if value.startswith("0x") else "0x" + value
        self.address: ChecksumAddress = Account.from_key(self._hex).address
        """The EIP-55 address the key signs for."""

    @classmethod
    def from_file(cls, path: Path) -> PrivateKey:
        """Read a key file (the 0x key on its first line), e.g. a mounted Secret.

        Raises:
            ValueError: The file cannot be read or holds no key (the message never quotes it).
        """
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the key file {path}: {exc.strerror}") from None
        lines = text.strip().splitlines()
        try:
            return cls(lines[0] if lines else "")
        except ValueError:
            raise ValueError(
                f"the key file {path} does not hold a private key (64 hex digits, 0x-prefixed)"
            ) from None

    def sign(self, tx: Mapping[str, Any]) -> tuple[bytes, str]:
        """Sign a transaction dict; returns (raw transaction, 0x hash)."""
        signed = Account.sign_transaction(dict(tx), self._hex)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def __repr__(self) -> str:
        return f"PrivateKey(address={self.address}, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a PrivateKey is not pickled (it would copy the secret)")


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction, ready for :meth:`SettlementChain.send` (now or after a crash)."""

    hash: str
    raw: bytes = field(repr=False)
    nonce: int


@dataclass(frozen=True)
class TxReceipt:
    """What a mined transaction did."""

    tx_hash: str
    block_number: int
    ok: bool
    """Status 1: the transaction did not revert."""
    block_hash: str = ""
    gas_used: int = 0


@dataclass(frozen=True)
class Withdrawal:
    """A payer's pending withdrawal (zeros: none)."""

    amount: int
    available_at: int
    """Chain timestamp (seconds) from which ``withdraw`` pays it."""


# --- artifacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """A compiled contract as ``contracts/build.mjs`` writes it."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    compiler: str


@cache
def artifact(name: str) -> Artifact:
    """Load ``Settlement`` or ``TestToken`` from the package's committed artifacts."""
    text = resources.files("kommons.settlement").joinpath("artifacts", f"{name}.json").read_text()
    data = json.loads(text)
    return Artifact(
        name=str(data["contractName"]),
        abi=list(data["abi"]),
        bytecode=str(data["bytecode"]),
        compiler=str(data["compiler"]["version"]),
    )


def _signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"


def _abi_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return f"({','.join(_abi_type(c) for c in item['components'])}){kind[5:]}"
    return kind


@cache
def _errors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """Selector → (error name, input names, input types), from every artifact's ABI."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in ("Settlement", "TestToken"):
        for item in artifact(name).abi:
            if item.get("type") == "error":
                selector = keccak(text=_signature(item))[:4]
                names = [str(i["name"]) for i in item["inputs"]]
                types = [_abi_type(i) for i in item["inputs"]]
                table[selector] = (str(item["name"]), names, types)
    return table


def decode_revert(data: bytes) -> ContractRevert:
    """Turn revert data into a :class:`ContractRevert` naming the error."""
    if len(data) < 4:
        return ContractRevert("unknown")
    selector, body = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING:
            return ContractRevert(str(decode(["string"], body)[0]))
        if selector == _PANIC:
            return ContractRevert(f"Panic({hex(decode(['uint256'], body)[0])})")
        if selector in _errors():
            name, names, types = _errors()[selector]
            values = decode(types, body)
            return ContractRevert(name, dict(zip(names, (_plain(v) for v in values), strict=True)))
    except Exception:  # malformed revert data: still a revert, with the selector
        pass
    return ContractRevert(f"0x{selector.hex()}")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)
    return value


def _revert_data(exc: BaseException) -> bytes | None:
    """The revert bytes carried by web3's (anvil) or eth-tester's exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return bytes.fromhex(inner[2:])
    # eth-tester: TransactionFailed("execution reverted: b'...'")
    text = str(exc.args[0]) if exc.args else ""
    match = re.search(r"execution reverted: (b['\"].*)$", text, re.DOTALL)
    if match:
        try:
            raw = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return None
        if isinstance(raw, bytes):
            return raw
    return None


_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ProviderConnectionError,
    RequestTimedOut,
    ConnectionError,
    TimeoutError,
)


def _is_revert(exc: BaseException) -> bool:
    if isinstance(exc, ContractCustomError | ContractLogicError | ContractPanicError):
        return True
    return type(exc).__name__ == "TransactionFailed"  # eth-tester (not imported in production)


def normalise(exc: BaseException, *, doing: str) -> ChainError:
    """Map any backend's exception to a :class:`ChainError` (``doing`` says what failed)."""
    if isinstance(exc, ChainError):
        return exc
    if _is_revert(exc):
        data = _revert_data(exc)
        if data:
            return decode_revert(data)
        message = str(getattr(exc, "message", None) or (exc.args[0] if exc.args else ""))
        reason = message.removeprefix("execution reverted: ").removeprefix("execution reverted")
        return ContractRevert(reason.strip() or "unknown")
    if isinstance(exc, _TRANSIENT):
        return ChainError(
            f"{doing}: the chain node is unreachable ({type(exc).__name__})",
            transient=True,
            kind="rpc-unavailable",
        )
    if isinstance(exc, Web3RPCError) or type(exc).__name__ == "ValidationError":
        message = str(getattr(exc, "message", "") or exc)
        lowered = message.lower()
        if "nonce too low" in lowered or _eth_tester_nonce_too_low(message):
            kind = "nonce-too-low"
        elif "already known" in lowered or "already imported" in lowered:
            kind = "already-known"
        elif "underpriced" in lowered:
            kind = "replacement-underpriced"
        else:
            kind = "rpc-error"
        return ChainError(f"{doing}: {message}", kind=kind)
    return ChainError(f"{doing}: {type(exc).__name__}: {exc}")


def _eth_tester_nonce_too_low(message: str) -> bool:
    """eth-tester's ``Invalid transaction nonce: Expected 4, but got 3``."""
    match = re.search(r"nonce: Expected (\d+), but got (\d+)", message)
    return match is not None and int(match.group(2)) < int(match.group(1))


def _call(doing: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Exception as exc:
        raise normalise(exc, doing=doing) from exc


def _hex32(value: str, what: str) -> bytes:
    if not _HASH.match(value):
        raise ValueError(f"{what} {value!r} is not 0x + 64 hex digits")
    return bytes.fromhex(value[2:])


def _address(value: str, what: str) -> ChecksumAddress:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"{what} {value!r} is not a 0x-prefixed 20-byte address")
    return to_checksum_address(value)


# --- the adapter ----------------------------------------------------------------------------


class SettlementChain:
    """One ``Settlement`` contract on one chain, optionally with a key that signs for it."""

    def __init__(self, w3: Web3, address: str, key: PrivateKey | None = None) -> None:
        self.w3 = w3
        self.address = _address(address, "settlement address")
        self.key = key
        self.contract = w3.eth.contract(address=self.address, abi=artifact("Settlement").abi)

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        address: str,
        private_key: str | PrivateKey | None = None,
        *,
        timeout: float = 10.0,
    ) -> SettlementChain:
        """Connect to ``rpc_url`` (no request is made yet), signing with ``private_key``."""
        return cls(web3_for(rpc_url, timeout=timeout), address, _as_key(private_key))

    def with_key(self, private_key: str | PrivateKey) -> SettlementChain:
        """The same contract, signing with another key (a payer's, a provider's)."""
        return SettlementChain(self.w3, self.address, _as_key(private_key))

    def __repr__(self) -> str:
        signer = self.key.address if self.key else None
        return f"SettlementChain(address={self.address}, signer={signer})"

    # --- reads --------------------------------------------------------------------------

    def _read(self, name: str, *args: Any) -> Any:
        return _call(f"reading {name}", lambda: self.contract.functions[name](*args).call())

    def last_epoch_id(self) -> int:
        """The highest committed epoch id (0: none yet)."""
        return int(self._read("lastEpochId"))

    def epoch_root(self, epoch_id: int) -> str | None:
        """The committed root of ``epoch_id`` (0x + 64 hex), or None if it is not committed."""
        root = bytes(self._read("epochRoot", epoch_id))
        return None if root == bytes(32) else "0x" + root.hex()

    def epoch_total(self, epoch_id: int, *, from_block: int = 0) -> int | None:
        """The total committed with ``epoch_id``, or None if it is not committed.

        The contract does not store totals (it would cost a commit a storage slot): this reads
        the epoch's ``EpochCommitted`` log, filtered by its indexed ``epochId`` on the node,
        from ``from_block`` on (pass the deployment's block on a long chain).
        """
        committed = self.events(
            "EpochCommitted", from_block=from_block, where={"epochId": epoch_id}
        )
        return int(committed[0]["total"]) if committed else None

    def escrow_of(self, payer: str) -> int:
        """What ``payer`` has in escrow, in token base units."""
        return int(self._read("escrowOf", _address(payer, "payer")))

    def earnings_of(self, provider: str) -> int:
        """What claims have credited ``provider`` and it has not withdrawn yet."""
        return int(self._read("earningsOf", _address(provider, "provider")))

    def pending_withdrawal(self, payer: str) -> Withdrawal:
        """``payer``'s pending withdrawal request."""
        amount, available_at = self._read("pendingWithdrawal", _address(payer, "payer"))
        return Withdrawal(amount=int(amount), available_at=int(available_at))

    def is_claimed(self, epoch_id: int, payer: str, provider: str) -> bool:
        """Whether the leaf (``epoch_id``, ``payer``, ``provider``) has been claimed."""
        return bool(
            self._read(
                "isClaimed", epoch_id, _address(payer, "payer"), _address(provider, "provider")
            )
        )

    def token_address(self) -> ChecksumAddress:
        """The settlement token's address."""
        return to_checksum_address(self._read("token"))

    def token_balance(self, account: str) -> int:
        """``account``'s balance of the settlement token."""
        token = self.w3.eth.contract(address=self.token_address(), abi=artifact("TestToken").abi)
        who = _address(account, "account")
        return int(_call("reading balanceOf", lambda: token.functions.balanceOf(who).call()))

    def has_operator_role(self, account: str) -> bool:
        """Whether ``account`` may commit epochs."""
        role = self._read("OPERATOR_ROLE")
        return bool(self._read("hasRole", role, _address(account, "account")))

    def block_number(self) -> int:
        """The latest block number."""
        return int(_call("reading the block number", lambda: self.w3.eth.block_number))

    def block_hash(self, number: int) -> str | None:
        """The hash of block ``number`` on the node's current chain (None: not there yet)."""

        def fetch() -> str | None:
            try:
                block = self.w3.eth.get_block(number)
            except BlockNotFound:
                return None
            return "0x" + bytes(block["hash"]).hex()

        return _call(f"reading block {number}", fetch)

    def confirmations(self, receipt: TxReceipt) -> int:
        """Blocks on top of ``receipt``'s, its own included; 0 when a reorg removed its block."""
        if self.block_hash(receipt.block_number) != receipt.block_hash:
            return 0
        return max(0, self.block_number() - receipt.block_number + 1)

    def chain_id(self) -> int:
        """The chain id (31337 on anvil)."""
        return int(_call("reading the chain id", lambda: self.w3.eth.chain_id))

    def events(
        self, name: str, *, from_block: int = 0, where: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The contract's ``name`` events (e.g. ``Claimed``) from ``from_block`` on.

        Each is its arguments by name plus ``blockNumber`` and ``transactionHash``. ``where``
        keeps only the events whose arguments have these values (indexed ones are filtered by
        the node).
        """
        event = self.contract.events[name]()
        filters = dict(where) if where else None

        def fetch() -> list[dict[str, Any]]:
            logs = event.get_logs(argument_filters=filters, from_block=from_block)
            return [
                {
                    **{k: _plain(v) for k, v in entry["args"].items()},
                    "blockNumber": int(entry["blockNumber"]),
                    "transactionHash": "0x" + bytes(entry["transactionHash"]).hex(),
                }
                for entry in logs
            ]

        return _call(f"reading {name} events", fetch)

    # --- transactions -------------------------------------------------------------------

    def _signer(self) -> PrivateKey:
        if self.key is None:
            raise ChainError("this SettlementChain has no private key to sign with", kind="no-key")
        return self.key

    def next_nonce(self) -> int:
        """The signer's next nonce, counting its pending transactions."""
        who = self._signer().address
        return int(
            _call("reading the nonce", lambda: self.w3.eth.get_transaction_count(who, "pending"))
        )

    def _sign(self, fn: Any, *, nonce: int | None, doing: str, fee_percent: int = 100) -> SignedTx:
        key = self._signer()
        n = self.next_nonce() if nonce is None else nonce
        tx = _call(
            doing,
            lambda: fn.build_transaction(
                {"from": key.address, "nonce": n, "chainId": self.chain_id()}
            ),
        )
        if fee_percent != 100:
            for name in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
                if name in tx:
                    tx[name] = -(-int(tx[name]) * fee_percent // 100)  # rounded up
        raw, tx_hash = key.sign(tx)
        return SignedTx(hash=tx_hash, raw=raw, nonce=n)

    def sign_commit(
        self,
        epoch_id: int,
        root: str,
        total: int,
        *,
        nonce: int | None = None,
        fee_percent: int = 100,
    ) -> SignedTx:
        """Sign ``commitEpoch(epoch_id, root, total)`` without sending it.

        The gas is estimated now, so a commit the contract would refuse (the epoch is already
        committed, the key lacks the operator role) raises :class:`ContractRevert` here.

        Args:
            epoch_id: The epoch.
            root: Its Merkle root (0x + 64 hex).
            total: Σ of its leaves' amounts.
            nonce: The operator's nonce to use (default: its next pending one); the same nonce
                as a pending transaction replaces it.
            fee_percent: The node's suggested fees scaled by this percentage; a replacement of a
                pending transaction needs more than it paid (nodes ask for ≥ 110 %).
        """
        fn = self.contract.functions.commitEpoch(epoch_id, _hex32(root, "root"), total)
        return self._sign(
            fn,
            nonce=nonce,
            doing=f"signing the commit of epoch {epoch_id}",
            fee_percent=fee_percent,
        )

    def send(self, tx: SignedTx) -> str:
        """Broadcast a signed transaction; returns its hash.

        Sending one the node already has (``already known``) or has already mined is not an
        error: the hash is returned.
        """
        try:
            sent = self.w3.eth.send_raw_transaction(tx.raw)
        except Exception as exc:
            error = normalise(exc, doing=f"sending transaction {tx.hash}")
            if error.kind == "already-known":
                return tx.hash
            if error.kind == "nonce-too-low" and self.receipt(tx.hash) is not None:
                return tx.hash
            raise error from exc
        return "0x" + bytes(sent).hex()

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        try:
            r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except Exception as exc:
            raise normalise(exc, doing=f"reading the receipt of {tx_hash}") from exc
        if r is None or r.get("blockNumber") is None:
            return None
        return TxReceipt(
            tx_hash=tx_hash,
            block_number=int(r["blockNumber"]),
            ok=int(r["status"]) == 1,
            block_hash="0x" + bytes(r["blockHash"]).hex(),
            gas_used=int(r["gasUsed"]),
        )

    def wait_receipt(self, tx_hash: str, *, timeout: float = 60.0) -> TxReceipt:
        """Poll until ``tx_hash`` is mined.

        Raises:
            ChainError: Not mined within ``timeout`` seconds (``kind="timeout"``, transient).
        """
        deadline = time.monotonic() + timeout
        while True:
            got = self.receipt(tx_hash)
            if got is not None:
                return got
            if time.monotonic() >= deadline:
                raise ChainError(
                    f"transaction {tx_hash} not mined within {timeout:.0f}s",
                    transient=True,
                    kind="timeout",
                )
            time.sleep(0.05)

    def _transact(self, fn: Any, *, doing: str, timeout: float = 60.0) -> TxReceipt:
        """Sign, send and wait; a mined revert raises :class:`ContractRevert` like a refused one."""
        tx = self._sign(fn, nonce=None, doing=doing)
        receipt = self.wait_receipt(self.send(tx), timeout=timeout)
        if not receipt.ok:
            raise ContractRevert("unknown")
        return receipt

    def commit(self, epoch_id: int, root: str, total: int) -> TxReceipt:
        """Sign, send and wait for ``commitEpoch`` (tests and tools; the hub signs and sends)."""
        fn = self.contract.functions.commitEpoch(epoch_id, _hex32(root, "root"), total)
        return self._transact(fn, doing=f"committing epoch {epoch_id}")

    def claim(
        self, epoch_id: int, payer: str, provider: str, amount: int, proof: Sequence[str]
    ) -> TxReceipt:
        """Claim one leaf, signed by this chain's key (anyone may claim for a provider)."""
        fn = self.contract.functions.claim(
            epoch_id,
            _address(payer, "payer"),
            _address(provider, "provider"),
            amount,
            [_hex32(p, "proof element") for p in proof],
        )
        return self._transact(fn, doing=f"claiming epoch {epoch_id} for {provider}")

    def withdraw_earnings(self) -> TxReceipt:
        """Pay the signer (a provider) its claimed earnings."""
        return self._transact(self.contract.functions.withdrawEarnings(), doing="withdrawEarnings")

    def deposit(self, amount: int, *, payer: str | None = None) -> TxReceipt:
        """Deposit ``amount`` of the signer's tokens into its escrow (or ``payer``'s).

        Approves the contract first when the allowance is short.
        """
        self.approve(amount)
        if payer is None:
            fn = self.contract.functions.deposit(amount)
        else:
            fn = self.contract.functions.depositFor(_address(payer, "payer"), amount)
        return self._transact(fn, doing=f"depositing {amount}")

    def approve(self, amount: int) -> TxReceipt | None:
        """Let the contract take ``amount`` of the signer's tokens (None: already allowed)."""
        token = self.w3.eth.contract(address=self.token_address(), abi=artifact("TestToken").abi)
        owner = self._signer().address
        allowed = int(
            _call(
                "reading the allowance",
                lambda: token.functions.allowance(owner, self.address).call(),
            )
        )
        if allowed >= amount:
            return None
        return self._transact(token.functions.approve(self.address, amount), doing="approve")

    def request_withdrawal(self, amount: int) -> TxReceipt:
        """Ask to withdraw ``amount`` of the signer's escrow after the delay."""
        return self._transact(
            self.contract.functions.requestWithdrawal(amount), doing="requestWithdrawal"
        )

    def withdraw(self) -> TxReceipt:
        """Pay the signer's pending withdrawal (capped by its escrow)."""
        return self._transact(self.contract.functions.withdraw(), doing="withdraw")


# --- deployment (the bed, tests, benches) -----------------------------------------------------


def web3_for(rpc_url: str, *, timeout: float = 10.0) -> Web3:
    """A Web3 on ``rpc_url`` that fails fast (no automatic retries) so callers see outages."""
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
    )
    return Web3(provider)


def _as_key(value: str | PrivateKey | None) -> PrivateKey | None:
    if value is None or isinstance(value, PrivateKey):
        return value
    return PrivateKey(value)


def _send_and_wait(w3: Web3, key: str | PrivateKey, buildable: Any, *, doing: str) -> Any:
    """Build, sign (with ``key``), send and wait for a contract call or constructor."""
    signer = _as_key(key)
    if signer is None:
        raise ChainError(f"{doing}: no key to sign with", kind="no-key")
    tx = _call(
        doing,
        lambda: buildable.build_transaction(
            {
                "from": signer.address,
                "nonce": w3.eth.get_transaction_count(signer.address, "pending"),
                "chainId": w3.eth.chain_id,
            }
        ),
    )
    raw, tx_hash = signer.sign(tx)
    _call(doing, lambda: w3.eth.send_raw_transaction(raw))
    receipt = _call(doing, lambda: w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60))  # type: ignore[arg-type]
    if int(receipt["status"]) != 1:
        raise ChainError(f"{doing} failed (transaction {tx_hash} reverted)", kind="revert")
    return receipt


def deploy(w3: Web3, key: str | PrivateKey, name: str, *args: Any) -> ChecksumAddress:
    """Deploy artifact ``name`` with constructor ``args``, signed by ``key``; its address."""
    art = artifact(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    receipt = _send_and_wait(w3, key, factory.constructor(*args), doing=f"deploying {name}")
    return to_checksum_address(str(receipt["contractAddress"]))


def deploy_token(
    w3: Web3, key: str | PrivateKey, *, name: str = "Kommons Test Token", decimals: int = 6
) -> ChecksumAddress:
    """Deploy a :file:`contracts/TestToken.sol` (anyone may mint; tests and the bed only)."""
    return deploy(w3, key, "TestToken", name, "KTT", decimals)


def deploy_settlement(
    w3: Web3,
    key: str | PrivateKey,
    *,
    token: str,
    admin: str,
    operator: str,
    withdrawal_delay: int,
) -> ChecksumAddress:
    """Deploy a ``Settlement``; returns its address."""
    return deploy(
        w3,
        key,
        "Settlement",
        _address(token, "token"),
        _address(admin, "admin"),
        _address(operator, "operator"),
        withdrawal_delay,
    )


def mint(w3: Web3, key: str | PrivateKey, token: str, to: str, amount: int) -> None:
    """Mint test tokens (``TestToken.mint``), signed by ``key``."""
    contract = w3.eth.contract(address=_address(token, "token"), abi=artifact("TestToken").abi)
    fn = contract.functions.mint(_address(to, "recipient"), amount)
    _send_and_wait(w3, key, fn, doing=f"minting {amount} for {to}")
