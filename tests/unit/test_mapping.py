"""Reading history files: separators, decimal marks, encodings, column mapping,
time parsing, validation and ordering (no broker).

The exports below are written as the systems that make them do: a European
ERP's semicolons and decimal commas, a spreadsheet's tabs, quoted fields with
commas and line breaks, Excel's "CSV UTF-8" with its byte-order mark and CRLF
line ends, Hebrew column names.  Every test checks the exact values read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_app.core.decoding import FIELDS
from stream_app.offline.mapping import (
    COMMON_FIELDS,
    KINDS,
    Mapping,
    MappingError,
    Source,
    decimal_marks,
    load,
    parse_decimal,
    parse_number,
    parse_pairs,
    parse_tz,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

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


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def values(loaded: Any) -> list[dict[str, Any]]:
    return [orjson.loads(e.value) for e in loaded.events]


# -- decimal marks -------------------------------------------------------------

@pytest.mark.parametrize(("text", "decimal", "expected"), [
    ("12,50", None, 12.5),             # never 1250.0
    ("1.234,56", None, 1234.56),       # never 1.23456
    ("12.50", None, 12.5),
    ("1,234,567.8", None, 1234567.8),
    ("1.234.567", None, 1234567.0),    # two dots can only group thousands
    ("0,123", None, 0.123),            # a thousands group never starts with 0
    ("-3,5", None, -3.5),
    ("1234", None, 1234.0),            # no mark: the same either way
    ("1,234", ".", 1234.0),
    ("1,234", ",", 1.234),
    ("1.234", ",", 1234.0),
    (" 7,05 ", ",", 7.05),
])
def test_numbers_are_read_with_their_decimal_mark(text: str, decimal: str | None,
                                                  expected: float) -> None:
    assert parse_number(text, decimal) == expected


def test_numbers_that_cannot_be_read_say_why() -> None:
    with pytest.raises(ValueError, match=r"ambiguous: 1234 with a decimal point or 1\.234 "
                                         "with a decimal comma"):
        parse_number("1,234", None)
    with pytest.raises(ValueError, match=r"not a number with a decimal point \(--decimal \.\); "
                                         "it is one with --decimal ,"):
        parse_number("12,50", ".")
    with pytest.raises(ValueError, match="not a number"):
        parse_number("12,5,0", None)
    assert decimal_marks("1,234") == {".", ","}
    assert decimal_marks("12,50") == {","}
    assert decimal_marks("abc") == frozenset()


def test_decimal_option_is_checked() -> None:
    assert [parse_decimal(t) for t in (",", "comma", ".", "point", "dot", None)] == \
        [",", ",", ".", ".", ".", None]
    with pytest.raises(MappingError, match="--decimal ';'"):
        parse_decimal(";")
    with pytest.raises(MappingError, match="--decimal"):
        Mapping(decimal="'")
    with pytest.raises(MappingError, match="--delimiter 'colon'"):
        Mapping(delimiter="colon")


# -- real-looking exports --------------------------------------------------------

def test_semicolon_export_with_decimal_comma(tmp_path: Path) -> None:
    # A European ERP: semicolons, a comma inside a column name and inside a
    # quoted value, day.month.year dates, decimal commas with dot-grouped
    # thousands.  The first comma of the header is not the separator.
    path = write(tmp_path, "umsatz.csv",
                 "id;full, name;date;amount\n"
                 'C-001;"Müller, Anna";03.01.2024;12,50\n'
                 "C-002;Novák;05.01.2024;1.234,56\n"
                 'C-001;"Müller, Anna";09.01.2024;7\n')
    m = Mapping(columns=parse_pairs("customer_id=id,ts=date", "--map"), date_format="%d.%m.%Y")
    loaded = load([Source("purchases", path)], m)
    assert values(loaded) == [
        {"customer_id": "C-001", "ts": "2024-01-03T00:00:00+00:00", "amount": 12.5,
         "event_id": "umsatz.csv:2"},
        {"customer_id": "C-002", "ts": "2024-01-05T00:00:00+00:00", "amount": 1234.56,
         "event_id": "umsatz.csv:3"},
        {"customer_id": "C-001", "ts": "2024-01-09T00:00:00+00:00", "amount": 7.0,
         "event_id": "umsatz.csv:4"},
    ]
    (rep,) = loaded.reports
    assert (rep.rows, rep.accepted, rep.rejected_count) == (3, 3, 0)
    assert rep.decimal_detected == ","


def test_tab_separated_spreadsheet_export(tmp_path: Path) -> None:
    # Column names and values with spaces; dot decimals with comma-grouped
    # thousands; the tab is the separator, not the spaces or the commas.
    path = write(tmp_path, "orders.tsv",
                 "customer id\torder date\ttotal\tship to\n"
                 "A 17\t2024-03-01 10:15\t1,234.50\tHaifa, IL\n"
                 "B 02\t2024-03-02 08:00\t99.90\tEilat\n")
    m = Mapping(columns={"customer_id": "customer id", "ts": "order date", "amount": "total"},
                tz=parse_tz("Asia/Jerusalem"))
    loaded = load([Source("purchases", path)], m)
    assert values(loaded) == [
        {"customer_id": "A 17", "ts": "2024-03-01T10:15:00+02:00", "amount": 1234.5,
         "event_id": "orders.tsv:2"},
        {"customer_id": "B 02", "ts": "2024-03-02T08:00:00+02:00", "amount": 99.9,
         "event_id": "orders.tsv:3"},
    ]
    assert loaded.reports[0].decimal_detected == "."


def test_quoted_fields_with_commas_quotes_and_line_breaks(tmp_path: Path) -> None:
    # A CRM export: text quoted because it holds the separator, doubled quotes
    # inside, a note spanning two lines.  Each derived id names the line the
    # row starts on.
    path = write(tmp_path, "complaints.csv",
                 "customer_id,ts,category,severity,compensation_requested,text\n"
                 'A,2025-01-02T09:00:00+00:00,billing,3,"1,250.00",'
                 '"Charged twice, refund ""pending"""\n'
                 'B,2025-01-03T09:00:00+00:00,delivery,2,,"Box arrived open.\n'
                 'Second time, this month."\n'
                 "C,2025-01-04T09:00:00+00:00,billing,1,40,ok\n")
    loaded = load([Source("complaints", path)], Mapping())
    assert values(loaded) == [
        {"customer_id": "A", "ts": "2025-01-02T09:00:00+00:00", "category": "billing",
         "severity": 3, "compensation_requested": 1250.0,
         "text": 'Charged twice, refund "pending"', "event_id": "complaints.csv:2"},
        {"customer_id": "B", "ts": "2025-01-03T09:00:00+00:00", "category": "delivery",
         "severity": 2, "text": "Box arrived open.\nSecond time, this month.",
         "event_id": "complaints.csv:3"},
        {"customer_id": "C", "ts": "2025-01-04T09:00:00+00:00", "category": "billing",
         "severity": 1, "compensation_requested": 40.0, "text": "ok",
         "event_id": "complaints.csv:5"},
    ]


