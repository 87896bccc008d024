"""The settlement loop: epochs created, sealed, committed on chain once each, claimed.

Runs in the acting hub only (started with the hub's workers, so under the leader). Every step
re-reads everything it needs from the API server and the chain; nothing is remembered between
steps, so a hub killed at any point resumes where the objects say. One step:

1. **Create** the epochs missing up to "now" (:func:`~kommons.settlement.epochs.epochs_to_create`).
2. **Freeze** each open epoch ``seal_delay_seconds`` after its end (and, after a hub restart
   or takeover, not before ``seal_delay_seconds`` since this loop's first step, so the agents'
   reports written while no hub acted are ingested first): phase ``Sealed``, no root yet.
   Metering stops writing usage for it (it writes only for ``Open`` epochs).
3. **Seal** a frozen epoch one step later (usage settled): leaves, proofs, root, total
   (:func:`~kommons.settlement.sealing.seal_epoch`) from the leases' usage and the usage
   deleted leases handed over (``status.departed``), one status write conditional on the
   epoch's resourceVersion as read (a hand-over meanwhile: sealed again next step).
4. **Commit** the lowest sealed epoch not settled yet, as
   :func:`~kommons.settlement.submission.decide_submission` says; a signed commit is recorded
   in the status before it is sent.
5. **Claim** (``--claim-for-providers``) the leaves of confirmed epochs for their providers.
6. **Publish** each provider's leaves and proofs of the epochs confirmed so far, in its hub
   namespace (:func:`~kommons.settlement.proofs.plan_publications`): what ``kommons claim``
   reads with the provider's own credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from kommons.api import BillingAccount, ComputeLease, Provider, SettlementEpoch
from kommons.api_names import LABEL_PROVIDER
from kommons.hub.edge import parse
from kommons.kube import Conflict, Kube, KubeError, NotFound
from kommons.kube import resources as r
from kommons.metrics import HubMetrics
from kommons.money import DEFAULT_DECIMALS, format_units, parse_units
from kommons.settlement.chain import ChainError, ContractRevert, SettlementChain, SignedTx
from kommons.settlement.charges import epoch_charges
from kommons.settlement.claims import ClaimError, ClaimItem, claims_for
from kommons.settlement.epochs import EpochWindow, epoch_name, epochs_to_create, epochs_to_seal
from kommons.settlement.facts import read_facts
from kommons.settlement.proofs import (
    ChainIdentity,
    Publication,
    needs_publication,
    plan_publications,
)
from kommons.settlement.sealing import Seal, SealError, seal_epoch
from kommons.settlement.submission import (
    Action,
    Confirm,
    Fail,
    Nothing,
    Resend,
    SubmissionState,
    Wait,
    decide_submission,
)

if TYPE_CHECKING:
    from kommons.hub.handlers import HubOptions

log = logging.getLogger("kommons.hub.settlement")
JSON = dict[str, Any]
FINAL = ("Confirmed", "Failed")
TOO_LARGE = (413, 422)
"""HTTP statuses of an object over the API server's size limits (a ConfigMap holds 1 MiB)."""
Parsed = TypeVar("Parsed", ComputeLease, BillingAccount, Provider)


@dataclass(frozen=True)
class SettlementOptions:
    """How the settlement loop runs (hub options ``--epoch-seconds`` ... )."""

    epoch_seconds: int = 3600
    """Length of an epoch."""
    seal_delay_seconds: int = 300
    """Seconds after an epoch's end before it is sealed (the agents' last reports come in)."""
    claim_for_providers: bool = False
    """Claim every leaf of a confirmed epoch on its provider's behalf (with the operator key)."""
    confirmations: int = 1
    """Blocks (the commit's included) before an epoch is Confirmed (``--chain-confirmations``)."""
    step_seconds: float = 2.0
    """Pause between two steps."""
    decimals: int = DEFAULT_DECIMALS
    """Fractional digits of the settlement token."""

    def __post_init__(self) -> None:
        if self.epoch_seconds < 1:
            raise ValueError(f"epoch_seconds: must be >= 1, got {self.epoch_seconds}")
        if self.seal_delay_seconds < 0:
            raise ValueError(f"seal_delay_seconds: must be >= 0, got {self.seal_delay_seconds}")
        if self.confirmations < 1:
            raise ValueError(f"confirmations: must be >= 1, got {self.confirmations}")


