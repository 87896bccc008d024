"""The payment guard's loop: read escrow balances, write BillingAccount status, wake leases.

Thin: every decision is :mod:`kommons.hub.payment`'s. One round, every
``--balance-poll-seconds``:

1. read each payer's escrow on chain (``SettlementChain.escrow_of``, in a thread), its pending
   withdrawal, and which of its leaves in confirmed SettlementEpochs are not claimed yet (a
   leaf seen claimed is remembered, never asked again); a failed read is a stale
   :class:`~kommons.hub.payment.Reading`, logged, never raised;
2. :func:`~kommons.hub.payment.assess` each account against its leases' ledger;
3. write the statuses that are due (PUT on ``/status`` with the observed resourceVersion: a
   conflict is skipped, the next round reads the fresher account);
4. plan again the leases of every account whose standing, as leases see it, changed.

It runs only in the acting hub: it is one of the hub's tasks, which start once kopf runs, and
kopf runs only after the election Lease is acquired (:mod:`kommons.hub.runner`). Without
``--chain-rpc`` it does not run at all and leases keep ``PaymentOK=True``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from kommons.api import BillingAccount, BillingAccountStatus, SettlementEpoch, get_condition
from kommons.hub.edge import parse
from kommons.hub.market_view import MarketView
from kommons.hub.payment import (
    PAYMENT_OK,
    CommittedLeaf,
    Ledger,
    PaymentSettings,
    Reading,
    assess,
    billed_namespaces,
    committed_leaves,
    lease_message,
    ledgers,
    status_due,
)
from kommons.kube import Kube, KubeError
from kommons.kube import resources as r
from kommons.settlement.chain import Withdrawal

log = logging.getLogger("kommons.hub.payment")
JSON = dict[str, Any]
T = TypeVar("T")


class BalanceReader(Protocol):
    """Reads escrows on chain (``kommons.settlement.SettlementChain`` is one).

    Every method raises when the chain cannot be read.
    """

    def escrow_of(self, payer: str) -> int:
        """The escrow of ``payer`` in base units."""
        ...

    def pending_withdrawal(self, payer: str) -> Withdrawal:
        """``payer``'s withdrawal request (amount 0: none)."""
        ...

    def is_claimed(self, epoch_id: int, payer: str, provider: str) -> bool:
        """Whether the leaf (``epoch_id``, ``payer``, ``provider``) has been claimed."""
        ...


class LazyBalances:
    """A :class:`BalanceReader` that connects on first use and again after a failed read.

    The hub starts while the chain may be unreachable: connecting is part of reading, and a
    failure is one more stale read, never a crash.
    """

    def __init__(self, connect: Callable[[], BalanceReader]) -> None:
        self._connect = connect
        self._reader: BalanceReader | None = None

    def _call(self, read: Callable[[BalanceReader], T]) -> T:
        if self._reader is None:
            self._reader = self._connect()
        try:
            return read(self._reader)
        except Exception:
            self._reader = None  # a fresh connection next time
            raise

    def escrow_of(self, payer: str) -> int:
        """The escrow of ``payer`` (connecting first if needed)."""
        return self._call(lambda reader: reader.escrow_of(payer))

    def pending_withdrawal(self, payer: str) -> Withdrawal:
        """``payer``'s withdrawal request (connecting first if needed)."""
        return self._call(lambda reader: reader.pending_withdrawal(payer))

    def is_claimed(self, epoch_id: int, payer: str, provider: str) -> bool:
        """Whether the leaf was claimed (connecting first if needed)."""
        return self._call(lambda reader: reader.is_claimed(epoch_id, payer, provider))


def lease_facing(status: BillingAccountStatus | None) -> tuple[object, ...]:
    """What of an account's status its leases show: a change re-plans them."""
    if status is None:
        return ()
    condition = get_condition(status.conditions, PAYMENT_OK)
    message = lease_message(status, condition.message) if condition else None
    return (status.standing, status.balance_stale, message)


def write_status(kube: Kube, account: BillingAccount, status: BillingAccountStatus) -> JSON:
    """PUT ``status`` on the account, conditional on the resourceVersion it was read at."""
    meta = account.metadata
    body = account.to_api()
    body["metadata"] = {"name": meta.name, "resourceVersion": meta.resource_version}
    body["status"] = status.to_api()
    return kube.request("PUT", r.BILLING_ACCOUNTS.path(None, str(meta.name)) + "/status", body=body)