HEBREW_EXPORT = (
    "מספר לקוח,תאריך,סכום,ערוץ\r\n"
    "314,01/02/2024,\"1.250,00\",store\r\n"
    "271,02/02/2024,\"89,90\",online\r\n"
    "314,05/02/2024,45,online\r\n"
)


def test_excel_utf8_export_with_bom_crlf_and_hebrew_headers(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8": a byte-order mark before the first column's name
    # and CRLF line ends; Hebrew column names; quoted decimal-comma amounts.
    # A BOM left in would hide the first column, and a CR left in would make
    # the last column's "online\r" an unknown channel.
    data = b"\xef\xbb\xbf" + HEBREW_EXPORT.encode("utf-8")
    path = write_bytes(tmp_path, "מכירות.csv", data)
    m = Mapping(columns=parse_pairs("customer_id=מספר לקוח,ts=תאריך,amount=סכום,channel=ערוץ",
                                    "--map"),
                date_format="%d/%m/%Y", tz=parse_tz("Asia/Jerusalem"))
    loaded = load([Source("purchases", path)], m)
    assert values(loaded) == [
        {"customer_id": "314", "ts": "2024-02-01T00:00:00+02:00", "amount": 1250.0,
         "channel": "store", "event_id": "מכירות.csv:2"},
        {"customer_id": "271", "ts": "2024-02-02T00:00:00+02:00", "amount": 89.9,
         "channel": "online", "event_id": "מכירות.csv:3"},
        {"customer_id": "314", "ts": "2024-02-05T00:00:00+02:00", "amount": 45.0,
         "channel": "online", "event_id": "מכירות.csv:4"},
    ]
    assert loaded.reports[0].decimal_detected == ","


def test_whitespace_file_with_crlf_line_ends(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "log.txt", b"id date value\r\n001 19970101 11.77\r\n"
                                            b"002 19970102 20\r\n")
    m = Mapping(columns={"customer_id": "id", "ts": "date", "amount": "value"},
                date_format="%Y%m%d")
    assert [(v["customer_id"], v["amount"]) for v in values(load([Source("purchases", path)],
                                                                  m))] == \
        [("001", 11.77), ("002", 20.0)]


def test_a_file_that_is_not_utf8_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "legacy.csv", HEBREW_EXPORT.encode("cp1255"))
    with pytest.raises(MappingError, match=r"legacy\.csv: not UTF-8 text.*save it as UTF-8"):
        load([Source("purchases", path)], Mapping())


