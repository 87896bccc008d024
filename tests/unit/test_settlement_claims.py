"""Claims from an epoch: the provider's leaves, proofs from the status or rebuilt, verified."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kommons.api import SettlementEpoch
from kommons.cli import app
from kommons.hub.settlement_loop import seal_status
from kommons.settlement.claims import ClaimError, claims_for
from kommons.settlement.merkle import LeafValue, verify
from kommons.settlement.sealing import Seal, seal_epoch

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
PAYERS = {"acme": "0x" + "a1" * 20, "beta": "0x" + "b2" * 20}
PAYEES = {"prov-a": "0x" + "0a" * 20, "prov-b": "0x" + "0b" * 20}


def sealed_leaves(seal: Seal, *, proofs: bool = True) -> list[dict[str, Any]]:
    """The leaves of ``seal`` as the hub writes them in the epoch's status (6 decimals)."""
    leaves: list[dict[str, Any]] = seal_status(seal, NOW, decimals=6)["leaves"]
    if not proofs:
        for leaf in leaves:
            leaf.pop("proof", None)
    return leaves


def _epoch(phase: str = "Confirmed", *, proofs: bool = True) -> SettlementEpoch:
    seal = seal_epoch(
        3, {("acme", "prov-a"): 3, ("acme", "prov-b"): 5, ("beta", "prov-a"): 7}, PAYERS, PAYEES
    )
    leaves = sealed_leaves(seal, proofs=proofs)
    return SettlementEpoch.model_validate(
        {
            "metadata": {"name": "epoch-3"},
            "spec": {"epochId": 3, "start": "2026-12-01T12:00:00Z", "end": "2026-12-01T13:00:00Z"},
            "status": {"phase": phase, "root": seal.root, "total": "0.000015", "leaves": leaves},
        }
    )


@pytest.mark.parametrize("proofs", [True, False])
def test_the_providers_leaves_with_verified_proofs(proofs: bool) -> None:
    epoch = _epoch(proofs=proofs)
    items = claims_for(epoch, provider="prov-a")
    assert [(i.billing_account, i.amount) for i in items] == [("acme", 3), ("beta", 7)]
    root = epoch.status.root if epoch.status else None
    assert root is not None
    for item in items:
        assert item.payee == PAYEES["prov-a"]
        assert verify(root, LeafValue(3, item.payer, item.payee, item.amount), item.proof)


def test_by_payee_address_and_everyone() -> None:
    assert [i.provider for i in claims_for(_epoch(), payee=PAYEES["prov-b"].upper())] == ["prov-b"]
    assert [i.provider for i in claims_for(_epoch(), payee=PAYEES["prov-b"])] == ["prov-b"]
    assert len(claims_for(_epoch())) == 3


@pytest.mark.parametrize("phase", ["Open", "Sealed", "Submitted", "Failed"])
def test_only_a_confirmed_epoch(phase: str) -> None:
    with pytest.raises(ClaimError, match=f"phase {phase}"):
        claims_for(_epoch(phase))


def test_a_tampered_amount_does_not_verify() -> None:
    epoch = _epoch()
    assert epoch.status is not None
    assert epoch.status.leaves is not None
    epoch.status.leaves[0].amount_units = "4"
    with pytest.raises(ClaimError, match="does not verify"):
        claims_for(epoch, provider="prov-a")


def test_kommons_claim_help_names_its_options() -> None:
    result = CliRunner().invoke(app, ["claim", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--provider",
        "--payee",
        "--from-file",
        "--from-provider-claims",
        "--key-file",
        "--chain-rpc",
        "--dry-run",
    ):
        assert option in result.output


def test_kommons_claim_dry_run_from_a_file(tmp_path: Path) -> None:
    epoch_file = tmp_path / "epoch-3.json"
    epoch_file.write_text(json.dumps(_epoch().model_dump(by_alias=True, mode="json")))
    result = CliRunner().invoke(
        app, ["claim", "3", "--provider", "prov-a", "--from-file", str(epoch_file), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "0.000003 from acme" in result.output
    assert "0.000007 from beta" in result.output
    assert "prov-b" not in result.output
    wrong = CliRunner().invoke(app, ["claim", "4", "--from-file", str(epoch_file), "--dry-run"])
    assert wrong.exit_code == 1
    assert "epochId 3, not 4" in wrong.output


def test_kommons_claim_refuses_an_open_epoch(tmp_path: Path) -> None:
    epoch_file = tmp_path / "epoch-3.json"
    epoch_file.write_text(json.dumps(_epoch("Sealed").model_dump(by_alias=True, mode="json")))
    result = CliRunner().invoke(app, ["claim", "3", "--from-file", str(epoch_file), "--dry-run"])
    assert result.exit_code == 1
    assert "only a Confirmed epoch" in result.output
