"""Per-provider proof documents (pure): what a provider reads to claim with its own credentials.

A SettlementEpoch lists every (account, provider) amount, so providers' agents cannot read it.
Once an epoch is ``Confirmed``, the hub writes for each provider with a leaf in it a ConfigMap
:func:`claims_name` (``kommons-claims-<epochId>``) in that provider's hub namespace
``kommons-provider-<name>``, the one namespace its agent credentials reach. It holds a
:class:`~kommons.api.ProviderClaims` as JSON under :data:`DATA_KEY`: the epoch id, root,
chain id and contract address, and only that provider's leaves with their proofs.

- **Written** by the settlement loop one step after the epoch is Confirmed (then the root is on
  chain and every leaf can be claimed), by server-side apply (idempotent); the epoch's
  ``status.claimsPublishedAt`` records that every document was written, so each is written once.
- **Owned** by its SettlementEpoch (owner reference): deleted with it by the garbage collector.
- **Read-only** for the agent: RBAC ``get``/``list`` of ConfigMaps in its own namespace, and the
  admission policy ``kommons-agent-claims`` refuses any agent write of a ``kommons-claims-*``
  ConfigMap; another provider's namespace is out of its RBAC.
- **Checked** by ``kommons claim`` before sending: every proof against the document's root
  (:func:`claim_items`), and the chain id against the RPC's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kommons.api import ClaimLeaf, ProviderClaims, SettlementEpoch
from kommons.api_names import (
    API_VERSION,
    CLAIMS_CONFIGMAP_PREFIX,
    LABEL_MANAGED_BY,
    LABEL_PROVIDER,
    MANAGER,
    PREFIX,
    provider_namespace,
)
from kommons.money import DEFAULT_DECIMALS, format_units
from kommons.settlement.claims import ClaimError, ClaimItem, claims_for
from kommons.settlement.merkle import LeafValue, verify

__all__ = [
    "DATA_KEY",
    "LABEL_CLAIMS_EPOCH",
    "PUBLISH_PER_STEP",
    "ChainIdentity",
    "Publication",
    "claim_items",
    "claims_configmap",
    "claims_name",
    "needs_publication",
    "parse_claims_configmap",
    "plan_publications",
    "provider_claims",
]

JSON = dict[str, Any]

DATA_KEY = "claims.json"
"""The ConfigMap key holding the :class:`~kommons.api.ProviderClaims` JSON."""
LABEL_CLAIMS_EPOCH = f"{PREFIX}/claims-epoch"
"""On a claims ConfigMap: the epoch id it is for."""
PUBLISH_PER_STEP = 20
"""Epochs published per loop step at most (a hub upgraded under many confirmed epochs catches
up over several steps instead of in one long one)."""


def claims_name(epoch_id: int) -> str:
    """The claims ConfigMap of an epoch (in each paid provider's hub namespace)."""
    return f"{CLAIMS_CONFIGMAP_PREFIX}{epoch_id}"


@dataclass(frozen=True)
class ChainIdentity:
    """Which chain and contract an epoch's root is committed on (written into the documents)."""

    chain_id: int | None
    settlement_address: str | None


@dataclass(frozen=True)
class Publication:
    """What to write for one Confirmed epoch: its claims ConfigMaps, then the status mark."""

    epoch_id: int
    configmaps: tuple[JSON, ...]
    """One per provider with a leaf (none for an epoch without leaves)."""
    problem: str | None = None
    """Why nothing can be published (the epoch's proofs do not verify); then nothing is written."""


def needs_publication(epoch: SettlementEpoch) -> bool:
    """A Confirmed epoch whose claims have not been written yet."""
    status = epoch.status
    return status is not None and status.phase == "Confirmed" and status.claims_published_at is None


def _leaf(item: ClaimItem, *, decimals: int) -> ClaimLeaf:
    return ClaimLeaf(
        billing_account=item.billing_account,
        provider=item.provider,
        payer=item.payer,
        payee=item.payee,
        amount=format_units(item.amount, decimals=decimals),
        amount_units=str(item.amount),
        proof=list(item.proof),
    )


def provider_claims(
    epoch: SettlementEpoch, chain: ChainIdentity, *, decimals: int = DEFAULT_DECIMALS
) -> list[ProviderClaims]:
    """One document per provider named by a leaf of ``epoch``, sorted by provider name.

    A leaf shared by several providers (one payout address, ``prov-a,prov-b``) is in each of
    their documents: any of them may claim it (the contract pays it once, to the address).

    Raises:
        ClaimError: the epoch is not Confirmed, or a proof does not verify against its root.
    """
    status = epoch.status
    if status is None or not status.leaves:
        return []
    items = claims_for(epoch, decimals=decimals)  # every leaf, proofs checked or rebuilt
    by_provider: dict[str, list[ClaimLeaf]] = {}
    for item in items:
        for name in item.provider.split(","):
            by_provider.setdefault(name, []).append(_leaf(item, decimals=decimals))
    return [
        ProviderClaims(
            epoch_id=epoch.spec.epoch_id or 0,
            provider=name,
            root=status.root or "",
            chain_id=chain.chain_id,
            settlement_address=chain.settlement_address,
            leaves=leaves,
        )
        for name, leaves in sorted(by_provider.items())
    ]


def claims_configmap(claims: ProviderClaims, epoch: SettlementEpoch) -> JSON:
    """The ConfigMap holding ``claims`` in its provider's hub namespace, owned by ``epoch``."""
    owner = {
        "apiVersion": API_VERSION,
        "kind": SettlementEpoch.KIND,
        "name": epoch.metadata.name,
        "uid": epoch.metadata.uid,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": claims_name(claims.epoch_id),
            "namespace": provider_namespace(claims.provider),
            "labels": {
                LABEL_MANAGED_BY: MANAGER,
                LABEL_PROVIDER: claims.provider,
                LABEL_CLAIMS_EPOCH: str(claims.epoch_id),
            },
            "ownerReferences": [owner] if epoch.metadata.uid else [],
        },
        "data": {DATA_KEY: claims.model_dump_json(by_alias=True, exclude_none=True, indent=1)},
    }


