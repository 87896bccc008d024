"""Where ``kommons claim`` reads a provider's leaves and proofs from.

Three sources, each ending in claim items whose proofs verified against the root:

- a SettlementEpoch in a file (``--from-file``), passed along by anyone;
- the SettlementEpoch on the hub, for credentials that may read it (hub admins);
- the provider's claims ConfigMap ``kommons-claims-<epochId>`` in its hub namespace, the one a
  provider's own agent credentials may read: with ``--from-provider-claims``, or when reading
  the SettlementEpoch is forbidden and ``--provider`` names the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from kommons.api import SettlementEpoch
from kommons.api_names import provider_namespace
from kommons.kube import Forbidden, NotFound
from kommons.kube import resources as r
from kommons.kube.resources import Resource
from kommons.money import DEFAULT_DECIMALS
from kommons.settlement.claims import ClaimError, ClaimItem, claims_for
from kommons.settlement.proofs import (
    ChainIdentity,
    claim_items,
    claims_name,
    parse_claims_configmap,
)

__all__ = ["ClaimsRead", "HubReader", "read_claims"]

JSON = dict[str, Any]


class HubReader(Protocol):
    """The slice of :class:`kommons.kube.Kube` ``kommons claim`` reads with."""

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        """One object (raises NotFound, Forbidden ...)."""
        ...


@dataclass(frozen=True)
class ClaimsRead:
    """The leaves to claim, where they were read, and the chain they are committed on."""

    items: list[ClaimItem]
    source: str
    """E.g. ``SettlementEpoch epoch-42`` or ``ConfigMap kommons-provider-a/kommons-claims-42``."""
    chain: ChainIdentity
    """Known only from a claims ConfigMap (the hub writes its chain id and contract)."""


def _from_epoch(
    body: object, epoch_id: int, *, provider: str | None, payee: str | None, decimals: int
) -> list[ClaimItem]:
    record = SettlementEpoch.model_validate(body)
    if record.spec.epoch_id != epoch_id:
        raise ClaimError(
            f"the SettlementEpoch read has epochId {record.spec.epoch_id}, not {epoch_id}"
        )
    return claims_for(record, provider=provider, payee=payee, decimals=decimals)


def _from_provider_claims(
    hub: HubReader, epoch_id: int, *, provider: str | None, payee: str | None
) -> ClaimsRead:
    if provider is None:
        raise ClaimError(
            "--provider is needed to read a provider's claims (ConfigMap"
            f" {claims_name(epoch_id)} in its hub namespace kommons-provider-PROVIDER)"
        )
    namespace, name = provider_namespace(provider), claims_name(epoch_id)
    where = f"ConfigMap {namespace}/{name}"
    try:
        body = hub.get(r.CONFIGMAPS, name, namespace)
    except NotFound as exc:
        raise ClaimError(
            f"no {where} on the hub: the hub writes it one step after epoch {epoch_id} is"
            f" Confirmed, and only when {provider} has a leaf in it"
        ) from exc
    document = parse_claims_configmap(body)
    if document.epoch_id != epoch_id or document.provider != provider:
        raise ClaimError(
            f"{where} is for epoch {document.epoch_id} of {document.provider}, not epoch"
            f" {epoch_id} of {provider}"
        )
    identity = ChainIdentity(document.chain_id, document.settlement_address)
    return ClaimsRead(claim_items(document, payee=payee), where, identity)


def read_claims(
    epoch_id: int,
    *,
    hub: HubReader | None,
    from_file: Path | None = None,
    from_provider_claims: bool = False,
    provider: str | None = None,
    payee: str | None = None,
    decimals: int = DEFAULT_DECIMALS,
) -> ClaimsRead:
    """The leaves of ``provider`` (or ``payee``) in epoch ``epoch_id``, proofs verified.

    Args:
        epoch_id: The epoch.
        hub: A client of the hub (``None`` only with ``from_file``).
        from_file: Read the SettlementEpoch from this JSON/YAML file instead of the hub.
        from_provider_claims: Read the provider's claims ConfigMap, not the SettlementEpoch.
        provider: Provider name (needed for the claims ConfigMap).
        payee: Payout address, instead of or with ``provider``.
        decimals: Fractional digits of the token.

    Raises:
        ClaimError: nothing can be read, or a proof does not verify.
        KubeError: the hub refused or failed otherwise.
    """
    unknown = ChainIdentity(None, None)
    if from_file is not None:
        items = _from_epoch(
            yaml.safe_load(from_file.read_text()),
            epoch_id,
            provider=provider,
            payee=payee,
            decimals=decimals,
        )
        return ClaimsRead(items, str(from_file), unknown)
    if hub is None:
        raise ClaimError("no hub to read from: give --kubeconfig or --from-file")
    if from_provider_claims:
        return _from_provider_claims(hub, epoch_id, provider=provider, payee=payee)
    name = f"epoch-{epoch_id}"
    try:
        body = hub.get(r.SETTLEMENT_EPOCHS, name)
    except Forbidden:
        if provider is None:
            raise
        # A provider's own credentials cannot read SettlementEpochs: its claims ConfigMap.
        return _from_provider_claims(hub, epoch_id, provider=provider, payee=payee)
    items = _from_epoch(body, epoch_id, provider=provider, payee=payee, decimals=decimals)
    return ClaimsRead(items, f"SettlementEpoch {name}", unknown)
