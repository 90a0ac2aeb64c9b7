"""Round trips through every pair of built-in connectors, row contents compared.

Each case writes one seed batch into connector A, reads it back from A, moves
it into connector B the way the sync engine does, reads it from B, and
compares every value with the seed.  Where a system has no type for a value
(CSV has no decimals or JSON marker, JSON lines keeps decimals as strings) the
comparison normalises that column, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import INCREMENTAL, JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, Chunk, ReadRequest, StreamSettings, WriteRequest

UTC = dt.timezone.utc

SEED_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("ratio", pa.float64()),
        ("flag", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        pa.field("doc", pa.string(), metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}),
    ]
)
SEED_ROWS = [
    {
        "id": 1,
        "name": "é \"double\" 'single' back\\slash 🙂 中文",
        "amount": Decimal("1234567890.12"),
        "ratio": 1.5,
        "flag": True,
        "at": dt.datetime(2024, 3, 1, 12, 34, 56, 789012, tzinfo=UTC),
        "day": dt.date(2024, 2, 29),
        "doc": '{"a": [1, 2, {"b": null}], "é": "🙂"}',
    },
    {
        "id": 2,
        "name": "",
        "amount": Decimal("-0.01"),
        "ratio": -2.25,
        "flag": False,
        "at": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "day": dt.date(1999, 12, 31),
        "doc": "[]",
    },
    {"id": 3, "name": None, "amount": None, "ratio": None, "flag": None, "at": None, "day": None, "doc": None},
]

# name -> (connector, module that must exist, config maker given a folder and the pg config)
ENDPOINTS: dict[str, tuple[str, str]] = {
    "postgresql": ("postgresql", "jupyter_di.connectors.postgres"),
    "duckdb": ("duckdb", "jupyter_di.connectors.duckdb"),
    "sqlite": ("sqlite", "jupyter_di.connectors.sqlite"),
    "csv": ("files", "jupyter_di.connectors.files"),
    "jsonl": ("files", "jupyter_di.connectors.files"),
    "parquet": ("files", "jupyter_di.connectors.files"),
}
AVAILABLE = [name for name, (_, module) in ENDPOINTS.items() if importlib.util.find_spec(module) is not None]
PAIRS = [pytest.param(a, b, id=f"{a}-to-{b}") for a, b in itertools.product(AVAILABLE, repeat=2)]


def config_for(endpoint: str, tmp_path, request) -> dict[str, Any]:
    if endpoint == "postgresql":
        return dict(request.getfixturevalue("pg_config"), schema=f"rt_{tmp_path.name[-20:]}".replace("-", "_"))
    if endpoint in ("duckdb", "sqlite"):
        return {"path": str(tmp_path / f"db.{endpoint}")}
    return {"path": str(tmp_path / endpoint), "format": endpoint}


def seed_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(SEED_ROWS, schema=SEED_SCHEMA)


def move(src_name: str, src_config, dst_name: str, dst_config, settings: StreamSettings) -> None:
    """Read a stream from one connector and write it into another, as the sync engine does."""
    source = registry.source_class(ENDPOINTS[src_name][0])(src_config)
    destination = registry.destination_class(ENDPOINTS[dst_name][0])(dst_config)
    with source, destination:
        reader = source.read(ReadRequest(StreamSettings(settings.stream), batch_size=2))
        destination.write(WriteRequest(settings, reader.schema), (Chunk(b) for b in reader))


def read_back(name: str, config, stream: str) -> list[dict[str, Any]]:
    with registry.source_class(ENDPOINTS[name][0])(config) as source:
        table = source.read(ReadRequest(StreamSettings(stream))).read_all()
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Only what some system cannot keep: decimals written as float or text, JSON text formatting."""
    out = dict(row)
    if out["amount"] is not None:
        out["amount"] = Decimal(str(out["amount"])).quantize(Decimal("0.01"))
    if out["doc"] is not None:
        out["doc"] = json.loads(out["doc"])
    return out


@pytest.mark.parametrize("first, second", PAIRS)
def test_round_trip(first, second, tmp_path, request):
    a_config = config_for(first, tmp_path / "a", request)
    b_config = config_for(second, tmp_path / "b", request)
    for path in (tmp_path / "a", tmp_path / "b"):
        path.mkdir()
    seed = seed_batch()
    with registry.destination_class(ENDPOINTS[first][0])(a_config) as dst:
        dst.write(WriteRequest(StreamSettings("seed"), seed.schema), iter([Chunk(seed)]))
    assert [normalise(r) for r in read_back(first, a_config, "seed")] == [normalise(r) for r in SEED_ROWS]

    move(first, a_config, second, b_config, StreamSettings("seed", destination_table="copied"))
    moved = read_back(second, b_config, "copied")
    assert [normalise(r) for r in moved] == [normalise(r) for r in SEED_ROWS]
    assert moved[0]["name"] == SEED_ROWS[0]["name"] and moved[1]["name"] == "" and moved[2]["name"] is None


@pytest.mark.parametrize("other", [a for a in AVAILABLE if a in ("duckdb", "sqlite")])
def test_incremental_upsert_round_trip_through_postgres(other, tmp_path, request):
    """PostgreSQL -> X upserts the changed rows of an inclusive bookmark read; X -> PostgreSQL back again."""
    pg = config_for("postgresql", tmp_path, request)
    x_config = config_for(other, tmp_path, request)
    seed = seed_batch()
    with registry.destination_class("postgresql")(pg) as dst:
        dst.write(WriteRequest(StreamSettings("seed"), seed.schema), iter([Chunk(seed)]))
    settings = StreamSettings(
        "seed",
        replication_method=INCREMENTAL,
        bookmark_properties=["day"],
        key_properties=["id"],
        unique_constraints=["id"],
    )
    source = registry.source_class("postgresql")(pg)
    destination = registry.destination_class(other)(x_config)
    with source, destination:
        reader = source.read(ReadRequest(settings))
        destination.write(WriteRequest(settings, reader.schema), (Chunk(b) for b in reader))
        # the source changes row 1 and a read from the bookmark re-sends rows at and after it
        pg_conn = request.getfixturevalue("pg_connect")()
        pg_conn.execute(f'UPDATE "{pg["schema"]}".seed SET name = %s WHERE id = 1', ("changed",))
        reader = source.read(ReadRequest(settings, bookmark={"day": "2024-02-29"}))
        destination.write(WriteRequest(settings, reader.schema), (Chunk(b) for b in reader))
    got = read_back(other, x_config, "seed")
    expected = [normalise(dict(SEED_ROWS[0], name="changed")), normalise(SEED_ROWS[1]), normalise(SEED_ROWS[2])]
    assert [normalise(r) for r in got] == expected

    back = dict(pg, schema="back")
    move(other, x_config, "postgresql", back, StreamSettings("seed", destination_table="again"))
    assert [normalise(r) for r in read_back("postgresql", back, "again")] == expected