def _window(epoch: SettlementEpoch) -> EpochWindow:
    status = epoch.status
    return EpochWindow(
        epoch.spec.epoch_id or 0,
        epoch.spec.start,
        epoch.spec.end,
        status.phase if status is not None else None,
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def submission_state(epoch: SettlementEpoch, *, decimals: int) -> SubmissionState:
    """The part of an epoch's status the commit decision reads."""
    status = epoch.status
    if status is None:
        return SubmissionState(epoch.spec.epoch_id or 0, "Open")
    return SubmissionState(
        epoch_id=epoch.spec.epoch_id or 0,
        phase=status.phase or "Open",
        root=status.root,
        total=parse_units(status.total, decimals=decimals) if status.total is not None else None,
        leaf_count=status.leaf_count or 0,
        tx_hash=status.tx_hash,
        tx_nonce=status.tx_nonce,
        tx_hashes=tuple(status.tx_hashes or ()),
    )


def seal_status(seal: Seal, now: datetime, *, decimals: int) -> JSON:
    """The status patch of a sealed epoch (leaves with proofs, root, total)."""
    total = format_units(seal.total, decimals=decimals)
    leaves = [
        {
            "billingAccount": leaf.billing_account,
            "payer": leaf.payer,
            "provider": leaf.provider,
            "payee": leaf.payee,
            "amount": format_units(leaf.amount, decimals=decimals),
            "amountUnits": str(leaf.amount),
            **({"proof": list(leaf.proof)} if leaf.proof is not None else {}),
        }
        for leaf in seal.leaves
    ]
    return {
        "phase": "Sealed",
        "root": seal.root,
        "total": total,
        "leaves": leaves,
        "leafCount": len(leaves),
        "sealedAt": _stamp(now),
        "message": f"sealed: {len(leaves)} leaves, total {total}"
        + (f"; not settled (written off): {'; '.join(seal.excluded)}" if seal.excluded else ""),
    }


def read_epochs(kube: Kube) -> list[SettlementEpoch]:
    """Every SettlementEpoch that parses (one that does not is logged and left out)."""
    out = []
    for body in kube.list(r.SETTLEMENT_EPOCHS):
        try:
            out.append(parse(SettlementEpoch, body))
        except ValidationError as exc:
            log.warning("SettlementEpoch %s ignored: %s", body["metadata"]["name"], exc)
    return out


def _parse_all(model: type[Parsed], bodies: list[JSON]) -> list[Parsed]:
    """Every object as ``model``; one that does not parse stops the seal (never billed short)."""
    out = []
    for body in bodies:
        try:
            out.append(parse(model, body))
        except ValidationError as exc:
            meta = body.get("metadata") or {}
            where = "/".join(x for x in (meta.get("namespace"), meta.get("name")) if x)
            raise SealError(f"{body.get('kind')} {where} cannot be read: {exc}") from exc
    return out


class SettlementLoop:
    """Runs :meth:`step` every ``step_seconds`` until cancelled (in the acting hub only)."""

    def __init__(
        self,
        kube: Kube,
        chain: SettlementChain,
        options: SettlementOptions,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: HubMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.chain = chain
        self.options = options
        self.clock = clock
        self.metrics = metrics or HubMetrics()
        self._refused: dict[tuple[int, str, str], str] = {}
        """Claims refused, by (epoch, account, provider) → reason: logged once each."""
        self.acting_since: datetime | None = None
        """The clock at this loop's first step: no epoch is frozen before the seal delay
        has passed since then as well (see :func:`epochs_to_seal`)."""
        self._chain_id: int | None = None
        """The chain's id, read once (for the claims documents)."""

    async def run(self) -> None:
        """Step forever (cancel to stop); a failed step is logged and retried."""
        log.info(
            "settlement loop: epochs of %ss, sealed %ss after their end, %d confirmation(s),"
            " claims for providers %s",
            self.options.epoch_seconds,
            self.options.seal_delay_seconds,
            self.options.confirmations,
            "on" if self.options.claim_for_providers else "off",
        )
        while True:
            try:
                await asyncio.to_thread(self.step)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("settlement step failed; retrying")
            await asyncio.sleep(self.options.step_seconds)

    # --- one step ----------------------------------------------------------------------

    def epochs(self) -> list[SettlementEpoch]:
        """Every SettlementEpoch with an id, in increasing id order."""
        numbered = [e for e in read_epochs(self.kube) if e.spec.epoch_id is not None]
        return sorted(numbered, key=lambda e: e.spec.epoch_id or 0)

    def step(self) -> None:
        """One pass: create, freeze, seal, commit, claim, publish the providers' claims."""
        now = self.clock()
        if self.acting_since is None:
            self.acting_since = now
        epochs = self.epochs()
        self._create(epochs, now)
        windows = [_window(e) for e in epochs]
        due = epochs_to_seal(
            windows, now, self.options.seal_delay_seconds, acting_since=self.acting_since
        )
        for epoch_id in due:
            self._patch(epoch_id, {"phase": "Sealed", "sealedAt": _stamp(now), "message": None})
            log.info("epoch %d frozen: usage no longer changes", epoch_id)
        for epoch in epochs:
            status = epoch.status
            if status is not None and status.phase == "Sealed" and status.root is None:
                self._seal(epoch, now)
        self._commit(self.epochs(), now)
        if self.options.claim_for_providers:
            for epoch in epochs:
                if epoch.status is not None and epoch.status.phase == "Confirmed":
                    self._claim(epoch)
        self._publish_claims(epochs, now)  # last: a failed write here delays nothing else

    def _create(self, epochs: Sequence[SettlementEpoch], now: datetime) -> None:
        first_id = 1
        if not epochs:  # the very first epoch follows what the contract has committed
            try:
                first_id = self.chain.last_epoch_id() + 1
            except ChainError as exc:
                self.metrics.chain_errors.labels(loop="settlement").inc()
                log.warning("cannot open the first epoch: chain unreachable (%s)", exc)
                return
        new = epochs_to_create(
            [_window(e) for e in epochs], now, self.options.epoch_seconds, first_id=first_id
        )
        for window in new:
            body: JSON = {
                "apiVersion": r.SETTLEMENT_EPOCHS.api_version,
                "kind": "SettlementEpoch",
                "metadata": {"name": epoch_name(window.epoch_id)},
                "spec": {
                    "epochId": window.epoch_id,
                    "start": _stamp(window.start),
                    "end": _stamp(window.end),
                },
            }
            try:
                self.kube.create(r.SETTLEMENT_EPOCHS, body)
            except Conflict:
                continue
            self._patch(window.epoch_id, {"phase": "Open"})
            log.info(
                "epoch %d opened: %s .. %s",
                window.epoch_id,
                _stamp(window.start),
                _stamp(window.end),
            )

    def _patch(self, epoch_id: int, status: JSON, *, resource_version: str | None = None) -> None:
        """Merge ``status`` into the epoch's.

        With ``resource_version``, only over that version: raises :class:`Conflict` when the
        epoch changed since.
        """
        body: JSON = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        self.kube.patch(r.SETTLEMENT_EPOCHS, epoch_name(epoch_id), body, subresource="status")

    def _seal(self, epoch: SettlementEpoch, now: datetime) -> None:
        epoch_id = epoch.spec.epoch_id or 0
        decimals = self.options.decimals
        try:
            leases = _parse_all(ComputeLease, self.kube.list(r.COMPUTE_LEASES))
            accounts = _parse_all(BillingAccount, self.kube.list(r.BILLING_ACCOUNTS))
            providers = _parse_all(Provider, self.kube.list(r.PROVIDERS))
            payers = {a.metadata.name or "": a.spec.address for a in accounts}
            payees = {p.metadata.name or "": p.spec.payout_address for p in providers}
            departed = (epoch.status.departed if epoch.status else None) or ()
            charges = epoch_charges(leases, epoch_id, departed=departed, decimals=decimals)
            seal = seal_epoch(epoch_id, charges, payers, payees)
        except (SealError, ValueError) as exc:
            message = str(exc)
            if epoch.status is None or epoch.status.message != message:
                log.error("%s", message)
                self._patch(epoch_id, {"message": message})
            return
        for reason in seal.excluded:
            log.warning("epoch %d: not settled (written off): %s", epoch_id, reason)
        try:  # only over the epoch as read: a lease's usage handed over since is in the next try
            self._patch(
                epoch_id,
                seal_status(seal, now, decimals=decimals),
                resource_version=epoch.metadata.resource_version,
            )
        except Conflict:
            log.info("epoch %d changed while it was sealed (a lease went); sealed again", epoch_id)
            return
        log.info(
            "epoch %d sealed: %d leaves, total %s, root %s",
            epoch_id,
            len(seal.leaves),
            format_units(seal.total, decimals=decimals),
            seal.root,
        )

    def _commit(self, epochs: Sequence[SettlementEpoch], now: datetime) -> None:
        unsettled = [
            e for e in epochs if e.status is not None and e.status.phase in ("Sealed", "Submitted")
        ]
        if not unsettled:
            return
        epoch = unsettled[0]
        state = submission_state(epoch, decimals=self.options.decimals)
        blocked = [
            e.spec.epoch_id
            for e in epochs
            if (e.spec.epoch_id or 0) < state.epoch_id
            and (e.status is None or e.status.phase not in FINAL)
        ]
        facts = None
        if state.root is not None and state.leaf_count > 0 and not blocked:
            try:
                facts = read_facts(self.chain, state)
            except ChainError as exc:
                self.metrics.chain_errors.labels(loop="settlement").inc()
                log.warning("epoch %d: chain unreachable (%s); retrying", state.epoch_id, exc)
        action = decide_submission(
            state,
            facts,
            confirmations=self.options.confirmations,
            earlier_unsettled=blocked[0] if blocked else None,
        )
        self._execute(epoch, state, action, now)

    def _execute(
        self, epoch: SettlementEpoch, state: SubmissionState, action: Action, now: datetime
    ) -> None:
        n = state.epoch_id
        status = epoch.status
        previous = status.message if status is not None else None
        if isinstance(action, Nothing):
            return
        if isinstance(action, Wait):
            patch: JSON = {"message": action.reason}
            if action.block_number is not None:
                patch |= {"blockNumber": action.block_number}
            if action.confirmations is not None:
                patch |= {"confirmations": action.confirmations}
            if previous != action.reason:
                log.info("epoch %d: %s", n, action.reason)
                self._patch(n, patch)
            return
        if isinstance(action, Fail):
            log.error("epoch %d FAILED: %s", n, action.reason)
            self._patch(n, {"phase": "Failed", "message": action.reason})
            self.metrics.settlement_transactions.labels(kind="commit", outcome="failed").inc()
            return
        if isinstance(action, Confirm):
            log.info("epoch %d confirmed: %s", n, action.reason)
            self._observe_confirmed(epoch, action.tx_hash or state.tx_hash, now)
            self._patch(
                n,
                {
                    "phase": "Confirmed",
                    "message": action.reason,
                    "txHash": action.tx_hash or state.tx_hash,
                    "blockNumber": action.block_number,
                    "confirmations": action.confirmations,
                    "confirmedAt": _stamp(now),
                },
            )
            return
        if isinstance(action, Resend):
            raw = status.raw_tx if status is not None else None
            if raw is None or state.tx_hash is None or state.tx_nonce is None:
                return
            if previous != action.reason:
                log.info("epoch %d: %s", n, action.reason)
                self._patch(n, {"message": action.reason})
            self._send(
                n, SignedTx(hash=state.tx_hash, raw=bytes.fromhex(raw[2:]), nonce=state.tx_nonce)
            )
            return
        if state.root is None or state.total is None:  # decide_submission never signs then
            return
        try:
            tx = self.chain.sign_commit(n, state.root, state.total, nonce=action.nonce)
        except ChainError as exc:
            self.metrics.chain_errors.labels(loop="settlement").inc()
            log.warning("epoch %d: cannot sign the commit (%s); retrying", n, exc)
            return
        # Recorded BEFORE sending: a hub killed between the two finds this transaction.
        self._patch(
            n,
            {
                "phase": "Submitted",
                "txHash": tx.hash,
                "txNonce": tx.nonce,
                "rawTx": "0x" + tx.raw.hex(),
                "txHashes": [*state.tx_hashes, tx.hash],
                "attempts": len(state.tx_hashes) + 1,
                "submittedAt": _stamp(now),
                "message": action.reason,
            },
        )
        log.info("epoch %d: %s: transaction %s (nonce %d)", n, action.reason, tx.hash, tx.nonce)
        self._send(n, tx)

    def _observe_confirmed(
        self, epoch: SettlementEpoch, tx_hash: str | None, now: datetime
    ) -> None:
        """Count a confirmed epoch: time from its end, and its commit's gas (when there is one)."""
        metrics = self.metrics
        metrics.epoch_settle_seconds.observe(max(0.0, (now - epoch.spec.end).total_seconds()))
        if tx_hash is None:
            return  # nothing to commit: no leaf
        metrics.settlement_transactions.labels(kind="commit", outcome="confirmed").inc()
        try:
            receipt = self.chain.receipt(tx_hash)
        except ChainError:
            metrics.chain_errors.labels(loop="settlement").inc()
            return
        if receipt is not None:
            metrics.settlement_gas.labels(kind="commit").observe(receipt.gas_used)

    def _send(self, epoch_id: int, tx: SignedTx) -> None:
        try:
            self.chain.send(tx)
        except ChainError as exc:
            self.metrics.chain_errors.labels(loop="settlement").inc()
            log.warning("epoch %d: sending %s failed (%s); retrying", epoch_id, tx.hash, exc)

    def _chain_identity(self) -> ChainIdentity | None:
        """The chain id (read once) and contract address; None while the chain is unreachable."""
        if self._chain_id is None:
            try:
                self._chain_id = self.chain.chain_id()
            except ChainError as exc:
                self.metrics.chain_errors.labels(loop="settlement").inc()
                log.warning("cannot publish claims: chain unreachable (%s); retrying", exc)
                return None
        return ChainIdentity(self._chain_id, str(self.chain.address))

    def _publish_claims(self, epochs: Sequence[SettlementEpoch], now: datetime) -> None:
        """Write each provider's claims of the confirmed epochs, then mark each epoch."""
        if not any(needs_publication(e) for e in epochs):
            return
        identity = self._chain_identity()
        if identity is None:
            return
        for publication in plan_publications(epochs, identity, decimals=self.options.decimals):
            self._publish(publication, now)

    def _publish(self, publication: Publication, now: datetime) -> None:
        epoch_id = publication.epoch_id
        if publication.problem is not None:
            log.error("epoch %d: cannot publish the claims: %s", epoch_id, publication.problem)
            return
        written = []
        for body in publication.configmaps:
            provider = body["metadata"]["labels"][LABEL_PROVIDER]
            try:
                self.kube.apply(r.CONFIGMAPS, body)
            except NotFound:  # the provider's namespace is gone: it was offboarded
                log.warning(
                    "epoch %d: claims of provider %s not published: no namespace %s",
                    epoch_id,
                    provider,
                    body["metadata"]["namespace"],
                )
                continue
            except KubeError as exc:
                if exc.status not in TOO_LARGE:
                    raise
                log.error(
                    "epoch %d: claims of provider %s not published: too large for a ConfigMap"
                    " (%s); it claims from the SettlementEpoch the hub admin passes along",
                    epoch_id,
                    provider,
                    exc.message,
                )
                continue
            written.append(provider)
        self._patch(epoch_id, {"claimsPublishedAt": _stamp(now)})
        log.info(
            "epoch %d: claims published for %s",
            epoch_id,
            ", ".join(written) if written else "nobody (no leaves)",
        )

    def _claim(self, epoch: SettlementEpoch) -> None:
        status = epoch.status
        if status is None or not status.leaves or status.root is None:
            return
        pending = [i for i, leaf in enumerate(status.leaves) if leaf.claimed is None]
        if not pending:
            return
        epoch_id = epoch.spec.epoch_id or 0
        try:  # every leaf, in the status's order, its proof checked (or rebuilt) against the root
            items = claims_for(epoch, decimals=self.options.decimals)
        except ClaimError as exc:
            log.error("epoch %d: cannot claim for the providers: %s", epoch_id, exc)
            return
        leaves = [leaf.model_dump(by_alias=True, exclude_none=True) for leaf in status.leaves]
        changed = False
        for i in pending:
            item = items[i]
            try:
                receipt = self.chain.claim(
                    epoch_id, item.payer, item.payee, item.amount, list(item.proof)
                )
            except ContractRevert as exc:
                if exc.reason == "AlreadyClaimed":
                    leaves[i]["claimed"] = changed = True
                    continue
                self.metrics.settlement_transactions.labels(kind="claim", outcome="refused").inc()
                self._refused_claim(item, exc.reason)
                if exc.reason != "InsufficientEscrow":  # refused for good: not retried
                    leaves[i]["claimed"] = False
                    changed = True
                continue
            except ChainError as exc:
                self.metrics.chain_errors.labels(loop="settlement").inc()
                log.warning(
                    "epoch %d: claim for %s failed (%s); retrying", epoch_id, item.provider, exc
                )
                break
            self.metrics.settlement_transactions.labels(kind="claim", outcome="confirmed").inc()
            self.metrics.settlement_gas.labels(kind="claim").observe(receipt.gas_used)
            leaves[i]["claimed"] = changed = True
            log.info(
                "epoch %d: claimed %s base units for provider %s from %s",
                epoch_id,
                item.amount,
                item.provider,
                item.billing_account,
            )
        if changed:
            self._patch(epoch_id, {"leaves": leaves})

    def _refused_claim(self, item: ClaimItem, reason: str) -> None:
        key = (item.epoch_id, item.billing_account, item.provider)
        if self._refused.get(key) == reason:
            return
        self._refused[key] = reason
        retry = (
            " (retried: it may succeed after a top-up)" if reason == "InsufficientEscrow" else ""
        )
        log.warning(
            "epoch %d: claim of %d base units for %s from %s refused: %s%s",
            item.epoch_id,
            item.amount,
            item.provider,
            item.billing_account,
            reason,
            retry,
        )


def settlement_loop(
    options: HubOptions, kube: Kube, metrics: HubMetrics | None = None
) -> SettlementLoop | None:
    """The hub's loop from its options; None when there is no chain or no operator key.

    (:func:`kommons.hub.chain_options.log_chain_mode` has said why at start.)
    """
    chain = options.chain
    if chain is None or chain.operator_key_file is None:
        return None
    settings = SettlementOptions(
        epoch_seconds=options.epoch_seconds,
        seal_delay_seconds=options.seal_delay_seconds,
        claim_for_providers=options.claim_for_providers,
        confirmations=chain.confirmations,
    )
    return SettlementLoop(kube, chain.connect(), settings, metrics=metrics)