# -- refusing rather than guessing ------------------------------------------------

AMBIGUOUS = "customer_id,ts,amount\nA,2024-01-01T00:00:00Z,\"1,234\"\nB,2024-01-02T00:00:00Z,500\n"


def test_an_ambiguous_amount_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sales.csv", AMBIGUOUS)
    loaded = load([Source("purchases", path)], Mapping())
    assert [(v["customer_id"], v["amount"]) for v in values(loaded)] == [("B", 500.0)]
    (rep,) = loaded.reports
    assert rep.decimal_detected is None
    ((where, why),) = rep.rejected
    assert where == f"{path}:2"
    assert why == ("field 'amount' (column 'amount'): cannot read '1,234': ambiguous: 1234 "
                   "with a decimal point or 1.234 with a decimal comma, and no amount in the "
                   "file tells which; give --decimal . or --decimal ,")
    # Stated, the same file reads either way.
    assert [v["amount"] for v in values(load([Source("purchases", path)],
                                             Mapping(decimal=".")))] == [1234.0, 500.0]
    assert [v["amount"] for v in values(load([Source("purchases", path)],
                                             Mapping(decimal=",")))] == [1.234, 500.0]


def test_an_amount_elsewhere_in_the_file_settles_the_ambiguity(tmp_path: Path) -> None:
    path = write(tmp_path, "sales.csv", AMBIGUOUS + "C,2024-01-03T00:00:00Z,\"3,75\"\n")
    loaded = load([Source("purchases", path)], Mapping())
    assert [v["amount"] for v in values(loaded)] == [1.234, 500.0, 3.75]
    assert loaded.reports[0].decimal_detected == ","


def test_mixed_decimal_marks_stop_the_file_naming_a_line_of_each(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.csv", "customer_id;ts;amount\n"
                                        "A;2024-01-01T00:00:00Z;12,50\n"
                                        "B;2024-01-02T00:00:00Z;8\n"
                                        "C;2024-01-03T00:00:00Z;8.25\n")
    with pytest.raises(MappingError, match=r"mixed\.csv: amounts are written both with a decimal "
                                           r"comma \(line 2: '12,50'\) and with a decimal point "
                                           r"\(line 4: '8.25'\); give --decimal ,"):
        load([Source("purchases", path)], Mapping())
    loaded = load([Source("purchases", path)], Mapping(decimal=","))
    assert [v["amount"] for v in values(loaded)] == [12.5, 8.0]
    ((where, why),) = loaded.reports[0].rejected
    assert where == f"{path}:4"
    assert why.endswith("cannot read '8.25': not a number with a decimal comma (--decimal ,); "
                        "it is one with --decimal .")


def test_a_separator_that_does_not_fit_the_first_rows_is_not_guessed(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.csv", "customer_id;ts;amount\nA;2024-01-01T00:00:00Z\n"
                                         "B;2024-01-02T00:00:00Z;5\n")
    with pytest.raises(MappingError, match=r"broken\.csv: cannot tell the column separator.*"
                                           "--delimiter NAME"):
        load([Source("purchases", path)], Mapping())
    loaded = load([Source("purchases", path)], Mapping(delimiter="semicolon"))
    assert [v["customer_id"] for v in values(loaded)] == ["B"]
    assert loaded.reports[0].rejected == [(f"{path}:2",
                                           "2 values for 3 columns (separator semicolon)")]


def test_common_fields_are_those_of_the_schemas() -> None:
    # The mapping's table of shared fields must not drift from the topics' contract.
    for kind in KINDS:
        schema = json.loads((SCHEMAS / f"{kind}.v1.json").read_text())
        assert set(schema["properties"]) - set(FIELDS[kind]) == set(COMMON_FIELDS)
        assert [f for f in schema["required"] if f not in FIELDS[kind]] == \
            [f for f, required in COMMON_FIELDS.items() if required]
