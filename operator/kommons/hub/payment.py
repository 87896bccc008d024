"""The payment guard, pure: an account's escrow against its leases' burn, and what leases see.

Every ``--balance-poll-seconds`` the hub (:mod:`kommons.hub.payment_loop`, leader only) reads
each BillingAccount's escrow on chain and :func:`assess` turns it into the account's status::

    available = escrow balance - accrued unsettled       (metered, not settled yet)
                               - committed unclaimed     (confirmed leaves no claim debited yet)
                               - pending withdrawal      (requested by the payer)
    needed    = burn per hour x horizon / 3600            (rounded up to a base unit)
    covered   = available >= needed

- **Covered**: a fresh read finds it covered (``lowSince`` cleared).
- **Low**: a fresh read finds it short: ``lowSince`` is the first such read, and the leases run
  on with ``PaymentOK=False`` until ``graceEndsAt = lowSince + grace``.
- **Suspended**: a fresh read at or after ``graceEndsAt`` still finds it short: every lease of
  the account is suspended (``status.paymentSuspendedAt``), until a fresh read finds it
  covered again (a top-up). The burn counts the suspended leases' placements, so the
  deposit needed to resume is the one that keeps them running for the horizon.
- **Stale** (the read failed): the last known figures and standing stay, ``balanceStale`` is
  set and the condition says so. Only a fresh read moves the standing: a Low account whose
  grace ends while the chain is unreachable is not suspended until a read succeeds again.

The burn is projected from the placements: Σ over the account's placements (their
``spec.billingAccount``) of replicas x locked price per replica-hour, leaving out leases their
tenant suspended or is deleting. Accrued unsettled is Σ of ``status.usage`` amounts charged to
the account (the epochs not confirmed on chain yet).

:func:`lease_payment` is the lease's side, called by :func:`kommons.hub.plan.plan_lease`:
its ``PaymentOK`` condition and whether the hub suspends it (the account's standing), written
as ``status.paymentSuspendedAt``; :func:`kommons.hub.lifecycle.as_planned` plans a lease with
that marker as if ``spec.suspend`` were true. The tenant's spec is never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kommons.api import (
    BillingAccount,
    BillingAccountStatus,
    ComputeLease,
    ConditionStatus,
    LeasePlacement,
    SettlementEpoch,
    Standing,
    get_condition,
    set_condition,
)
from kommons.hub.lease_status import Gate
from kommons.hub.placements import locked_price
from kommons.hub.views import selects
from kommons.money import format_units, parse_units

PAYMENT_OK = "PaymentOK"
"""Condition type on leases and accounts."""
CHECKED_REFRESH_SECONDS = 300.0
"""``balanceCheckedAt`` alone is rewritten at most this often (the other fields at once)."""


@dataclass(frozen=True)
class PaymentSettings:
    """How the payment guard judges an account (hub options ``--payment-*``)."""

    horizon_seconds: int = 3600
    """The escrow must pay the projected burn for this long (``--payment-horizon-seconds``)."""
    grace_seconds: int = 900
    """How long leases run on once it does not, before they are suspended
    (``--payment-grace-seconds``)."""
    poll_seconds: float = 30.0
    """How often the balances are read (``--balance-poll-seconds``)."""


@dataclass(frozen=True)
class Reading:
    """One attempt to read a payer's escrow on chain, and what it already owes out of it."""

    balance: int | None
    """The balance in base units, or ``None`` when the read failed."""
    error: str = ""
    """Why it failed (an exception's class name: no URL, no key)."""
    committed_unclaimed: int = 0
    """Base units of leaves charging this payer in confirmed epochs, not claimed yet: a claim
    will debit them from the balance."""
    pending_withdrawal: int = 0
    """Base units the payer asked to withdraw (``requestWithdrawal``), not withdrawn yet."""


