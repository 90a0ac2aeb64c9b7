"""The Trino destination's literal encoder and statement cutting, without a server.

Every value must come out as text Trino's casts read back as the same value, and a run of a column
as exactly one SQL string literal holding a JSON array of those texts: JSON escapes what JSON
escapes, single quotes doubled, nothing else interpreted (the round trip through a real server is
in test_trino.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re

import pyarrow as pa
import pytest

from jupyter_di.connectors.trino.literals import column_literal, texts
from jupyter_di.connectors.trino.load import InsertPlan
from jupyter_di.errors import SchemaMismatch

SQL_STRING = re.compile(r"^'(?:[^']|'')*'$", re.DOTALL)


def text_of(values, type_=None) -> list:
    return texts(pa.array(values, type_)).to_pylist()


def unquote(literal: str) -> list:
    """What Trino reads from the literal: the SQL string, then its JSON array."""
    assert SQL_STRING.match(literal), literal
    return json.loads(literal[1:-1].replace("''", "'"))


def test_a_column_is_one_sql_string_holding_a_json_array_of_its_texts() -> None:
    hostile = ["a'b", "'); DROP TABLE t; --", "\\'", 'x"y', "x\x00y", "line\nbreak\t", "é ☃ 𝄞", "", None, "''", "\u2028"]
    literal = column_literal(texts(pa.array(hostile)))
    assert unquote(literal) == hostile
    assert literal.count("'") % 2 == 0 and "\x00" not in literal and "\n" not in literal  # JSON escaped them


def test_numbers_booleans_and_dates() -> None:
    assert text_of([1, -9223372036854775808, None], pa.int64()) == ["1", "-9223372036854775808", None]
    assert text_of([1.5, 1e300, 0.1, float("inf"), float("-inf"), float("nan")]) == ["1.5", "1e+300", "0.1", "Infinity", "-Infinity", "NaN"]
    assert text_of([decimal.Decimal("-0.50"), decimal.Decimal("12345678901234567890.123")], pa.decimal128(30, 3)) == [
        "-0.500",
        "12345678901234567890.123",
    ]
    assert text_of([True, False, None]) == ["true", "false", None]
    assert text_of([dt.date(2024, 2, 29)]) == ["2024-02-29"]
    assert text_of([dt.time(1, 2, 3, 4)], pa.time64("us")) == ["01:02:03.000004"]
    assert text_of([dt.timedelta(seconds=1, microseconds=5)], pa.duration("us")) == ["1000005"]


def test_timestamps_are_utc_with_microseconds() -> None:
    paris = pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 5)], pa.timestamp("us")).cast(pa.timestamp("us", "Europe/Paris"))
    assert texts(paris).to_pylist() == ["2024-01-01 12:00:00.000005 UTC"]  # the same instant, in UTC
    assert text_of([dt.datetime(2024, 1, 1, 1, 2, 3, 4)], pa.timestamp("us")) == ["2024-01-01 01:02:03.000004"]
    ns = pa.array([1_700_000_000_123_456_789], pa.timestamp("ns", "UTC"))
    assert texts(ns).to_pylist() == ["2023-11-14 22:13:20.123456 UTC"]


def test_binary_is_hex_and_nested_values_are_json_text() -> None:
    assert text_of([b"\x00\xff'", b"", None]) == ["00ff27", "", None]
    assert text_of([[1, 2], None, []], pa.list_(pa.int64())) == ["[1, 2]", None, "[]"]
    assert text_of([{"a": "it's"}], pa.struct([("a", pa.string())])) == ['{"a": "it\'s"}']
    assert texts(pa.array(["x", "x", None]).dictionary_encode()).to_pylist() == ["x", "x", None]


def test_statements_are_cut_by_bytes_and_keep_every_row_once() -> None:
    notes = [f"row {i} '\"\\\x01" * (i % 7) for i in range(5000)]  # escapes make the JSON longer than the text
    batch = pa.RecordBatch.from_pydict({"id": list(range(5000)), "note": notes})
    plan = InsertPlan(["id", "note"], ["bigint", "varchar"], [pa.int64(), pa.string()], table_bytes=len('"c"."s"."t"'))
    statements = list(plan.statements(batch, 20_000, "s"))
    assert len(statements) > 5
    assert sum(n for _, n in statements) == 5000
    assert all(len(('INSERT INTO "c"."s"."t"' + text).encode()) <= 20_000 for text, _ in statements)
    first = statements[0][0]
    assert first.startswith(' ("id", "note") SELECT c0, c1 FROM UNNEST(CAST(CAST(json_parse(\'["0","1",')
    assert first.endswith(" AS ARRAY(varchar))) AS u(c0, c1)")
    literals = [re.findall(r"json_parse\(('(?:[^']|'')*')\)", text) for text, _ in statements]
    assert [int(v) for lits in literals for v in unquote(lits[0])] == list(range(5000))
    assert [v for lits in literals for v in unquote(lits[1])] == notes


def test_a_row_larger_than_a_statement_is_refused_with_the_option_to_raise() -> None:
    batch = pa.RecordBatch.from_pydict({"note": ["x" * 50_000]})
    plan = InsertPlan(["note"], ["varchar"], [pa.string()])
    with pytest.raises(SchemaMismatch, match="max_statement_bytes"):
        list(plan.statements(batch, 20_000, "s"))
