"""Change rows equal snapshot rows for every type the client parses (``text_values``), edge values
included; values Arrow cannot parse (infinity, NaN, BC dates) go through the server's casts."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute
import pytest

from jupyter_di.connectors.base import (
    BOOKMARK_STATE_KEY,
    CHANGE_COLUMNS,
    FULL_TABLE,
    LOG_BASED,
    SOURCE_STATE_KEY,
    ReadRequest,
    StreamSettings,
)
from jupyter_di.connectors.postgres import PostgresSource, log_read, text_values
from jupyter_di.connectors.postgres.types import PgColumn

from .test_log_based import STATE_KEY, _conninfo, log_pg, sql  # noqa: F401 - the fixture

COLUMNS = (
    "id int PRIMARY KEY, s smallint, i int, b bigint, f4 real, f8 double precision, ok boolean, t text, v varchar(20), "
    "n numeric(12,2), n30 numeric(30,10), nfree numeric, d date, ts timestamp, tz timestamptz, e mood"
)
ROWS = [
    "(1, -32768, -2147483648, -9223372036854775808, 1.1, 0.1, true, '', 'x', -12.5, 12345678901234567890.0123456789, 1e-20, "
    "'0001-01-01', '2024-02-29 23:59:59.999999', '2024-06-01 12:00:00.5-07', 'happy')",
    "(2, 32767, 2147483647, 9223372036854775807, 3.4028235e38, 'NaN', false, 'ünïcödé \\ \"q\" ''s''', NULL, 9999999999.99, "
    "NULL, 'NaN', '9999-12-31', '1900-01-01 00:00:00', '1970-01-01 00:00:00+00', 'sad')",
    "(3, NULL, NULL, NULL, '-Infinity', 'Infinity', NULL, NULL, 'y', NULL, -1, -0.000, 'infinity', '-infinity', 'infinity', NULL)",
    "(4, 0, 0, 0, 1e-45, -0.0, true, 'line\nbreak', 'z', 0, 0, 123456789012345678901234567890.5, '0044-03-15 BC', "
    "'2000-01-01 00:00:00 BC', '2024-01-01 00:00:00+05:30', 'happy')",
]


def _read(cfg: dict[str, Any], settings: StreamSettings, state: dict[str, Any] | None) -> tuple[pa.Table, dict]:
    """The rows read, and the metadata of the last batch (the position it ends at)."""
    request = ReadRequest(
        settings=settings,
        bookmark=(state or {}).get("bookmark"),
        source_state=(state or {}).get("source_state"),
        state_key=STATE_KEY,
    )
    with PostgresSource(cfg) as source:
        batches = list(source.read(request))
    return pa.Table.from_batches(batches), dict(batches[-1].schema.metadata or {}) if batches else {}


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
def test_changes_equal_snapshot_rows_for_every_client_cast_type(log_pg, timezone, monkeypatch):
    cfg = log_pg
    sent: list[list[str]] = []  # the columns each chunk sent to the server's casts
    real = log_read._Changes._server_typed

    def spy(self, values, cols, n):
        sent.append([c.name for c in cols])
        return real(self, values, cols, n)

    monkeypatch.setattr(log_read._Changes, "_server_typed", spy)
    sql(
        cfg,
        "CREATE TYPE mood AS ENUM ('happy', 'sad')",
        f"CREATE TABLE items ({COLUMNS})",
        f"ALTER DATABASE {cfg['database']} SET TimeZone = '{timezone}'",
    )
    settings = StreamSettings(stream="items", replication_method=LOG_BASED)
    first, meta = _read(cfg, settings, None)
    assert first.num_rows == 0
    state = {
        "bookmark": json.loads(meta[BOOKMARK_STATE_KEY])["bookmark"],
        "source_state": json.loads(meta[SOURCE_STATE_KEY]),
    }
    # first rows Arrow parses, then rows only the server can cast (infinity, BC, 31 digits)
    for rows, server in ((ROWS[:2], ["e"]), (ROWS[2:], ["d", "ts", "tz", "e"])):
        sent.clear()
        sql(cfg, f"INSERT INTO items VALUES {', '.join(rows)}")
        changes, meta = _read(cfg, settings, state)
        state = {"bookmark": json.loads(meta[BOOKMARK_STATE_KEY])["bookmark"], "source_state": json.loads(meta[SOURCE_STATE_KEY])}
        snapshot, _ = _read(cfg, StreamSettings(stream="items", replication_method=FULL_TABLE), None)
        data = changes.select([n for n in changes.column_names if n not in CHANGE_COLUMNS])
        assert data.schema.remove_metadata() == snapshot.schema.remove_metadata()
        ids = data.column("id").to_pylist()
        expected = snapshot.filter(pa.compute.is_in(snapshot.column("id"), pa.array(ids, pa.int32())))
        assert _comparable(data.sort_by("id")) == _comparable(expected.sort_by("id"))
        assert sent == [server]


def _comparable(table: pa.Table) -> dict[str, list]:
    """Columns as Python lists; dates and timestamps as their integers (infinity has no datetime),
    floats as text (NaN equals NaN)."""
    out = {}
    for name, chunked in zip(table.column_names, table.columns):
        column = chunked.combine_chunks()
        if pa.types.is_date32(column.type):
            column = column.view(pa.int32())
        elif pa.types.is_timestamp(column.type):
            column = column.view(pa.int64())
        elif pa.types.is_floating(column.type):
            column = column.cast(pa.string())
        out[name] = column.to_pylist()
    return out


def test_text_the_client_cannot_parse_is_left_to_the_server():
    def column(typname: str, sql_type: str, typmod: int = -1) -> PgColumn:
        return PgColumn(name="c", sql_type=sql_type, typname=typname, elem=None, typmod=typmod, not_null=False)

    ts = column("timestamptz", "timestamp with time zone")
    assert text_values.text_to_arrow(pa.array(["2024-01-01 00:00:00+00", "infinity"]), ts, pa.timestamp("us", tz="UTC")) is None
    assert text_values.text_to_arrow(pa.array(["2024-01-01 10:00:00+02"]), ts, pa.timestamp("us", tz="UTC")).to_pylist()[0].hour == 8
    dec = column("numeric", "numeric(12,2)", (12 << 16) + 2 + 4)
    assert text_values.text_to_arrow(pa.array(["NaN"]), dec, pa.decimal128(12, 2)) is None
    boolean = column("bool", "boolean")
    assert text_values.text_to_arrow(pa.array(["t", None, "f"]), boolean, pa.bool_()).to_pylist() == [True, None, False]
    assert text_values.text_to_arrow(pa.array(["yes"]), boolean, pa.bool_()) is None
    assert text_values.text_to_arrow(pa.array(["a"]), column("mood", "mood"), pa.string()) is None
