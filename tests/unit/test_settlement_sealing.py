"""Sealing: leaves per (account, provider), addresses, root and proofs that verify."""

from __future__ import annotations

from kommons.settlement.merkle import LeafValue, build_tree, verify
from kommons.settlement.sealing import MAX_LEAVES_WITH_PROOFS, ZERO_ROOT, seal_epoch

PAYERS = {"acme": "0x" + "a1" * 20, "beta": "0x" + "b2" * 20}
PAYEES = {"prov-a": "0x" + "0a" * 20, "prov-b": "0x" + "0b" * 20}


def test_leaves_root_total_and_proofs() -> None:
    charges = {("beta", "prov-a"): 7, ("acme", "prov-b"): 5, ("acme", "prov-a"): 3}
    seal = seal_epoch(4, charges, PAYERS, PAYEES)
    assert [(leaf.billing_account, leaf.provider) for leaf in seal.leaves] == [
        ("acme", "prov-a"),
        ("acme", "prov-b"),
        ("beta", "prov-a"),
    ]
    assert seal.total == 15
    values = [LeafValue(4, leaf.payer, leaf.payee, leaf.amount) for leaf in seal.leaves]
    assert seal.root == build_tree(values).root
    for leaf, value in zip(seal.leaves, values, strict=True):
        assert leaf.payer == PAYERS[leaf.billing_account]
        assert leaf.payee == PAYEES[leaf.provider]
        assert leaf.proof is not None
        assert verify(seal.root, value, leaf.proof)


def test_deterministic_whatever_the_order_of_the_charges() -> None:
    a = seal_epoch(1, {("acme", "prov-a"): 3, ("beta", "prov-b"): 4}, PAYERS, PAYEES)
    b = seal_epoch(1, {("beta", "prov-b"): 4, ("acme", "prov-a"): 3}, PAYERS, PAYEES)
    assert a == b


def test_the_epoch_id_is_in_the_leaf() -> None:
    charges = {("acme", "prov-a"): 3}
    assert (
        seal_epoch(1, charges, PAYERS, PAYEES).root != seal_epoch(2, charges, PAYERS, PAYEES).root
    )


def test_zero_amounts_are_dropped_and_nothing_gives_no_leaf() -> None:
    seal = seal_epoch(1, {("acme", "prov-a"): 0, ("ghost", "prov-z"): 0}, PAYERS, PAYEES)
    assert seal.leaves == ()
    assert seal.total == 0
    assert seal.root == ZERO_ROOT


def test_a_missing_account_or_provider_is_left_out_and_named_not_blocking() -> None:
    charges = {("acme", "prov-a"): 1, ("ghost", "prov-a"): 2, ("acme", "prov-gone"): 3}
    seal = seal_epoch(9, charges, PAYERS, PAYEES)
    assert [(x.billing_account, x.provider, x.amount) for x in seal.leaves] == [
        ("acme", "prov-a", 1)
    ]
    assert seal.total == 1
    assert len(seal.excluded) == 2
    assert any("BillingAccount ghost" in x and "2 units" in x for x in seal.excluded)
    assert any("Provider prov-gone" in x and "spec.payoutAddress" in x for x in seal.excluded)


def test_accounts_sharing_an_escrow_address_are_summed_into_one_leaf() -> None:
    payers = {"acme": PAYERS["acme"], "clone": PAYERS["acme"].upper().replace("0X", "0x")}
    seal = seal_epoch(1, {("acme", "prov-a"): 1, ("clone", "prov-a"): 2}, payers, PAYEES)
    (leaf,) = seal.leaves
    assert (leaf.billing_account, leaf.provider, leaf.amount) == ("acme,clone", "prov-a", 3)
    assert seal.total == 3
    assert leaf.proof is not None
    assert verify(seal.root, LeafValue(1, leaf.payer, leaf.payee, 3), leaf.proof)


def test_providers_sharing_a_payout_address_are_summed_and_others_unaffected() -> None:
    payees = {**PAYEES, "prov-a2": PAYEES["prov-a"]}
    charges = {("acme", "prov-a"): 5, ("acme", "prov-a2"): 7, ("acme", "prov-b"): 1}
    seal = seal_epoch(2, charges, PAYERS, payees)
    assert [(x.provider, x.amount) for x in seal.leaves] == [("prov-a,prov-a2", 12), ("prov-b", 1)]
    assert seal.total == 13


def test_proofs_are_left_out_beyond_the_limit() -> None:
    count = MAX_LEAVES_WITH_PROOFS + 1
    payers = {f"t{i}": "0x" + f"{i + 1:040x}" for i in range(count)}
    charges = {(f"t{i}", "prov-a"): i + 1 for i in range(count)}
    seal = seal_epoch(1, charges, payers, PAYEES)
    assert len(seal.leaves) == count
    assert all(leaf.proof is None for leaf in seal.leaves)
