"""The bed's chain node: a real ``anvil`` (Foundry) from its pinned npm package, on loopback.

``hack/testbed/install-anvil.sh`` installs the binary into the cache outside the repository;
:func:`anvil_binary` finds it, :func:`start_anvil` runs it and hands back a
:class:`~kommons_testbed.handles.ChainHandle`, and :func:`rpc` (plus a few thin wrappers) speaks
raw JSON-RPC to it for fault tests (snapshots, mining, time travel) without needing web3.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from kommons_testbed.handles import ChainAccount, ChainHandle
from kommons_testbed.processes import BedError, ProcessRecord, is_alive, spawn, stop, wait_for

ANVIL_CHAIN_ID = 31337
"""Chain id of the local node (anvil's default, passed explicitly)."""

_VERSIONS_SH = Path(__file__).resolve().parent.parent / "versions.sh"
"""``hack/testbed/versions.sh``: the single source of truth for ``ANVIL_VERSION``."""

_PACKAGE_BIN = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
"""Where npm puts the binary inside an install prefix (see ``install-anvil.sh``)."""

_LISTENING = re.compile(r"^Listening on (?P<host>\S+):(?P<port>\d+)\r?\n", re.MULTILINE)
"""Anvil's ready line; the newline must be there so a half-written port is never read."""
_PRIVATE_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")
_rpc_ids = itertools.count(1)


class RpcError(BedError):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        self.method = method
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        super().__init__(f"{method} failed: {self.message} (code {self.code})")


def parse_versions_sh(text: str) -> dict[str, str]:
    """Parse the plain ``NAME=value`` assignments of ``versions.sh``.

    Lines using shell expansion (``${...}``, ``$HOME``) are skipped; they are not pins.

    Args:
        text: The content of ``hack/testbed/versions.sh``.

    Returns:
        The pinned names and their values, quotes removed.
    """
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^(?:export\s+)?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if not match or "$" in match.group(2):
            continue
        pins[match.group(1)] = match.group(2).strip().strip("'\"")
    return pins


def anvil_version() -> str:
    """Return the pinned anvil version, read from ``hack/testbed/versions.sh``.

    Raises:
        BedError: ``versions.sh`` is missing or does not pin ``ANVIL_VERSION``.
    """
    try:
        pins = parse_versions_sh(_VERSIONS_SH.read_text())
    except OSError as exc:
        raise BedError(f"cannot read the anvil pin from {_VERSIONS_SH}: {exc}") from exc
    if "ANVIL_VERSION" not in pins:
        raise BedError(f"{_VERSIONS_SH} does not set ANVIL_VERSION")
    return pins["ANVIL_VERSION"]


def cache_root() -> Path:
    """Return the cache root, ``$KOMMONS_CACHE`` or ``~/.cache/kommons`` (as in versions.sh)."""
    configured = os.environ.get("KOMMONS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "kommons"


def anvil_binary() -> Path:
    """Return the path of the installed anvil binary.

    ``$KOMMONS_ANVIL`` overrides the location; otherwise this is the path
    ``install-anvil.sh`` installs to: ``$KOMMONS_CACHE/npm/anvil-<version>/node_modules/
    @foundry-rs/anvil-linux-amd64/bin/anvil``.

    Raises:
        BedError: The binary is not there (``anvil not installed; run `make deps```).
    """
    override = os.environ.get("KOMMONS_ANVIL")
    path = (
        Path(override)
        if override
        else cache_root() / "npm" / f"anvil-{anvil_version()}" / _PACKAGE_BIN
    )
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BedError(f"anvil not installed; run `make deps` (no executable at {path})")
    return path


def parse_listening_port(log_text: str) -> int | None:
    """Return the port from anvil's ``Listening on 127.0.0.1:NNNNN`` line, if it has printed it.

    Args:
        log_text: Anvil's output so far (only this run's part of the log).

    Returns:
        The TCP port, or None while the complete line (with its newline) is not there yet.
    """
    match = _LISTENING.search(log_text)
    return int(match.group("port")) if match else None


def parse_config_out(data: Mapping[str, Any]) -> tuple[ChainAccount, ...]:
    """Turn anvil's ``--config-out`` JSON into the funded accounts, in anvil's order.

    Args:
        data: The parsed JSON; it has ``available_accounts`` (lower-case addresses) and
            ``private_keys`` (0x-prefixed hex) lists of equal length.

    Returns:
        The accounts with EIP-55 checksummed addresses and 0x-prefixed private keys.

    Raises:
        BedError: The file does not have the expected shape.
    """
    addresses = data.get("available_accounts")
    keys = data.get("private_keys")
    if not isinstance(addresses, list) or not isinstance(keys, list) or not addresses:
        raise BedError("anvil config-out has no available_accounts/private_keys lists")
    if len(addresses) != len(keys):
        raise BedError(f"anvil config-out lists {len(addresses)} accounts but {len(keys)} keys")
    accounts = []
    for address, key in zip(addresses, keys, strict=True):
        key = str(key)
        if not key.startswith("0x"):
            key = "0x" + key
        if not _PRIVATE_KEY.match(key):
            raise BedError(f"anvil config-out has a malformed private key for {address}")
        accounts.append(ChainAccount(address=to_checksum_address(str(address)), private_key=key))
    return tuple(accounts)


def start_anvil(
    state_dir: Path,
    *,
    accounts: int = 10,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> tuple[ProcessRecord, ChainHandle]:
    """Start anvil on a loopback port the OS picks and wait until it answers JSON-RPC.

    Anvil listens on ``127.0.0.1`` port 0 and prints ``Listening on 127.0.0.1:NNNNN``; the port
    is read from its log, so there is no race for a free port. The funded accounts come from
    ``--config-out <state_dir>/anvil-accounts.json``. The process runs in its own session (it
    outlives the caller); stop it with :func:`kommons_testbed.processes.stop`.

    Args:
        state_dir: The bed's state directory; the log goes to ``logs/anvil.log`` in it.
        accounts: How many funded dev accounts anvil creates (10000 ETH each).
        extra_args: More anvil flags, e.g. ``("--block-time", "1")``.
        timeout: Seconds to wait for the node to answer.

    Returns:
        The process record (for the state file and :func:`stop`) and the chain handle.

    Raises:
        BedError: anvil is not installed, exited, or did not answer in time (the message
            includes the end of its log).
    """
    binary = anvil_binary()
    log = state_dir / "logs" / "anvil.log"
    config_out = state_dir / "anvil-accounts.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    config_out.unlink(missing_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    argv = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--chain-id",
        str(ANVIL_CHAIN_ID),
        "--accounts",
        str(accounts),
        "--config-out",
        str(config_out),
        *extra_args,
    ]
    record = spawn("anvil", argv, log)
    try:
        port = _wait_for_port(record, offset, timeout)
        rpc_url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: _config_ready(config_out), timeout=timeout, what=f"anvil to write {config_out}"
        )
        funded = parse_config_out(json.loads(config_out.read_text()))
        wait_for(
            lambda: rpc(rpc_url, "eth_chainId", timeout=1.0) is not None,
            timeout=timeout,
            what=f"anvil at {rpc_url} to answer eth_chainId",
        )
        chain_id = int(str(rpc(rpc_url, "eth_chainId")), 16)
    except BaseException:
        stop(record)
        raise
    return record, ChainHandle(rpc_url=rpc_url, chain_id=chain_id, accounts=funded)


def _wait_for_port(record: ProcessRecord, offset: int, timeout: float) -> int:
    """Read this run's part of anvil's log until it names its port; fail fast if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        text = _read_from(record.log, offset)
        port = parse_listening_port(text)
        if port is not None:
            return port
        if not is_alive(record.pid):
            raise BedError(f"anvil exited before listening; log {record.log}:\n{_tail(text)}")
        if time.monotonic() >= deadline:
            raise BedError(
                f"timed out after {timeout:.0f}s waiting for anvil to listen; "
                f"log {record.log}:\n{_tail(text)}"
            )
        time.sleep(0.02)


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _config_ready(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("private_keys"))


def rpc(
    target: ChainHandle | str,
    method: str,
    params: Sequence[Any] = (),
    *,
    timeout: float = 10.0,
) -> Any:
    """Make one raw JSON-RPC call (no web3 needed), e.g. ``evm_snapshot`` or ``evm_mine``.

    Args:
        target: The chain handle, or an RPC URL.
        method: The JSON-RPC method.
        params: Its positional parameters.
        timeout: Seconds for the HTTP request.

    Returns:
        The ``result`` member of the response, as decoded JSON.

    Raises:
        RpcError: The node answered with an ``error`` object.
        BedError: The node did not answer (connection refused, time-out, not JSON).
    """
    url = target.rpc_url if isinstance(target, ChainHandle) else target
    body = json.dumps(
        {"jsonrpc": "2.0", "id": next(_rpc_ids), "method": method, "params": list(params)}
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise BedError(f"JSON-RPC {method} to {url} failed: {exc}") from exc
    if not isinstance(reply, dict):
        raise BedError(f"JSON-RPC {method} to {url}: unexpected reply {reply!r}")
    if "error" in reply:
        raise RpcError(method, reply["error"])
    return reply.get("result")


def snapshot(chain: ChainHandle) -> str:
    """Take an ``evm_snapshot``; the id can be reverted to once (take a new one after)."""
    return str(rpc(chain, "evm_snapshot"))


def revert(chain: ChainHandle, snapshot_id: str) -> bool:
    """``evm_revert`` to ``snapshot_id``; returns whether the node reverted."""
    return bool(rpc(chain, "evm_revert", [snapshot_id]))


def mine(chain: ChainHandle, blocks: int = 1) -> None:
    """Mine ``blocks`` blocks now (``anvil_mine``), including pending transactions."""
    rpc(chain, "anvil_mine", [hex(blocks)])


def increase_time(chain: ChainHandle, seconds: int) -> None:
    """Move the chain's clock forward by ``seconds`` (``evm_increaseTime``; next block sees it)."""
    rpc(chain, "evm_increaseTime", [seconds])


def set_automine(chain: ChainHandle, enabled: bool) -> None:
    """Turn automine on or off; while off, transactions stay pending until :func:`mine`."""
    rpc(chain, "evm_setAutomine", [enabled])


def block_number(chain: ChainHandle) -> int:
    """Return the latest block number."""
    return int(str(rpc(chain, "eth_blockNumber")), 16)
