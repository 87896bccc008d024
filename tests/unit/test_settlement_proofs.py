"""Per-provider proof documents: computed from a confirmed epoch, written by the loop, read back.

Behaviour matrix:

- provider_claims: one document per provider with a leaf, holding only its leaves, each proof
  verifying against the root; chain id and contract copied in; a leaf shared by two providers
  (one payout address) is in both documents; proofs left out of the status are rebuilt; an
  epoch without leaves gives no document; a tampered leaf raises;
- claims_configmap: ``kommons-claims-<id>`` in ``kommons-provider-<name>``, labelled with the
  provider and epoch, owned by the epoch (its uid), the document round-trips through
  parse_claims_configmap; a ConfigMap without the key or with bad JSON is refused, named;
- plan_publications: only Confirmed epochs without claimsPublishedAt, lowest ids first, at most
  ``limit``; an epoch without leaves is published with no ConfigMap; a tampered one is a
  problem, nothing to write;
- claim_items: every leaf, or those of one payee; a tampered amount or root refuses all;
- the loop's executor: applies each ConfigMap, then marks the epoch; skips a provider whose
  namespace is gone or whose document is too large for a ConfigMap (still marks); writes
  nothing while the chain id cannot be read; leaves a published epoch alone; leaves an epoch
  with a problem unmarked;
- read_claims (``kommons claim``): hub credentials read the SettlementEpoch; a provider's
  (SettlementEpoch forbidden) read its claims ConfigMap, also on request; a missing ConfigMap
  says when the hub writes it; forbidden without --provider stays an error; a document of
  another provider or epoch is refused; submit_claims sends nothing to an RPC serving another
  chain than the document names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kommons.api import SettlementEpoch
from kommons.cli_claim import read_claims
from kommons.hub.settlement_loop import SettlementLoop, SettlementOptions
from kommons.kube import Forbidden, Invalid, NotFound
from kommons.kube.resources import Resource
from kommons.settlement.chain import ChainError, SettlementChain
from kommons.settlement.claims import ClaimError, submit_claims
from kommons.settlement.merkle import LeafValue, verify
from kommons.settlement.proofs import (
    DATA_KEY,
    ChainIdentity,
    claim_items,
    claims_configmap,
    claims_name,
    parse_claims_configmap,
    plan_publications,
    provider_claims,
)
from kommons.settlement.sealing import seal_epoch
from tests.unit.test_settlement_claims import sealed_leaves

JSON = dict[str, Any]
PAYERS = {"acme": "0x" + "a1" * 20, "beta": "0x" + "b2" * 20}
PAYEES = {"prov-a": "0x" + "0a" * 20, "prov-b": "0x" + "0b" * 20, "prov-c": "0x" + "0a" * 20}
CONTRACT = "0x" + "5e" * 20
CHAIN = ChainIdentity(31337, CONTRACT)
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def _epoch(
    epoch_id: int = 3,
    *,
    phase: str = "Confirmed",
    proofs: bool = True,
    published: bool = False,
    charges: dict[tuple[str, str], int] | None = None,
) -> SettlementEpoch:
    if charges is None:
        charges = {("acme", "prov-a"): 3, ("acme", "prov-b"): 5, ("beta", "prov-a"): 7}
    seal = seal_epoch(epoch_id, charges, PAYERS, PAYEES)
    leaves = sealed_leaves(seal, proofs=proofs)
    status: JSON = {"phase": phase, "root": seal.root, "leaves": leaves}
    if published:
        status["claimsPublishedAt"] = "2026-12-02T02:00:00Z"
    return SettlementEpoch.model_validate(
        {
            "metadata": {"name": f"epoch-{epoch_id}", "uid": f"uid-{epoch_id}"},
            "spec": {
                "epochId": epoch_id,
                "start": "2026-12-01T12:00:00Z",
                "end": "2026-12-01T13:00:00Z",
            },
            "status": status,
        }
    )


def _tampered(leaf: int, units: str) -> SettlementEpoch:
    """A confirmed epoch whose ``leaf``-th amount was changed after sealing."""
    epoch = _epoch()
    assert epoch.status is not None
    assert epoch.status.leaves is not None
    epoch.status.leaves[leaf].amount_units = units
    return epoch


# --- the documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("proofs", [True, False])
def test_one_document_per_provider_with_only_its_leaves(proofs: bool) -> None:
    epoch = _epoch(proofs=proofs)
    documents = provider_claims(epoch, CHAIN)
    assert [d.provider for d in documents] == ["prov-a", "prov-b"]
    a, b = documents
    assert sorted((leaf.billing_account, leaf.amount_units) for leaf in a.leaves) == [
        ("acme", "3"),
        ("beta", "7"),
    ]
    assert [(leaf.billing_account, leaf.amount_units) for leaf in b.leaves] == [("acme", "5")]
    assert epoch.status is not None
    for document in documents:
        assert (document.epoch_id, document.root) == (3, epoch.status.root)
        assert (document.chain_id, document.settlement_address) == (31337, CONTRACT)
        for leaf in document.leaves:
            value = LeafValue(3, leaf.payer, leaf.payee, int(leaf.amount_units))
            assert verify(document.root, value, leaf.proof)


def test_a_leaf_shared_by_two_providers_is_in_both_documents() -> None:
    shared = {("acme", "prov-a"): 2, ("acme", "prov-c"): 4, ("beta", "prov-b"): 1}
    documents = {d.provider: d for d in provider_claims(_epoch(charges=shared), CHAIN)}
    assert sorted(documents) == ["prov-a", "prov-b", "prov-c"]
    assert documents["prov-a"].leaves == documents["prov-c"].leaves
    (leaf,) = documents["prov-a"].leaves
    assert (leaf.provider, leaf.amount_units) == ("prov-a,prov-c", "6")


def test_no_leaves_no_document_and_a_tampered_leaf_raises() -> None:
    assert provider_claims(_epoch(charges={}), CHAIN) == []
    with pytest.raises(ClaimError, match="does not verify"):
        provider_claims(_tampered(1, "6"), CHAIN)


def test_the_configmap_is_named_placed_owned_and_round_trips() -> None:
    epoch = _epoch()
    document = provider_claims(epoch, CHAIN)[0]
    body = claims_configmap(document, epoch)
    meta = body["metadata"]
    assert (body["kind"], meta["name"], meta["namespace"]) == (
        "ConfigMap",
        "kommons-claims-3",
        "kommons-provider-prov-a",
    )
    assert claims_name(3) == "kommons-claims-3"
    assert meta["labels"]["kommons.io/provider"] == "prov-a"
    assert meta["labels"]["kommons.io/claims-epoch"] == "3"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kommons.io/v1alpha1",
            "kind": "SettlementEpoch",
            "name": "epoch-3",
            "uid": "uid-3",
        }
    ]
    assert json.loads(body["data"][DATA_KEY])["settlementAddress"] == CONTRACT
    assert parse_claims_configmap(body) == document


@pytest.mark.parametrize(
    ("data", "match"),
    [({}, "has no claims.json key"), ({DATA_KEY: "{not json"}, "is not a claims document")],
)
def test_a_configmap_that_is_no_claims_document_is_refused(data: JSON, match: str) -> None:
    body = {"metadata": {"namespace": "kommons-provider-prov-a", "name": "kommons-claims-3"}}
    with pytest.raises(ClaimError, match=match) as raised:
        parse_claims_configmap({**body, "data": data})
    assert "kommons-provider-prov-a/kommons-claims-3" in str(raised.value)


# --- the plan ----------------------------------------------------------------------------------


def test_only_confirmed_unpublished_epochs_lowest_first_and_bounded() -> None:
    epochs = [
        _epoch(7),
        _epoch(4, phase="Submitted"),
        _epoch(5, published=True),
        _epoch(6, charges={}),
        _epoch(2),
    ]
    plans = plan_publications(epochs, CHAIN, limit=3)
    assert [p.epoch_id for p in plans] == [2, 6, 7]
    assert [len(p.configmaps) for p in plans] == [2, 0, 2]
    assert all(p.problem is None for p in plans)
    assert [p.epoch_id for p in plan_publications(epochs, CHAIN, limit=1)] == [2]


def test_a_tampered_epoch_is_a_problem_with_nothing_to_write() -> None:
    (plan,) = plan_publications([_tampered(0, "9")], CHAIN)
    assert plan.configmaps == ()
    assert "does not verify" in (plan.problem or "")


# --- what `kommons claim` sends ----------------------------------------------------------------


def test_claim_items_verify_every_proof_and_select_a_payee() -> None:
    document = provider_claims(_epoch(), CHAIN)[0]
    items = claim_items(document)
    assert sorted((i.billing_account, i.amount, i.payee) for i in items) == [
        ("acme", 3, PAYEES["prov-a"]),
        ("beta", 7, PAYEES["prov-a"]),
    ]
    assert claim_items(document, payee=PAYEES["prov-b"]) == []
    assert len(claim_items(document, payee=PAYEES["prov-a"].upper())) == 2


@pytest.mark.parametrize("tamper", ["amount", "root"])
def test_a_tampered_document_is_refused_whole(tamper: str) -> None:
    document = provider_claims(_epoch(), CHAIN)[0]
    if tamper == "amount":
        document.leaves[0].amount_units = "300"
    else:
        document.root = "0x" + "00" * 32
    with pytest.raises(ClaimError, match="does not verify against the root"):
        claim_items(document)


# --- the loop's executor -------------------------------------------------------------------


class FakeKube:
    """Records applies and status patches; namespaces in ``gone`` do not exist."""

    def __init__(self, gone: tuple[str, ...] = (), too_large: tuple[str, ...] = ()) -> None:
        self.gone = gone
        self.too_large = too_large
        self.applied: list[JSON] = []
        self.patched: list[tuple[str, JSON]] = []

    def apply(self, resource: Resource, body: JSON, **_: Any) -> JSON:
        assert resource.plural == "configmaps"
        if body["metadata"]["namespace"] in self.gone:
            raise NotFound(404, "NotFound", "namespace not found", "PATCH", "configmaps")
        if body["metadata"]["namespace"] in self.too_large:
            raise Invalid(422, "Invalid", "Too long: at most 1048576 bytes", "PATCH", "cm")
        self.applied.append(body)
        return body

    def patch(self, resource: Resource, name: str, patch: JSON, *_: Any, **kw: Any) -> JSON:
        assert (resource.plural, kw.get("subresource")) == ("settlementepochs", "status")
        self.patched.append((name, patch))
        return patch


class FakeChain:
    """The chain id and address the loop writes into the documents."""

    address = CONTRACT

    def __init__(self, *, reachable: bool = True) -> None:
        self.reachable = reachable

    def chain_id(self) -> int:
        if not self.reachable:
            raise ChainError("connection refused")
        return 31337


def _loop(kube: FakeKube, chain: FakeChain) -> SettlementLoop:
    return SettlementLoop(kube, chain, SettlementOptions(), clock=lambda: NOW)  # type: ignore[arg-type]


def test_the_loop_writes_each_providers_claims_then_marks_the_epoch() -> None:
    kube = FakeKube()
    _loop(kube, FakeChain())._publish_claims([_epoch(3), _epoch(2, published=True)], NOW)
    assert [(b["metadata"]["namespace"], b["metadata"]["name"]) for b in kube.applied] == [
        ("kommons-provider-prov-a", "kommons-claims-3"),
        ("kommons-provider-prov-b", "kommons-claims-3"),
    ]
    assert kube.patched == [("epoch-3", {"status": {"claimsPublishedAt": "2026-12-02T03:00:00Z"}})]


def test_a_provider_whose_namespace_is_gone_is_skipped_and_the_epoch_marked() -> None:
    kube = FakeKube(gone=("kommons-provider-prov-b",))
    _loop(kube, FakeChain())._publish_claims([_epoch(3)], NOW)
    assert [b["metadata"]["namespace"] for b in kube.applied] == ["kommons-provider-prov-a"]
    assert [name for name, _ in kube.patched] == ["epoch-3"]


def test_a_document_too_large_for_a_configmap_is_skipped_and_the_epoch_marked() -> None:
    kube = FakeKube(too_large=("kommons-provider-prov-a",))
    _loop(kube, FakeChain())._publish_claims([_epoch(3)], NOW)
    assert [b["metadata"]["namespace"] for b in kube.applied] == ["kommons-provider-prov-b"]
    assert [name for name, _ in kube.patched] == ["epoch-3"]


def test_nothing_is_written_while_the_chain_id_is_unknown_or_nothing_is_due() -> None:
    kube = FakeKube()
    _loop(kube, FakeChain(reachable=False))._publish_claims([_epoch(3)], NOW)
    _loop(kube, FakeChain())._publish_claims([_epoch(3, published=True)], NOW)
    assert (kube.applied, kube.patched) == ([], [])


def test_an_epoch_with_a_problem_stays_unmarked() -> None:
    kube = FakeKube()
    _loop(kube, FakeChain())._publish_claims([_tampered(0, "9")], NOW)
    assert (kube.applied, kube.patched) == ([], [])


# --- where `kommons claim` reads -----------------------------------------------------------


class FakeHub:
    """A hub as one set of credentials sees it: objects by (plural, namespace, name)."""

    def __init__(self, objects: dict[tuple[str, str | None, str], JSON], *, admin: bool) -> None:
        self.objects = objects
        self.admin = admin
        self.reads: list[str] = []

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        self.reads.append(f"{resource.plural}/{name}")
        if resource.plural == "settlementepochs" and not self.admin:
            raise Forbidden(403, "Forbidden", "cannot get settlementepochs", "GET", name)
        try:
            return self.objects[(resource.plural, namespace, name)]
        except KeyError:
            raise NotFound(404, "NotFound", "not found", "GET", name) from None


def _hub(*, admin: bool) -> FakeHub:
    epoch = _epoch()
    objects: dict[tuple[str, str | None, str], JSON] = {
        ("settlementepochs", None, "epoch-3"): epoch.model_dump(by_alias=True, mode="json"),
    }
    for document in provider_claims(epoch, CHAIN):
        body = claims_configmap(document, epoch)
        objects[("configmaps", body["metadata"]["namespace"], body["metadata"]["name"])] = body
    return FakeHub(objects, admin=admin)


def test_hub_credentials_read_the_epoch() -> None:
    hub = _hub(admin=True)
    read = read_claims(3, hub=hub, provider="prov-a")
    assert read.source == "SettlementEpoch epoch-3"
    assert sorted(i.amount for i in read.items) == [3, 7]
    assert read.chain == ChainIdentity(None, None)
    assert hub.reads == ["settlementepochs/epoch-3"]


def test_a_providers_credentials_read_its_claims_configmap() -> None:
    hub = _hub(admin=False)
    read = read_claims(3, hub=hub, provider="prov-a")
    assert read.source == "ConfigMap kommons-provider-prov-a/kommons-claims-3"
    assert sorted(i.amount for i in read.items) == [3, 7]
    assert read.chain == CHAIN
    assert hub.reads == ["settlementepochs/epoch-3", "configmaps/kommons-claims-3"]


def test_the_claims_configmap_on_request_even_with_hub_credentials() -> None:
    hub = _hub(admin=True)
    read = read_claims(3, hub=hub, provider="prov-b", from_provider_claims=True)
    assert [i.amount for i in read.items] == [5]
    assert hub.reads == ["configmaps/kommons-claims-3"]


def test_a_missing_claims_configmap_says_when_the_hub_writes_it() -> None:
    with pytest.raises(ClaimError, match="one step after epoch 4 is Confirmed"):
        read_claims(4, hub=_hub(admin=False), provider="prov-a")


def test_forbidden_without_a_provider_stays_an_error() -> None:
    with pytest.raises(Forbidden):
        read_claims(3, hub=_hub(admin=False))
    with pytest.raises(ClaimError, match="--provider is needed"):
        read_claims(3, hub=_hub(admin=False), from_provider_claims=True)


def test_a_document_of_another_provider_is_refused() -> None:
    hub = _hub(admin=False)
    moved = hub.objects[("configmaps", "kommons-provider-prov-b", "kommons-claims-3")]
    hub.objects[("configmaps", "kommons-provider-prov-a", "kommons-claims-3")] = moved
    with pytest.raises(ClaimError, match="is for epoch 3 of prov-b, not epoch 3 of prov-a"):
        read_claims(3, hub=hub, provider="prov-a")


def test_no_claim_is_sent_to_another_chain_than_the_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []

    class OtherChain:
        def chain_id(self) -> int:
            return 1

        def claim(self, epoch_id: int, *_: Any) -> None:
            sent.append(epoch_id)

    monkeypatch.setattr(SettlementChain, "connect", lambda *_, **__: OtherChain())
    key_file = tmp_path / "claim.key"
    key_file.write_text("0x" + "11" * 32)
    items = claim_items(provider_claims(_epoch(), CHAIN)[0])
    with pytest.raises(ClaimError, match="serves chain 1; the epoch's root is committed on chain"):
        list(submit_claims("http://rpc", CONTRACT, key_file, items, chain_id=31337))
    assert sent == []
