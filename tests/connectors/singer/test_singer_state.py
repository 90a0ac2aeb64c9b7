"""A Singer tap's own state: kept verbatim, handed back as --state, overrides written into it (issue 12.6).

Taps, each run through ``tests/support/singer_recorder.py`` so the test sees the ``--state`` file a
run was given and every STATE the tap printed:

- ``tests/support/classic_tap.py``: a classic singer-io style tap with an epoch-number bookmark and
  a ``charges_events`` key (the real classic taps of that kind all need a SaaS API);
- pipelinewise-tap-postgres 1.8.4 (a real classic tap, pipelinewise-singer-python): its state has
  ``version``, ``last_replication_method`` and ``currently_syncing`` besides the bookmark;
- meltanolabs-tap-postgres 0.10.0 (a Meltano SDK tap).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest

from jupyter_di.cli import main
from jupyter_di.connectors.base import SOURCE_STATE_KEY, ReadRequest, StreamSettings
from jupyter_di.connectors.singer import SingerSource
from jupyter_di.connectors.singer import read as singer_read
from jupyter_di.connectors.singer.state import like, state_for_tap, with_override
from jupyter_di.state import api
from jupyter_di.state.store import StateStore
from tests.support import singer_venvs
from tests.support.notebooks import duckdb_query, synced, write_notebook
from tests.support.orders import create_orders
from tests.support.singer_recorder import calls, recording_tap

UTC = dt.timezone.utc
CLASSIC_TAP = Path(__file__).resolve().parents[2] / "support" / "classic_tap.py"
PIPELINEWISE = ["pipelinewise-tap-postgres==1.8.4"]


def _epoch(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


# ---------------------------------------------------------------- the --state a tap gets

ENTRY = {"tap_stream_id": "charges", "stream": "charges"}
INC = StreamSettings("charges", replication_method="INCREMENTAL", bookmark_properties=["updated"], key_properties=["id"])
CLASSIC = {
    "bookmarks": {"charges": {"updated": 1704085200}, "charges_events": {"updates_created": 1704085200}},
    "currently_syncing": None,
}
SDK = {
    "bookmarks": {
        "charges": {
            "replication_key": "updated",
            "replication_key_value": "2024-01-01T05:00:00+00:00",
            "replication_key_signpost": "2024-06-01T00:00:00+00:00",
        }
    }
}


def test_state_is_the_taps_own_verbatim_else_the_sdk_shape():
    bookmark = {"updated": "2024-01-01T05:00:00+00:00"}
    assert state_for_tap(ENTRY, INC, bookmark, CLASSIC) is CLASSIC  # a saved sync bookmark: the tap's state as is
    assert state_for_tap(ENTRY, INC, None, CLASSIC) is CLASSIC
    assert state_for_tap(ENTRY, INC, bookmark, None) == {
        "bookmarks": {"charges": {"replication_key": "updated", "replication_key_value": "2024-01-01T05:00:00+00:00"}}
    }  # first run after a pin, or a state saved before source states were kept
    assert state_for_tap(ENTRY, INC, None, None) is None
    assert state_for_tap(ENTRY, StreamSettings("charges"), bookmark, CLASSIC) is None  # FULL_TABLE reads everything


def test_an_override_rewrites_only_the_field_it_names_in_the_taps_type():
    typed = {"updated": "2024-01-02T00:00:00+00:00"}
    got = state_for_tap(ENTRY, INC, typed, CLASSIC, bookmark_from_user=True)
    assert got == {
        "bookmarks": {"charges": {"updated": _epoch("2024-01-02T00:00:00+00:00")}, "charges_events": {"updates_created": 1704085200}},
        "currently_syncing": None,
    }
    assert CLASSIC["bookmarks"]["charges"]["updated"] == 1704085200  # the saved state is not touched
    got = state_for_tap(ENTRY, INC, typed, SDK, bookmark_from_user=True)
    assert got["bookmarks"]["charges"] == {
        "replication_key": "updated",
        "replication_key_value": "2024-01-02T00:00:00+00:00",
        "replication_key_signpost": "2024-06-01T00:00:00+00:00",
    }
    # no saved state of the tap's own, or one that is not an object: the SDK shape
    assert state_for_tap(ENTRY, INC, typed, ["odd"], bookmark_from_user=True) == {
        "bookmarks": {"charges": {"replication_key": "updated", "replication_key_value": "2024-01-02T00:00:00+00:00"}}
    }
    # the stream has no entry yet: an SDK-shape one next to the others
    assert with_override({"bookmarks": {"x": 1}}, ENTRY, "updated", "v") == {
        "bookmarks": {"x": 1, "charges": {"replication_key": "updated", "replication_key_value": "v"}}
    }
    partitioned = {
        "bookmarks": {"charges": {"partitions": [{"context": {"shop": 1}, "replication_key": "updated", "replication_key_value": "a"}]}}
    }
    assert with_override(partitioned, ENTRY, "updated", "b")["bookmarks"]["charges"]["partitions"] == [
        {"context": {"shop": 1}, "replication_key": "updated", "replication_key_value": "b"}
    ]


def test_like_keeps_the_json_type_the_tap_used():
    iso = "2024-01-02T00:00:00+00:00"
    assert like(1704085200, iso) == 1704153600 and isinstance(like(1, iso), int)
    assert like(1704085200000, iso) == 1704153600000  # epoch milliseconds stay milliseconds
    assert like(1.5, "2024-01-02T00:00:00.250000Z") == 1704153600.25
    assert like(1704085200, "2024-01-02T00:00:00.9+00:00") == 1704153600  # rounded down: never starts later
    assert like(1704085200, "2024-01-02") == 1704153600  # a date is its midnight, UTC
    assert like(10, "42") == 42 and like("2024-01-01", iso) == iso and like(None, iso) == iso
    assert like(True, "x") == "x" and like(3, "not a time") == "not a time"


# ---------------------------------------------------------------- states on the batches

SCRIPTED_TAP = textwrap.dedent(
    """
    import json, sys
    args = sys.argv[1:]
    cfg = json.load(open(args[args.index("--config") + 1]))
    schema = {"type": "object", "properties": {"id": {"type": ["integer"]}}}
    if "--discover" in args:
        print(json.dumps({"streams": [{"tap_stream_id": "s", "stream": "s", "schema": schema, "metadata": []}]}))
        sys.exit(0)
    for item in cfg["script"]:
        if item == "SCHEMA":
            msg = {"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": ["id"]}
        elif isinstance(item, int):
            msg = {"type": "RECORD", "stream": "s", "record": {"id": item}}
        else:
            msg = {"type": "STATE", "value": {"at": item}}
        print(json.dumps(msg), flush=True)
    """
)


def _scripted_read(tmp_path, script, batch_size, method="INCREMENTAL"):
    exe = tmp_path / "tap-scripted"
    exe.write_text(f"#!{sys.executable}\n{SCRIPTED_TAP}")
    exe.chmod(0o755)
    settings = StreamSettings("s", replication_method=method, bookmark_properties=["id"], key_properties=["id"])
    reader = SingerSource({"executable": str(exe), "config": {"script": script}}).read(ReadRequest(settings, batch_size=batch_size))
    out = []
    for batch in reader:
        state = (batch.schema.metadata or {}).get(SOURCE_STATE_KEY)
        out.append((batch.column("id").to_pylist(), json.loads(state)["at"] if state else None))
    return out


def test_each_state_rides_on_the_batch_that_ends_where_the_tap_printed_it(tmp_path, monkeypatch):
    # a state printed before the SCHEMA, or before any record, goes with the first batch
    assert _scripted_read(tmp_path, ["early", "SCHEMA", "start", 1, 2, 3], 10) == [([1, 2, 3], "start")]
    # a trailing STATE after the last record (nothing buffered) rides on the held-back last batch
    assert _scripted_read(tmp_path, ["SCHEMA", 1, 2, "s2", 3, 4, "end"], 2) == [([1, 2], "s2"), ([3, 4], "end")]
    # fewer rows buffered than the flush minimum: the state waits for the next cut, which covers it
    assert _scripted_read(tmp_path, ["SCHEMA", 1, "s1", 2, 3, "s3"], 2) == [([1, 2], "s1"), ([3], "s3")]
    # enough rows buffered: a STATE cuts them into a batch right there
    monkeypatch.setattr(singer_read, "STATE_FLUSH_MIN_ROWS", 2)
    assert _scripted_read(tmp_path, ["SCHEMA", 1, 2, 3, "s3", 4, "s4", 5, 6, "s6", "end"], 100) == [([1, 2, 3], "s3"), ([4, 5, 6], "end")]
    assert _scripted_read(tmp_path, ["SCHEMA", 1, 2, "s2", 3], 100, method="FULL_TABLE") == [([1, 2, 3], None)]  # no states kept, no cuts


# ---------------------------------------------------------------- pinning keeps the source state


def test_pinning_a_bookmark_keeps_the_source_state(tmp_path, capsys):
    nb = tmp_path / "pin.ipynb"
    streams = "".join(
        f"  {s}:\n    replication_method: INCREMENTAL\n    bookmark_properties: [updated]\n    key_properties: [id]\n"
        for s in ("charges", "other")
    )
    # `state set` checks the block, stream and column against the notebook
    write_notebook(nb, [f"%%di_source src\nsource: singer\nconfig:\n  executable: tap\nstreams:\n{streams}"])
    store = StateStore(api.state_path_for(nb))
    store.set("pin", "src", "charges", {"bookmark": {"updated": "2024-01-01T05:00:00+00:00"}, "source_state": CLASSIC, "columns": ["id"]})
    api.set_bookmark(nb, "src", "charges", updated="2024-01-01T02:00:00+00:00")
    assert store.get("pin", "src", "charges") == {
        "bookmark": {"updated": "2024-01-01T02:00:00+00:00"},
        "pinned": True,
        "source_state": CLASSIC,
    }
    assert main(["state", "set", str(nb), "src", "charges", "--value", "updated=2024-01-01T03:00:00+00:00"]) == 0
    assert store.get("pin", "src", "charges")["source_state"] == CLASSIC
    assert main(["state", "set", str(nb), "src", "other", "--value", "updated=2024-01-01T03:00:00+00:00"]) == 0
    assert "source_state" not in store.get("pin", "src", "other")


# ---------------------------------------------------------------- whole pipelines


def _notebook(tmp_path, source: str, stream: str) -> Path:
    destination = (
        f"%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\nstreams:\n"
        f"  {stream}:\n    destination_table: landed\n"
    )
    return write_notebook(tmp_path / "taps.ipynb", [source, destination])


def _singer_cell(executable: str, config: dict, stream: str, key: str) -> str:
    return (
        "%%di_source src\nsource: singer\nconfig:\n"
        f"  executable: {executable}\n  config: {json.dumps(config)}\nstreams:\n"
        f"  {stream}:\n    replication_method: INCREMENTAL\n    bookmark_properties: [{key}]\n    key_properties: [id]\n"
    )


def _run(path, capsys, *args) -> int:
    """Run the notebook; the rows the source read."""
    return synced(path, *args, capsys=capsys)


def _landed(tmp_path, columns: str):
    return duckdb_query(tmp_path / "out.duckdb", f"SELECT {columns} FROM landed ORDER BY id")


def _saved(path, stream) -> dict:
    return StateStore(api.state_path_for(path)).get(path.stem, "src", stream)


def test_classic_tap_gets_its_own_state_back_and_overrides_keep_its_epoch_type(tmp_path, capsys):
    rows_file = tmp_path / "charges.json"

    def charges(*rows):
        rows_file.write_text(json.dumps([{"id": i, "updated": f"2024-01-01T{h:02d}:00:00Z", "amount": a} for i, h, a in rows]))

    charges(*[(i, i, 100 * i) for i in range(1, 6)])
    log = tmp_path / "calls.jsonl"
    exe = recording_tap(tmp_path, "tap-classic", [sys.executable, str(CLASSIC_TAP)], log)
    config = {"rows_file": str(rows_file), "start_date": "2024-01-01T00:00:00Z", "state_every": 2}
    path = _notebook(tmp_path, _singer_cell(exe, config, "charges", "updated"), "charges")

    assert _run(path, capsys) == 5
    first = calls(log)[-1]
    assert first["given"] is None
    last = first["emitted"][-1]
    assert last == {
        "bookmarks": {
            "charges": {"updated": _epoch("2024-01-01T05:00:00+00:00")},
            "charges_events": {"updates_created": _epoch("2024-01-01T05:00:00+00:00")},
        },
        "currently_syncing": None,
    }
    saved = _saved(path, "charges")
    assert saved["source_state"] == last
    assert saved["bookmark"] == {"updated": "2024-01-01T05:00:00+00:00"}  # what panels and `state show` display
    assert _landed(tmp_path, "id, amount") == [(i, 100 * i) for i in range(1, 6)]

    # unchanged rerun: the tap is handed its last STATE verbatim and reads nothing (no full resync)
    assert _run(path, capsys) == 0
    assert calls(log)[-1]["given"] == last

    # changes: two new rows, one updated row
    charges(*[(i, i, 100 * i) for i in (1, 2, 4, 5)], (3, 8, 333), (6, 6, 600), (7, 7, 700))
    assert _run(path, capsys) == 3
    assert calls(log)[-1]["given"] == last
    last = calls(log)[-1]["emitted"][-1]
    assert last["bookmarks"]["charges"] == {"updated": _epoch("2024-01-01T08:00:00+00:00")}
    assert _saved(path, "charges")["source_state"] == last
    assert _landed(tmp_path, "id, amount") == [(1, 100), (2, 200), (3, 333), (4, 400), (5, 500), (6, 600), (7, 700)]

    # a one-run override rewrites only bookmarks.charges.updated, as an epoch number; the saved state stays
    assert _run(path, capsys, "--bookmark", "src.charges.updated=2024-01-01T05:00:00+00:00") == 3  # 6, 7, 3
    given = calls(log)[-1]["given"]
    assert given == {**last, "bookmarks": {**last["bookmarks"], "charges": {"updated": _epoch("2024-01-01T05:00:00+00:00")}}}
    assert _saved(path, "charges")["source_state"] == last

    # `state set` pins a value and keeps the tap's state; the next run writes the pin into it, then moves on
    assert main(["state", "set", str(path), "src", "charges", "--value", "updated=2024-01-01T02:00:00Z"]) == 0
    capsys.readouterr()
    assert _saved(path, "charges")["source_state"] == last
    assert _run(path, capsys) == 5  # 3 (at 08:00), 4, 5, 6, 7
    given = calls(log)[-1]["given"]
    assert given["bookmarks"]["charges"] == {"updated": _epoch("2024-01-01T02:00:00+00:00")}
    assert given["bookmarks"]["charges_events"] == last["bookmarks"]["charges_events"]
    assert _run(path, capsys) == 0
    assert calls(log)[-1]["given"] == calls(log)[-2]["emitted"][-1]
    assert _landed(tmp_path, "id, amount") == [(1, 100), (2, 200), (3, 333), (4, 400), (5, 500), (6, 600), (7, 700)]


@pytest.fixture
def pg_orders(pg_connect):
    return create_orders(pg_connect(), 10, step="1 hour", note=None)


def _pipelinewise_tap_postgres() -> Path:
    # singer_venvs keys a venv by its console script; this one is also called tap-postgres
    with mock.patch.dict(singer_venvs.PACKAGES, {"tap-postgres": PIPELINEWISE}):
        return singer_venvs.singer_executable("tap-postgres")


@pytest.mark.singer
@pytest.mark.postgres
@pytest.mark.parametrize("variant", ["pipelinewise", "meltanolabs"])
def test_real_postgres_taps_get_their_own_state_back(variant, tmp_path, capsys, pg_config, pg_orders):
    pg = {"host": pg_config["host"], "port": pg_config["port"], "user": pg_config["username"], "password": "unused"}
    if variant == "pipelinewise":  # classic: pipelinewise-singer-python
        real = _pipelinewise_tap_postgres()
        config = {**pg, "dbname": pg_config["database"], "filter_schemas": "public"}
    else:  # Meltano SDK
        real = singer_venvs.singer_executable("tap-postgres")
        config = {**pg, "database": pg_config["database"], "filter_schemas": ["public"]}
    log = tmp_path / "calls.jsonl"
    exe = recording_tap(tmp_path, "tap-recorded", [str(real)], log)
    path = _notebook(tmp_path, _singer_cell(exe, config, "public-orders", "updated_at"), "public-orders")

    def landed():
        return _landed(tmp_path, "id, epoch(updated_at)::BIGINT, note")

    assert _run(path, capsys) == 10
    first = calls(log)[-1]
    assert first["given"] is None
    last = first["emitted"][-1]
    assert last["bookmarks"]["public-orders"]["replication_key_value"].startswith("2024-01-01T10:00:00")
    if variant == "pipelinewise":  # keys of its own, which the SDK-shape rebuild used to drop
        assert {"version", "last_replication_method"} <= set(last["bookmarks"]["public-orders"]) and "currently_syncing" in last
    assert _saved(path, "public-orders")["source_state"] == last
    assert _saved(path, "public-orders")["bookmark"] == {"updated_at": "2024-01-01T10:00:00+00:00"}
    expected = [(i, _epoch(f"2024-01-01T{i:02d}:00:00+00:00"), f"n{i}") for i in range(1, 11)]
    assert landed() == expected

    # unchanged rerun: the tap gets its last STATE verbatim; it re-reads only the row at the bookmark (>=)
    assert _run(path, capsys) == 1
    assert calls(log)[-1]["given"] == last
    assert landed() == expected

    pg_orders.execute("UPDATE orders SET updated_at = '2024-01-01 12:00+00', note = 'changed' WHERE id = 4")
    pg_orders.execute("INSERT INTO orders VALUES (11, '2024-01-01 11:00+00', 'n11')")
    last = calls(log)[-1]["emitted"][-1]
    assert _run(path, capsys) == 3  # 10 (at the bookmark), 11, 4
    assert calls(log)[-1]["given"] == last
    expected[3] = (4, _epoch("2024-01-01T12:00:00+00:00"), "changed")
    expected.append((11, _epoch("2024-01-01T11:00:00+00:00"), "n11"))
    assert landed() == expected

    # a one-run override rewrites only replication_key_value in the tap's state
    saved = _saved(path, "public-orders")["source_state"]
    assert _run(path, capsys, "--bookmark", "src.public-orders.updated_at=2024-01-01T09:00:00+00:00") == 4  # 9, 10, 11, 4
    given = calls(log)[-1]["given"]
    entry = {**saved["bookmarks"]["public-orders"], "replication_key_value": "2024-01-01T09:00:00+00:00"}
    assert given == {**saved, "bookmarks": {**saved["bookmarks"], "public-orders": entry}}
    assert _saved(path, "public-orders")["source_state"] == saved
    assert landed() == expected
