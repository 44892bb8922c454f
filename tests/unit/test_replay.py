"""Replay's input side: column mapping, time parsing, validation, ordering (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from stream_app.cli import main
from stream_app.mapping import (
    Mapping,
    MappingError,
    Source,
    load,
    parse_pairs,
    parse_tz,
)

TRANSACTIONS = """\
cust,date,spend,note
A1,20240103,12.50,first
B7,20240101,8,
A1,20240110,not-a-number,typo
C3,20240105,-4,refund
,20240106,3,no customer
B7,20240107,30.25,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_plain_transaction_log_is_mapped_validated_and_sorted(tmp_path: Path) -> None:
    path = write(tmp_path, "sales.csv", TRANSACTIONS)
    m = Mapping(columns=parse_pairs("customer_id=cust,ts=date,amount=spend", "--map"),
                date_format="%Y%m%d")
    loaded = load([Source("purchases", path)], m)
    got = [orjson.loads(e.value) for e in loaded.events]
    assert got == [
        {"customer_id": "B7", "ts": "2024-01-01T00:00:00+00:00", "amount": 8.0,
         "event_id": "sales.csv:3"},
        {"customer_id": "A1", "ts": "2024-01-03T00:00:00+00:00", "amount": 12.5,
         "event_id": "sales.csv:2"},
        {"customer_id": "B7", "ts": "2024-01-07T00:00:00+00:00", "amount": 30.25,
         "event_id": "sales.csv:7"},
    ]
    assert [e.customer_id for e in loaded.events] == ["B7", "A1", "B7"]
    assert loaded.events[0].ts == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    (rep,) = loaded.reports
    assert (rep.rows, rep.accepted, rep.rejected_count) == (6, 3, 3)
    assert rep.sorted_in_memory  # 01-03 came before 01-01 in the file
    reasons = dict(rep.rejected)
    assert "cannot read 'not-a-number'" in reasons[f"{path}:4"]
    assert "'amount' must be" in reasons[f"{path}:5"]           # the worker's own rule
    assert "customer_id" in reasons[f"{path}:6"]


def test_event_ids_are_the_same_on_every_load(tmp_path: Path) -> None:
    path = write(tmp_path, "sales.csv", TRANSACTIONS)
    m = Mapping(columns={"customer_id": "cust", "ts": "date", "amount": "spend"},
                date_format="%Y%m%d")
    first = [e.value for e in load([Source("purchases", path)], m).events]
    assert first == [e.value for e in load([Source("purchases", path)], m).events]


def test_whitespace_separated_file_and_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "log.txt", " id  date  n  value\n 001 19970101 1 11.77\n"
                                      " 002 19970102 2 20.00\n")
    m = Mapping(columns={"customer_id": "id", "ts": "date", "amount": "value"},
                date_format="%Y%m%d", tz=parse_tz("+02:00"))
    loaded = load([Source("purchases", path)], m)
    assert [e.customer_id for e in loaded.events] == ["001", "002"]
    assert orjson.loads(loaded.events[0].value)["ts"] == "1997-01-01T00:00:00+02:00"
    assert not loaded.reports[0].sorted_in_memory


def test_files_are_merged_in_event_time_order(tmp_path: Path) -> None:
    purchases = write(tmp_path, "p.jsonl", "\n".join(orjson.dumps(r).decode() for r in [
        {"event_id": "p1", "customer_id": "A", "ts": "2025-01-01T10:00:00Z", "amount": 5},
        {"event_id": "p2", "customer_id": "A", "ts": "2025-01-03T10:00:00Z", "amount": 5},
        {"event_id": "p3", "customer_id": "B", "ts": "2025-01-05T10:00:00Z", "amount": 5},
    ]) + "\n")
    complaints = write(tmp_path, "k.csv",
                       "event_id,customer_id,ts,category,severity\n"
                       "k1,B,2025-01-02T09:00:00+00:00,billing,3\n"
                       "k2,A,2025-01-03T10:00:00+00:00,delivery,2\n"
                       "k3,A,2025-01-09T00:00:00+00:00,weather,2\n")
    loaded = load([Source("purchases", purchases), Source("complaints", complaints)], Mapping())
    ids = [orjson.loads(e.value)["event_id"] for e in loaded.events]
    # Same instant (p2, k2): the order the files were given in.
    assert ids == ["p1", "k1", "p2", "k2", "p3"]
    assert [e.kind for e in loaded.events] == ["purchases", "complaints", "purchases",
                                               "complaints", "purchases"]
    assert loaded.rejected == 1                  # k3: no such category
    assert orjson.loads(loaded.events[1].value)["severity"] == 3  # text to integer


def test_constants_fill_fields_the_file_lacks(tmp_path: Path) -> None:
    path = write(tmp_path, "calls.csv", "customer,when,result\nA,2025-02-01 09:30,no_answer\n")
    m = Mapping(columns=parse_pairs("customer_id=customer,ts=when,outcome=result", "--map"),
                constants=parse_pairs("direction=outbound,channel=phone", "--set"))
    (event,) = load([Source("contacts", path)], m).events
    value = orjson.loads(event.value)
    assert value["direction"] == "outbound" and value["outcome"] == "no_answer"
    assert value["ts"] == "2025-02-01T09:30:00+00:00"


def test_a_missing_column_fails_once_naming_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "sales.csv", TRANSACTIONS)
    with pytest.raises(MappingError, match=r"no column 'customer_id'.*cust, date, spend"):
        load([Source("purchases", path)], Mapping())


def test_mapping_names_are_checked() -> None:
    with pytest.raises(MappingError, match="not a field"):
        parse_pairs("customer=cust", "--map")
    with pytest.raises(MappingError, match="FIELD=VALUE"):
        parse_pairs("customer_id", "--map")
    with pytest.raises(MappingError, match="--tz"):
        parse_tz("Mars/Olympus")


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
