"""The Trino destination's literal encoder and statement cutting, without a server.

Every value must come out as exactly one literal that Trino's parser reads back as the same value:
quotes doubled, nothing else interpreted, binary as hex, nulls as NULL (the round trip through a
real server is in test_trino.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import pyarrow as pa
import pytest

from jupyter_di.connectors.trino.literals import literals
from jupyter_di.connectors.trino.load import InsertPlan
from jupyter_di.errors import SchemaMismatch

LITERAL = re.compile(r"^(NULL|'(?:[^']|'')*'|X'[0-9a-f]*')$", re.DOTALL)


def lits(values, type_=None) -> list[str]:
    return literals(pa.array(values, type_)).to_pylist()


def test_text_quotes_are_doubled_and_nothing_else_is_touched() -> None:
    hostile = ["a'b", "'; DROP TABLE t; --", "\\'", "x\x00y", "line\nbreak", "é ☃ 𝄞", "", None, "''"]
    out = lits(hostile)
    assert out == ["'a''b'", "'''; DROP TABLE t; --'", "'\\'''", "'x\x00y'", "'line\nbreak'", "'é ☃ 𝄞'", "''", "NULL", "''''''"]
    assert all(LITERAL.match(v) for v in out)


def test_numbers_booleans_and_dates() -> None:
    assert lits([1, -9223372036854775808, None], pa.int64()) == ["'1'", "'-9223372036854775808'", "NULL"]
    assert lits([1.5, 1e300, 0.1, float("inf"), float("-inf"), float("nan")]) == [
        "'1.5'",
        "'1e+300'",
        "'0.1'",
        "'Infinity'",
        "'-Infinity'",
        "'NaN'",
    ]
    assert lits([decimal.Decimal("-0.50"), decimal.Decimal("12345678901234567890.123")], pa.decimal128(30, 3)) == [
        "'-0.500'",
        "'12345678901234567890.123'",
    ]
    assert lits([True, False, None]) == ["'true'", "'false'", "NULL"]
    assert lits([dt.date(2024, 2, 29)]) == ["'2024-02-29'"]
    assert lits([dt.time(1, 2, 3, 4)], pa.time64("us")) == ["'01:02:03.000004'"]


def test_timestamps_are_utc_with_microseconds() -> None:
    paris = pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 5)], pa.timestamp("us")).cast(pa.timestamp("us", "Europe/Paris"))
    assert literals(paris).to_pylist() == ["'2024-01-01 12:00:00.000005 UTC'"]  # the same instant, in UTC
    assert lits([dt.datetime(2024, 1, 1, 1, 2, 3, 4)], pa.timestamp("us")) == ["'2024-01-01 01:02:03.000004'"]
    ns = pa.array([1_700_000_000_123_456_789], pa.timestamp("ns", "UTC"))
    assert literals(ns).to_pylist() == ["'2023-11-14 22:13:20.123456 UTC'"]


def test_binary_is_hex_and_nested_values_are_json_text() -> None:
    assert lits([b"\x00\xff'", b"", None]) == ["X'00ff27'", "X''", "NULL"]
    assert lits([[1, 2], None, []], pa.list_(pa.int64())) == ["'[1, 2]'", "NULL", "'[]'"]
    assert lits([{"a": "it's"}], pa.struct([("a", pa.string())])) == ["'{\"a\": \"it''s\"}'"]
    assert literals(pa.array(["x", "x", None]).dictionary_encode()).to_pylist() == ["'x'", "'x'", "NULL"]


def test_statements_are_cut_by_bytes_and_keep_every_row_once() -> None:
    batch = pa.RecordBatch.from_pydict({"id": list(range(5000)), "note": [f"row {i} '" * (i % 7) for i in range(5000)]})
    plan = InsertPlan('"c"."s"."t"', ["id", "note"], ["bigint", "varchar"], [pa.int64(), pa.string()])
    statements = list(plan.statements(batch, 20_000, "s"))
    assert len(statements) > 5
    assert sum(n for _, n in statements) == 5000
    assert all(len(text.encode()) <= 20_000 for text, _ in statements)
    first = statements[0][0]
    assert first.startswith('INSERT INTO "c"."s"."t" ("id", "note") SELECT c0, c1 FROM UNNEST(CAST(ARRAY[\'0\',')
    assert first.endswith("] AS ARRAY(varchar))) AS u(c0, c1)")
    ids = [int(v) for text, _ in statements for v in re.findall(r"'(\d+)'", text.split("ARRAY[", 1)[1].split("]", 1)[0])]
    assert ids == list(range(5000))


def test_a_row_larger_than_a_statement_is_refused_with_the_option_to_raise() -> None:
    batch = pa.RecordBatch.from_pydict({"note": ["x" * 50_000]})
    plan = InsertPlan('"t"', ["note"], ["varchar"], [pa.string()])
    with pytest.raises(SchemaMismatch, match="max_statement_bytes"):
        list(plan.statements(batch, 20_000, "s"))
