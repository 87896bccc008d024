"""Unit tests of the payment guard's thin loop (``kommons.hub.payment_loop``) over a real view.

The chain is a stand-in balance table (the loop's reader protocol); the API server is a
recording writer that returns what it was given with a new resourceVersion (the real path is
``tests/integration/test_payment.py``). Runs on ``asyncio.run`` (no plugin).

Behaviour matrix:

- one round: each account's balance read once per address, its status written (standing,
  figures, namespaces billed), the view updated, its leases re-planned.
- next round with nothing changed: no write, no re-plan; a covered account's figures moving
  (metered usage) -> the account written, its leases not re-planned.
- the balance drops below the horizon: written Low, leases re-planned.
- the chain raises: the read is stale (figures kept, balanceStale), never an exception.
- a confirmed epoch's leaf charging the payer, not claimed: subtracted (its usage, still on the
  lease, not counted twice); once seen claimed it is not asked again; a pending withdrawal is
  subtracted too.
- the chain connection is made on the first read and again after a failed one.
- the watch delivers an older version of an account: ignored; a selector change re-plans the
  leases of both the old and the new namespaces.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kommons.api import BillingAccount, BillingAccountStatus, ComputeLease, SettlementEpoch
from kommons.hub.market_view import MarketView
from kommons.hub.payment import PaymentSettings
from kommons.hub.payment_loop import LazyBalances, PaymentLoop, absorb
from kommons.settlement.chain import Withdrawal
from tests.unit.test_hub_payment import UNIT, _placement
from tests.unit.test_hub_plan import lease_body

ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def account_body(name: str = "acct", *, team: str = "a", version: str = "5") -> dict[str, Any]:
    return {
        "apiVersion": "kommons.io/v1alpha1",
        "kind": "BillingAccount",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": version},
        "spec": {"address": ADDRESS, "namespaceSelector": {"matchLabels": {"team": team}}},
    }


def lease_with_usage(*, epoch_id: int, amount: str) -> ComputeLease:
    """team-a/web with one usage entry of placement x, charged to acct."""
    body = lease_body()
    body["status"] = {
        "usage": [
            {
                "epochId": epoch_id,
                "provider": "p1",
                "placementUid": "x",
                "billingAccount": "acct",
                "readySeconds": 60,
                "amount": amount,
            }
        ]
    }
    return ComputeLease.model_validate(body)


class Chain:
    """Balances by address; ``down`` makes every read fail like an unreachable RPC."""

    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.withdrawal = 0
        self.claimed: set[tuple[int, str, str]] = set()
        self.down = False
        self.reads: list[str] = []
        self.claim_reads: list[tuple[int, str, str]] = []

    def escrow_of(self, payer: str) -> int:
        self.reads.append(payer)
        if self.down:
            raise ConnectionError("connection refused")
        return self.balance

    def pending_withdrawal(self, payer: str) -> Withdrawal:
        if self.down:
            raise ConnectionError("connection refused")
        return Withdrawal(amount=self.withdrawal, available_at=1 if self.withdrawal else 0)

    def is_claimed(self, epoch_id: int, payer: str, provider: str) -> bool:
        self.claim_reads.append((epoch_id, payer, provider))
        if self.down:
            raise ConnectionError("connection refused")
        return (epoch_id, payer, provider) in self.claimed


class Fixture:
    def __init__(self, balance: int) -> None:
        self.view = MarketView(heartbeat_timeout=30)
        self.view.namespaces = {"team-a": {"team": "a"}, "team-b": {"team": "b"}}
        self.view.set_account(BillingAccount.model_validate(account_body()))
        lease = ComputeLease.model_validate(lease_body())  # team-a/web, uid-web
        self.view.set_lease(lease)
        self.view.set_placement(_placement("web", "p1", 2, "1", "acct"))
        self.chain = Chain(balance)
        self.written: list[BillingAccountStatus] = []
        self.replanned: list[str] = []
        self.version = 5
        self.epochs: list[SettlementEpoch] = []
        self.loop = PaymentLoop(
            settings=PaymentSettings(horizon_seconds=3600, grace_seconds=900),
            reader=self.chain,
            view=self.view,
            write=self.write,
            replan=self.replanned.append,
            threads=ThreadPoolExecutor(max_workers=1),
            epochs=lambda: list(self.epochs),
        )

    def write(self, account: BillingAccount, status: BillingAccountStatus) -> dict[str, Any]:
        self.written.append(status)
        self.version += 1
        body = account.to_api()
        body["metadata"]["resourceVersion"] = str(self.version)
        body["status"] = status.to_api()
        return body

    def round(self) -> None:
        asyncio.run(self.loop.round())

    @property
    def status(self) -> BillingAccountStatus:
        status = self.view.accounts["acct"].status
        assert status is not None
        return status


def test_a_round_writes_the_status_and_replans_the_leases() -> None:
    f = Fixture(balance=10 * UNIT)
    f.round()
    assert f.chain.reads == [ADDRESS]
    assert len(f.written) == 1
    assert f.status.standing == "Covered"
    assert f.status.burn_per_hour == "2"  # 2 replicas x 1/h
    assert f.status.namespaces == ["team-a"]
    assert f.replanned == ["team-a/web"]

    f.replanned.clear()
    f.round()
    assert len(f.written) == 1  # nothing changed: no write
    assert f.replanned == []

    f.chain.balance = 1 * UNIT
    f.round()
    assert f.status.standing == "Low"
    assert f.replanned == ["team-a/web"]


def test_covered_figures_moving_rewrite_the_account_not_its_leases() -> None:
    f = Fixture(balance=10 * UNIT)
    f.round()
    f.replanned.clear()
    f.view.set_lease(lease_with_usage(epoch_id=1, amount="0.5"))
    f.round()
    assert len(f.written) == 2
    assert f.status.accrued_unsettled == "0.5"
    assert f.replanned == []  # a covered lease's PaymentOK shows no figures


def test_an_unreachable_chain_is_a_stale_read() -> None:
    f = Fixture(balance=10 * UNIT)
    f.round()
    f.chain.down = True
    f.round()
    assert f.status.standing == "Covered"
    assert f.status.escrow_balance == "10"
    assert f.status.balance_stale is True


def test_older_account_versions_are_ignored_and_selector_changes_replan() -> None:
    f = Fixture(balance=10 * UNIT)
    f.round()  # the view holds resourceVersion 6
    f.replanned.clear()
    absorb(f.view, BillingAccount.model_validate(account_body(version="5")), f.replanned.append)
    assert f.view.accounts["acct"].metadata.resource_version == "6"
    assert f.replanned == []

    other = ComputeLease.model_validate(lease_body())
    other = other.model_copy(
        update={"metadata": other.metadata.model_copy(update={"namespace": "team-b"})}
    )
    f.view.set_lease(other)
    moved = BillingAccount.model_validate(account_body(team="b", version="7"))
    absorb(f.view, moved, f.replanned.append)
    assert sorted(f.replanned) == ["team-a/web", "team-b/web"]


def test_lazy_balances_connect_on_first_read_and_again_after_a_failure() -> None:
    chains: list[Chain] = []

    def connect() -> Chain:
        chains.append(Chain(7))
        return chains[-1]

    balances = LazyBalances(connect)
    assert chains == []  # nothing at start: the chain may be down
    assert balances.escrow_of(ADDRESS) == 7
    assert balances.escrow_of(ADDRESS) == 7
    assert len(chains) == 1
    chains[0].down = True
    with pytest.raises(ConnectionError):
        balances.escrow_of(ADDRESS)
    assert balances.escrow_of(ADDRESS) == 7
    assert len(chains) == 2


PAYEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def confirmed_epoch(epoch_id: int, amount_units: int) -> SettlementEpoch:
    """A Confirmed epoch with one leaf charging ADDRESS for PAYEE."""
    return SettlementEpoch.model_validate(
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "SettlementEpoch",
            "metadata": {"name": f"epoch-{epoch_id}"},
            "spec": {
                "epochId": epoch_id,
                "start": "2026-12-01T00:00:00Z",
                "end": "2026-12-01T01:00:00Z",
            },
            "status": {
                "phase": "Confirmed",
                "leaves": [
                    {
                        "billingAccount": "acct",
                        "payer": ADDRESS,
                        "provider": "p1",
                        "payee": PAYEE,
                        "amount": str(amount_units / UNIT),
                        "amountUnits": str(amount_units),
                    }
                ],
            },
        }
    )


def test_unclaimed_committed_leaves_and_pending_withdrawals_are_owed_by_the_escrow() -> None:
    f = Fixture(balance=10 * UNIT)  # burn 2/h: needs 2 for the horizon
    f.epochs = [confirmed_epoch(1, 7 * UNIT)]
    # metering has not folded epoch 1 yet: its usage is still on the lease
    f.view.set_lease(lease_with_usage(epoch_id=1, amount="7"))
    f.round()
    assert f.status.committed_unclaimed == "7"
    assert f.status.accrued_unsettled == "0"  # counted once, as the committed leaf
    assert f.status.standing == "Covered"  # 10 - 7 = 3 >= 2

    f.chain.withdrawal = 2 * UNIT
    f.round()
    assert f.status.pending_withdrawal == "2"
    assert f.status.standing == "Low"  # 10 - 7 - 2 = 1 < 2
    message = next(c.message for c in f.status.conditions or [] if c.type == "PaymentOK")
    assert "less unsettled 0, committed unclaimed 7, pending withdrawal 2 leaves 1" in message

    # the provider claims: the escrow is debited on chain, the leaf is no longer owed
    f.chain.claimed.add((1, ADDRESS.lower(), PAYEE.lower()))
    f.chain.balance = 3 * UNIT
    f.chain.withdrawal = 0
    f.round()
    assert f.status.committed_unclaimed is None
    assert f.status.pending_withdrawal is None
    assert f.status.standing == "Covered"  # 3 >= 2
    asked = len(f.chain.claim_reads)
    f.round()
    assert len(f.chain.claim_reads) == asked  # a claimed leaf is never asked again


def test_an_unreadable_claim_is_a_stale_read() -> None:
    f = Fixture(balance=10 * UNIT)
    f.epochs = [confirmed_epoch(1, 9 * UNIT)]
    f.round()
    assert f.status.standing == "Low"
    f.chain.down = True
    f.round()
    assert f.status.balance_stale is True
    assert f.status.committed_unclaimed == "9"  # the last known figures


def test_usage_handed_over_by_deleted_leases_is_unsettled_until_confirmed() -> None:
    f = Fixture(balance=10 * UNIT)
    epoch = SettlementEpoch.model_validate(
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "SettlementEpoch",
            "metadata": {"name": "epoch-2"},
            "spec": {"epochId": 2, "start": "2026-12-01T00:00:00Z", "end": "2026-12-01T01:00:00Z"},
            "status": {
                "phase": "Open",
                "departed": [
                    {
                        "lease": "team-a/gone",
                        "leaseUid": "u-gone",
                        "placementUid": "p-gone",
                        "provider": "p1",
                        "billingAccount": "acct",
                        "readySeconds": 3600,
                        "amount": "8.5",
                    }
                ],
            },
        }
    )
    f.epochs = [epoch]
    f.round()
    assert f.status.accrued_unsettled == "8.5"
    assert f.status.standing == "Low"  # 10 - 8.5 < 2
    confirmed = epoch.model_copy(
        update={"status": epoch.status.model_copy(update={"phase": "Confirmed"})}  # type: ignore[union-attr]
    )
    f.epochs = [confirmed]  # its leaves (claimed here) carry it now
    f.round()
    assert f.status.accrued_unsettled == "0"