class PaymentLoop:
    """Reads balances, writes accounts' status, and re-plans leases when their standing moves."""

    def __init__(
        self,
        *,
        settings: PaymentSettings,
        reader: BalanceReader,
        view: MarketView,
        write: Callable[[BillingAccount, BillingAccountStatus], JSON],
        replan: Callable[[str], None],
        threads: Executor,
        epochs: Callable[[], list[SettlementEpoch]] = list,
        on_read_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.view = view
        self.write = write
        self.replan = replan
        self.threads = threads
        self.epochs = epochs
        """Reads the SettlementEpochs (their confirmed leaves are debts of the escrows)."""
        self.on_read_error = on_read_error
        """Called on every failed balance read (the hub counts them in its metrics)."""
        self._claimed: set[CommittedLeaf] = set()
        """Leaves seen claimed on chain: a claim is final, so they are not asked again."""
        self._failing: set[str] = set()
        """Addresses whose last read failed (their failures are logged once)."""

    async def run(self, ready: asyncio.Event) -> None:
        """Run a round every ``poll_seconds`` once the view is populated, until cancelled."""
        await ready.wait()
        log.info(
            "payment guard: horizon %ds, grace %ds, balances read every %gs",
            self.settings.horizon_seconds,
            self.settings.grace_seconds,
            self.settings.poll_seconds,
        )
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("payment guard: round failed; trying again next poll")
            await asyncio.sleep(self.settings.poll_seconds)

    def _unclaimed(self, leaves: Sequence[CommittedLeaf]) -> int:
        """Base units of ``leaves`` not claimed on chain (claimed ones are remembered)."""
        total = 0
        for leaf in leaves:
            if leaf in self._claimed:
                continue
            if self.reader.is_claimed(leaf.epoch_id, leaf.payer, leaf.payee):
                self._claimed.add(leaf)
            else:
                total += leaf.amount
        return total

    def _read(self, address: str, leaves: Sequence[CommittedLeaf] = ()) -> Reading:
        """One payer's escrow, pending withdrawal and unclaimed ``leaves`` (its confirmed ones).

        A failure is logged once (a warning) until a read succeeds.
        """
        try:
            balance = int(self.reader.escrow_of(address))
            withdrawal = int(self.reader.pending_withdrawal(address).amount)
            unclaimed = self._unclaimed(leaves)
        except Exception as exc:  # the chain is outside: any failure is a stale read
            self.on_read_error()
            level = logging.DEBUG if address in self._failing else logging.WARNING
            self._failing.add(address)
            log.log(level, "payment guard: escrow of %s not read (stale): %s", address, exc)
            return Reading(None, type(exc).__name__)
        if address in self._failing:
            self._failing.discard(address)
            log.info("payment guard: escrow of %s read again", address)
        return Reading(balance, committed_unclaimed=unclaimed, pending_withdrawal=withdrawal)

    async def round(self) -> None:
        """Read, assess, write, re-plan: once for every account."""
        loop = asyncio.get_running_loop()
        accounts = dict(self.view.accounts)
        try:
            epochs = await loop.run_in_executor(self.threads, self.epochs)
        except KubeError as exc:  # judged on the balances alone would over-estimate: skip
            log.warning("payment guard: SettlementEpochs not read, round skipped: %s", exc)
            return
        leaves = committed_leaves(epochs)
        readings: dict[str, Reading] = {}
        for address in sorted({a.spec.address for a in accounts.values()}):
            mine = leaves.get(address.lower(), [])
            readings[address] = await loop.run_in_executor(self.threads, self._read, address, mine)
        now = datetime.now(UTC)
        view = self.view
        books = ledgers(
            view.leases.values(),
            {u: list(p.values()) for u, p in view.placements.items()},
            epochs,
        )
        billed = billed_namespaces(accounts, view.namespaces)
        for name, account in sorted(accounts.items()):
            desired = assess(
                account,
                reading=readings[account.spec.address],
                ledger=books.get(name, Ledger()),
                namespaces=billed.get(name, []),
                settings=self.settings,
                now=now,
            )
            if not status_due(account.status, desired, now=now):
                continue
            try:
                body = await loop.run_in_executor(self.threads, self.write, account, desired)
            except KubeError as exc:
                log.warning("payment guard: BillingAccount %s status not written: %s", name, exc)
                continue
            absorb(self.view, parse(BillingAccount, body), self.replan)


def absorb(view: MarketView, account: BillingAccount, replan: Callable[[str], None]) -> None:
    """An account was written here or seen by the watch: keep it, re-plan its leases if needed.

    Its leases are planned again when its selector changed or what they show of its status
    (:func:`lease_facing`) did; those of the namespaces it selected before too.
    """
    before = view.set_account(account)
    if view.accounts.get(str(account.metadata.name)) is not account:
        return  # an older version than the view's
    old, new = lease_facing(before.status if before else None), lease_facing(account.status)
    if before is not None and old == new and before.spec == account.spec:
        return
    if old[:1] != new[:1]:
        condition = get_condition(account.status.conditions if account.status else None, PAYMENT_OK)
        log.info(
            "payment guard: BillingAccount %s %s -> %s: %s",
            account.metadata.name,
            old[0] if old else None,
            new[0] if new else None,
            condition.message if condition else "",
        )
    for key in view.leases_billed_by(*(a for a in (before, account) if a is not None)):
        replan(key)


__all__ = [
    "BalanceReader",
    "LazyBalances",
    "PaymentLoop",
    "absorb",
    "lease_facing",
    "write_status",
]