@dataclass(frozen=True)
class CommittedLeaf:
    """One leaf of a confirmed epoch: what a claim may still debit from ``payer``'s escrow."""

    epoch_id: int
    payer: str
    """Escrow address, lower case."""
    payee: str
    """Provider payout address, lower case."""
    amount: int
    """Base units."""


def confirmed_epochs(epochs: Iterable[SettlementEpoch]) -> set[int]:
    """Ids of the epochs committed on chain and confirmed."""
    return {
        e.spec.epoch_id
        for e in epochs
        if e.spec.epoch_id is not None and e.status is not None and e.status.phase == "Confirmed"
    }


def departed_unsettled(epochs: Iterable[SettlementEpoch]) -> dict[str, int]:
    """Account → base units deleted leases handed over to epochs not Confirmed or Failed."""
    out: dict[str, int] = {}
    for epoch in epochs:
        status = epoch.status
        if status is None or status.phase in ("Confirmed", "Failed"):
            continue
        for entry in status.departed or ():
            account = entry.billing_account
            out[account] = out.get(account, 0) + parse_units(entry.amount)
    return out


def committed_leaves(epochs: Iterable[SettlementEpoch]) -> dict[str, list[CommittedLeaf]]:
    """Payer address (lower case) → the leaves charging it in confirmed epochs.

    Their usage has left the leases' ``status.usage`` (folded into ``cost.settled``), yet the
    escrow still holds it until a claim debits it.
    """
    out: dict[str, list[CommittedLeaf]] = {}
    for epoch in epochs:
        status, epoch_id = epoch.status, epoch.spec.epoch_id
        if epoch_id is None or status is None or status.phase != "Confirmed":
            continue
        for leaf in status.leaves or ():
            if leaf.payer is None or leaf.payee is None or leaf.amount_units is None:
                continue
            payer = leaf.payer.lower()
            out.setdefault(payer, []).append(
                CommittedLeaf(epoch_id, payer, leaf.payee.lower(), int(leaf.amount_units))
            )
    return out


@dataclass(frozen=True)
class Ledger:
    """What an account's leases cost: projected burn and what is metered but not settled."""

    burn_per_hour: int = 0
    """Base units per hour."""
    unsettled: int = 0
    """Base units."""


# --------------------------------------------------------------------------------------
# Which account pays
# --------------------------------------------------------------------------------------


def accounts_selecting(
    accounts: Mapping[str, BillingAccount], labels: Mapping[str, str]
) -> list[str]:
    """The BillingAccounts whose ``namespaceSelector`` selects ``labels``, sorted by name.

    The first pays; an empty selector selects nothing (an account must name its tenants).
    """
    return [
        name
        for name in sorted(accounts)
        if selects(accounts[name].spec.namespace_selector, labels, empty_selects_all=False)
    ]


def billed_namespaces(
    accounts: Mapping[str, BillingAccount], namespaces: Mapping[str, Mapping[str, str]]
) -> dict[str, list[str]]:
    """Account → the namespaces it pays for (those it is the first by name to select)."""
    out: dict[str, list[str]] = {name: [] for name in accounts}
    for namespace in sorted(namespaces):
        selecting = accounts_selecting(accounts, namespaces[namespace])
        if selecting:
            out[selecting[0]].append(namespace)
    return out


