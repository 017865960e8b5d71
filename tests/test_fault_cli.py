"""`skyrack faults campaign` end to end (in process)."""

from __future__ import annotations

import json

from skyrack import cli


def test_campaign_accounts_for_every_fault(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("skyrack.faults.commands",))
    assert cli.main(["faults", "campaign", "--faults", "12", "--steps", "60", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    total = r["table"]["total"]
    assert total["injected"] == 12 == len(r["faults"])
    assert total["masked"] + total["recovered"] + total["silent"] == 12
    assert total["silent"] == 0


def test_campaign_table_and_bad_input(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("skyrack.faults.commands",))
    assert cli.main(["faults", "campaign", "--faults", "4", "--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "recovered" in out and "final val loss" in out
    assert cli.main(["faults", "campaign", "--steps", "0"]) == 2
