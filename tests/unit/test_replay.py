"""Replay's command line without a broker: the dry run maps, validates and reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.interfaces.cli import main

from .test_mapping import TRANSACTIONS, write


def test_dry_run_reports_without_a_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    path = write(tmp_path, "sales.csv", TRANSACTIONS)
    code = main(["replay", "--purchases", str(path), "--map",
                 "customer_id=cust,ts=date,amount=spend", "--date-format", "%Y%m%d",
                 "--until", "2024-01-03", "--dry-run"])
    out = capsys.readouterr()
    assert code == 0
    assert "2 events from 2024-01-01 to 2024-01-03 would be sent" in out.out
    assert "6 rows, 3 accepted, 3 rejected" in out.err
    assert "sorted in memory" in out.err
    assert main(["replay", "--purchases", str(path), "--dry-run"]) == 2
    assert "--map customer_id=COLUMN" in capsys.readouterr().err


def test_decimal_mark_given_on_the_command_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``1,234`` alone could be either; ``--decimal ,`` says which."""
    path = tmp_path / "p.csv"
    path.write_text("customer_id;ts;amount\nc1;2025-01-01T00:00:00Z;1,234\n", encoding="utf-8")
    assert main(["replay", "--purchases", str(path), "--dry-run"]) == 1
    assert "ambiguous" in capsys.readouterr().err
    assert main(["replay", "--purchases", str(path), "--decimal", ",", "--dry-run"]) == 0
    said = capsys.readouterr()
    assert "1 accepted, 0 rejected" in said.out + said.err