def ledgers(
    leases: Iterable[ComputeLease],
    placements: Mapping[str, Iterable[LeasePlacement]],
    epochs: Sequence[SettlementEpoch] = (),
) -> dict[str, Ledger]:
    """Every account's :class:`Ledger` from the leases and their placements (by lease uid).

    Burn: the live placements of leases that neither their tenant suspended nor are being
    deleted (a lease the hub suspended for payment counts: its burn is what a top-up must
    cover). Unsettled: ``status.usage`` amounts by their ``billingAccount``, but those of
    confirmed epochs (a lease may show them until metering folds them): they are counted as
    committed leaves instead (:func:`committed_leaves`), never twice; plus the usage deleted
    leases handed over to epochs not settled yet (``status.departed``).
    """
    burn: dict[str, int] = {}
    unsettled = departed_unsettled(epochs)
    confirmed = confirmed_epochs(epochs)
    for lease in leases:
        for usage in (lease.status.usage if lease.status else None) or ():
            if usage.epoch_id in confirmed:
                continue
            account = usage.billing_account
            unsettled[account] = unsettled.get(account, 0) + parse_units(usage.amount)
        if lease.spec.suspend or lease.metadata.deletion_timestamp is not None:
            continue
        for placement in placements.get(str(lease.metadata.uid), ()):
            if placement.metadata.deletion_timestamp is not None:
                continue
            account = placement.spec.billing_account
            cost = placement.spec.replicas * locked_price(placement)
            burn[account] = burn.get(account, 0) + cost
    return {
        name: Ledger(burn.get(name, 0), unsettled.get(name, 0))
        for name in sorted(set(burn) | set(unsettled))
    }


# --------------------------------------------------------------------------------------
# The account
# --------------------------------------------------------------------------------------