def plan_publications(
    epochs: Iterable[SettlementEpoch],
    chain: ChainIdentity,
    *,
    decimals: int = DEFAULT_DECIMALS,
    limit: int = PUBLISH_PER_STEP,
) -> list[Publication]:
    """The claims to write for the lowest ``limit`` epochs that :func:`needs_publication`."""
    due = sorted((e for e in epochs if needs_publication(e)), key=lambda e: e.spec.epoch_id or 0)
    out = []
    for epoch in due[:limit]:
        epoch_id = epoch.spec.epoch_id or 0
        try:
            documents = provider_claims(epoch, chain, decimals=decimals)
        except ClaimError as exc:
            out.append(Publication(epoch_id, (), problem=str(exc)))
            continue
        out.append(Publication(epoch_id, tuple(claims_configmap(d, epoch) for d in documents)))
    return out


def parse_claims_configmap(body: Mapping[str, Any]) -> ProviderClaims:
    """The document in a claims ConfigMap read from the hub.

    Raises:
        ClaimError: the ConfigMap has no :data:`DATA_KEY` or it is not a ProviderClaims.
    """
    meta = body.get("metadata") or {}
    where = f"ConfigMap {meta.get('namespace')}/{meta.get('name')}"
    text = (body.get("data") or {}).get(DATA_KEY)
    if text is None:
        raise ClaimError(f"{where} has no {DATA_KEY} key: not a Kommons claims document")
    try:
        return ProviderClaims.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ClaimError(f"{where}: {DATA_KEY} is not a claims document: {exc}") from exc


def claim_items(claims: ProviderClaims, *, payee: str | None = None) -> list[ClaimItem]:
    """The leaves of ``claims`` (those paying ``payee`` only, if given), each proof verified.

    Raises:
        ClaimError: a proof does not verify against the document's root (nothing is sent).
    """
    items = []
    for leaf in claims.leaves:
        if payee is not None and leaf.payee.lower() != payee.lower():
            continue
        value = LeafValue(claims.epoch_id, leaf.payer, leaf.payee, int(leaf.amount_units))
        if not verify(claims.root, value, leaf.proof):
            raise ClaimError(
                f"the claims of {claims.provider} for epoch {claims.epoch_id}: the proof of"
                f" {leaf.billing_account}/{leaf.provider} does not verify against the root"
                f" {claims.root}"
            )
        items.append(
            ClaimItem(
                claims.epoch_id,
                leaf.billing_account,
                leaf.provider,
                value.payer,
                value.provider,
                value.amount,
                tuple(leaf.proof),
            )
        )
    return items