def needed(burn_per_hour: int, horizon_seconds: int) -> int:
    """Base units the escrow must hold to pay ``burn_per_hour`` for the horizon (rounded up)."""
    return -(-burn_per_hour * horizon_seconds // 3600)


def _stamp(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _owed(status: BillingAccountStatus) -> list[tuple[str, int]]:
    """What the escrow already owes, as recorded in ``status``: (what, base units)."""
    return [
        ("unsettled", parse_units(status.accrued_unsettled or "0")),
        ("committed unclaimed", parse_units(status.committed_unclaimed or "0")),
        ("pending withdrawal", parse_units(status.pending_withdrawal or "0")),
    ]


def _message(status: BillingAccountStatus, settings: PaymentSettings) -> str:
    """The PaymentOK message of an account that was read at least once."""
    balance = parse_units(status.escrow_balance or "0")
    burn = parse_units(status.burn_per_hour or "0")
    need = needed(burn, settings.horizon_seconds)
    owed = _owed(status)
    available = balance - sum(amount for _, amount in owed)
    # unsettled is always named; the other two only when there is some
    less = ", ".join(
        f"{what} {format_units(amount)}" for what, amount in owed if amount or what == "unsettled"
    )
    head = f"escrow {format_units(balance)} less {less} leaves {format_units(available)}"
    projection = f"{settings.horizon_seconds}s of the projected burn of {format_units(burn)}/h"
    short = format_units(need - available)
    grace_end = status.grace_ends_at.isoformat() if status.grace_ends_at else "?"
    if status.standing == "Covered":
        message = f"{head}, which covers {format_units(need)} ({projection})"
    elif status.standing == "Low":
        message = (
            f"{head}, short of {format_units(need)} ({projection}); the leases are suspended"
            f" after {grace_end} unless at least {short} is deposited"
        )
    else:
        message = (
            f"{head}, short of {format_units(need)} ({projection}); the grace ended at"
            f" {grace_end}: the leases are suspended until at least {short} is deposited"
        )
    if status.balance_stale:
        checked = status.balance_checked_at.isoformat() if status.balance_checked_at else "?"
        message += (
            f"; balance stale: the chain could not be read since {checked}, these are the"
            " last known figures and no lease is suspended on a stale read"
        )
    return message


_REASONS: dict[Standing, str] = {
    "Covered": "EscrowCovers",
    "Low": "InsufficientEscrow",
    "Suspended": "PaymentSuspended",
}


def assess(
    account: BillingAccount,
    *,
    reading: Reading,
    ledger: Ledger,
    namespaces: Sequence[str],
    settings: PaymentSettings,
    now: datetime,
) -> BillingAccountStatus:
    """The account's status after one balance read (the module docstring's rules).

    Args:
        account: The account as last seen (its status is the previous assessment).
        reading: This round's balance read.
        ledger: Its leases' burn and unsettled usage now.
        namespaces: The namespaces it pays for.
        settings: Horizon and grace.
        now: The hub's clock.
    """
    now = _stamp(now)
    previous = account.status or BillingAccountStatus()
    generation = account.metadata.generation
    status = previous.model_copy(
        update={"namespaces": list(namespaces), "observed_generation": generation}
    )
    if reading.balance is None:
        status = status.model_copy(update={"balance_stale": True})
        if previous.standing is None:
            return _with_condition(
                status,
                "Unknown",
                "BalanceUnknown",
                f"the escrow balance of {account.spec.address} could not be read yet"
                f" ({reading.error or 'error'}); no lease is suspended on an unknown balance",
                now=now,
            )
        reason = _REASONS[previous.standing]
        ok: ConditionStatus = "True" if previous.standing == "Covered" else "False"
        return _with_condition(status, ok, reason, _message(status, settings), now=now)

    available = (
        reading.balance
        - ledger.unsettled
        - reading.committed_unclaimed
        - reading.pending_withdrawal
    )
    covered = available >= needed(ledger.burn_per_hour, settings.horizon_seconds)
    standing: Standing = "Covered"
    low_since: datetime | None = None
    if not covered:
        low_since = previous.low_since or now
        grace_over = now >= low_since + timedelta(seconds=settings.grace_seconds)
        standing = "Suspended" if grace_over or previous.standing == "Suspended" else "Low"
    status = status.model_copy(
        update={
            "standing": standing,
            "escrow_balance": format_units(reading.balance),
            "accrued_unsettled": format_units(ledger.unsettled),
            "committed_unclaimed": _optional_units(reading.committed_unclaimed),
            "pending_withdrawal": _optional_units(reading.pending_withdrawal),
            "burn_per_hour": format_units(ledger.burn_per_hour),
            "balance_checked_at": now,
            "balance_stale": None,
            "low_since": low_since,
            "grace_ends_at": (
                low_since + timedelta(seconds=settings.grace_seconds) if low_since else None
            ),
        }
    )
    ok = "True" if covered else "False"
    return _with_condition(status, ok, _REASONS[standing], _message(status, settings), now=now)


def _optional_units(amount: int) -> str | None:
    return format_units(amount) if amount else None


def _with_condition(
    status: BillingAccountStatus,
    ok: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
) -> BillingAccountStatus:
    conditions = set_condition(
        status.conditions,
        type_=PAYMENT_OK,
        status=ok,
        reason=reason,
        message=message,
        observed_generation=status.observed_generation,
        now=now,
    )
    return status.model_copy(update={"conditions": conditions})


def _comparable(status: BillingAccountStatus | None) -> dict[str, object]:
    data = status.to_api() if status is not None else {}
    data.pop("balanceCheckedAt", None)
    for condition in data.get("conditions") or ():
        condition.pop("lastTransitionTime", None)
    return data


def status_due(
    current: BillingAccountStatus | None, desired: BillingAccountStatus, *, now: datetime
) -> bool:
    """Whether ``desired`` is worth writing.

    It is when anything but ``balanceCheckedAt`` changed, or when that alone is older than
    :data:`CHECKED_REFRESH_SECONDS` (bounded writes while nothing moves).
    """
    if _comparable(current) != _comparable(desired):
        return True
    checked = current.balance_checked_at if current else None
    fresh = desired.balance_checked_at
    if fresh is None or fresh == checked:
        return False
    return checked is None or (now - checked).total_seconds() >= CHECKED_REFRESH_SECONDS


# --------------------------------------------------------------------------------------
# The lease
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeasePayment:
    """A lease's payment state for one plan step."""

    gate: Gate
    """Its ``PaymentOK`` condition."""
    suspended_at: datetime | None
    """``status.paymentSuspendedAt`` after this step (``None``: not suspended for payment)."""
    ready: Gate | None = None
    """The ``Ready`` condition while the hub keeps it suspended for payment."""

    @property
    def suspended(self) -> bool:
        """Whether the hub suspends the lease for payment in this step."""
        return self.suspended_at is not None


def _overlap(namespace: str, selecting: Sequence[str]) -> str:
    if len(selecting) < 2:
        return ""
    return (
        f"; BillingAccounts {', '.join(selecting)} all select namespace {namespace}:"
        f" {selecting[0]}, the first by name, pays"
    )


def lease_payment(
    lease: ComputeLease,
    *,
    selecting: Sequence[str],
    status: BillingAccountStatus | None,
    guard: bool,
    now: datetime,
) -> LeasePayment:
    """The lease's ``PaymentOK`` and whether the hub suspends it.

    Args:
        lease: The lease as served.
        selecting: The BillingAccounts selecting its namespace, sorted (the first pays).
        status: The status of the first (the guard's last assessment), if any.
        guard: Whether the payment guard runs (``--chain-rpc`` given).
        now: The hub's clock.

    Without the guard the lease is never suspended for payment. With it, it follows its
    account's standing: ``Suspended`` suspends it, ``Covered`` and ``Low`` resume it, and an
    account never read (or a missing account) keeps what the lease last had.
    """
    namespace = str(lease.metadata.namespace)
    current = lease.status.payment_suspended_at if lease.status else None
    if not selecting:
        return LeasePayment(
            Gate(
                PAYMENT_OK,
                False,
                "NoBillingAccount",
                f"no BillingAccount selects namespace {namespace}; ask the hub admin to create"
                " one whose namespaceSelector matches it",
            ),
            current if guard else None,
        )
    name = selecting[0]
    overlap = _overlap(namespace, selecting)
    billed = f"billed to BillingAccount {name}"
    if not guard:
        return LeasePayment(Gate(PAYMENT_OK, True, "BillingAccountFound", billed + overlap), None)
    condition = get_condition(status.conditions if status else None, PAYMENT_OK)
    if status is None or status.standing is None or condition is None:
        why = f": {condition.message}" if condition is not None else ""
        gate = Gate(
            PAYMENT_OK,
            True,
            "BalanceNotRead",
            f"{billed}; its escrow balance has not been read yet{why}" + overlap,
        )
        return LeasePayment(gate, current, _ready(current, gate) if current else None)
    gate = Gate(
        PAYMENT_OK,
        status.standing == "Covered",
        _REASONS[status.standing],
        f"{billed}: {lease_message(status, condition.message)}" + overlap,
    )
    if status.standing != "Suspended":
        return LeasePayment(gate, None)
    suspended_at = current or _stamp(now)
    return LeasePayment(gate, suspended_at, _ready(suspended_at, gate))


def lease_message(status: BillingAccountStatus, message: str) -> str:
    """What a lease says of its account's standing (``message``: the account's PaymentOK).

    A covered account's figures are left out: they move with every metering report, and the
    leases' status would be rewritten each time (``kubectl get billingaccount`` has them).
    Short of the horizon, the lease carries the figures: balance, burn and horizon.
    """
    if status.standing != "Covered":
        return message
    covered = "its escrow covers the projected burn for the payment horizon"
    if status.balance_stale:
        checked = status.balance_checked_at.isoformat() if status.balance_checked_at else "?"
        covered += f" (balance stale: last read at {checked})"
    return covered


def _ready(suspended_at: datetime, gate: Gate) -> Gate:
    return Gate(
        "Ready",
        False,
        "PaymentSuspended",
        f"suspended by the hub for payment since {suspended_at.isoformat()}: {gate.message}",
    )


__all__ = [
    "CHECKED_REFRESH_SECONDS",
    "PAYMENT_OK",
    "LeasePayment",
    "Ledger",
    "PaymentSettings",
    "Reading",
    "accounts_selecting",
    "assess",
    "billed_namespaces",
    "lease_message",
    "lease_payment",
    "ledgers",
    "needed",
    "status_due",
]
