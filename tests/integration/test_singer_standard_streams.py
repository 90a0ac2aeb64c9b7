"""The Singer SDK's standard target test streams through every way jupyter-di reads Singer messages:
``jupyter-di target duckdb``, ``jupyter-di target postgresql`` and a ``source: singer`` block.

Each stream ends as the SDK's own target tests expect: an error for an invalid schema, a record
before its schema and a record without its key property; for the others the data is checked against
an oracle built from the messages (``tests/support/singer_sdk_streams.py``): values, unicode, names
with special characters, nested objects and arrays, one row per key (the last record wins), columns
that later SCHEMAs add.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support import singer_sdk_streams as sdk
from tests.support.notebooks import run_notebook, write_notebook

NAMES = sdk.all_names()


def test_the_standard_streams_are_found_in_the_installed_sdk():
    assert {"schema_updates", "duplicate_records", "record_missing_key_property", "special_chars_in_attributes"} <= set(NAMES)


# ---------------------------------------------------------------- helpers


def target(name: str, config: dict[str, Any], tmp_path: Path, *inputs: Path, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``jupyter-di target NAME --config FILE`` with ``inputs`` concatenated on stdin."""
    config_path = tmp_path / f"{name}-config.json"
    config_path.write_text(json.dumps(config))
    data = b"".join(p.read_bytes() if p.read_bytes().endswith(b"\n") else p.read_bytes() + b"\n" for p in inputs)
    return subprocess.run(
        [sys.executable, "-m", "jupyter_di.cli", "target", name, "--config", str(config_path), *args],
        input=data,
        capture_output=True,
        timeout=300,
    )


def duckdb_tables(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT starts_with(table_name, '_jupyter_di')").fetchall()
        ]
        out = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            cur = con.execute(f"SELECT * FROM {quoted}")
            columns = [d[0] for d in cur.description]
            out[name] = {"columns": columns, "rows": [dict(zip(columns, r)) for r in cur.fetchall()]}
        return out


def postgres_tables(connect) -> dict[str, dict[str, Any]]:
    from psycopg import sql

    conn = connect()
    names = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_jupyter\\_di%'"
        ).fetchall()
    ]
    out = {}
    for name in names:
        cur = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("public", name)))
        columns = [d.name for d in cur.description]
        out[name] = {"columns": columns, "rows": [dict(zip(columns, r)) for r in cur.fetchall()]}
    return out


def assert_landed(tables: dict[str, dict[str, Any]], files: list[Path], *, strip_nul: bool = False) -> None:
    expected = sdk.expected_tables(files)
    assert sorted(tables) == sorted(expected)
    for stream, want in expected.items():
        got = tables[stream]
        assert got["columns"] == want["columns"], stream
        assert sdk.normalized(got["rows"], strip_nul=strip_nul) == sdk.normalized(want["rows"], strip_nul=strip_nul), stream


def assert_spot_checks(tables: dict[str, dict[str, Any]], name: str) -> None:
    """A few values written out by hand, so the oracle itself is checked too."""
    rows = {stream: {json.dumps(list(r.values())[0]): r for r in t["rows"]} for stream, t in tables.items()}
    if name == "duplicate_records":
        assert sorted((r["id"], r["metric"]) for r in tables["test_duplicate_records"]["rows"]) == [(1, 100), (2, 20)]
    elif name == "encoded_string_data":
        assert rows["test_strings"]["3"]["info"] == "简单的字串"
        assert rows["test_strings"]["6"]["info"] == 'various " \\ / \n escape sequences'
    elif name == "schema_updates":
        assert tables["test_schema_updates"]["columns"] == ["id", "a1", "a2", "a3", "a4", "a5", "a6"]
        assert rows["test_schema_updates"]["1"]["a6"] is None and rows["test_schema_updates"]["6"]["a6"] == 341
    elif name == "special_chars_in_attributes":
        d = rows["test:SpecialChars!in?attributes"]['"a2e98886"']["d"]
        assert (json.loads(d) if isinstance(d, str) else d)["agent:os:version"] == "10.13.1"
    elif name == "camelcase_complex_schema":  # SCHEMAs only: the table exists with the second SCHEMA's new columns
        assert {"NewCamelCasedAttribute", "_attribute_startswith_underscore", "age"} <= set(tables["ForecastingTypeToCategory"]["columns"])


def check_target_outcome(result: subprocess.CompletedProcess, name: str, tables: dict[str, Any], *, strip_nul: bool = False) -> None:
    err = result.stderr.decode()
    if name in sdk.ERRORS:
        assert result.returncode != 0
        assert sdk.ERRORS[name] in err, err
        assert "Traceback" not in err
        return
    assert result.returncode == 0, err
    assert_landed(tables, [sdk.stream_file(name)], strip_nul=strip_nul)
    assert_spot_checks(tables, name)
    states = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
    last = sdk.last_state(sdk.stream_file(name))
    assert (states[-1] if states else None) == last


# ---------------------------------------------------------------- jupyter-di target duckdb / postgresql


@pytest.mark.parametrize("name", NAMES)
def test_standard_stream_through_target_duckdb(name, tmp_path):
    db = tmp_path / "out.duckdb"
    result = target("duckdb", {"path": str(db)}, tmp_path, sdk.stream_file(name))
    check_target_outcome(result, name, duckdb_tables(db))


@pytest.mark.postgres
@pytest.mark.parametrize("name", NAMES)
def test_standard_stream_through_target_postgresql(name, tmp_path, pg_config, pg_connect):
    result = target("postgresql", pg_config, tmp_path, sdk.stream_file(name))
    check_target_outcome(result, name, postgres_tables(pg_connect), strip_nul=True)


def test_target_upserts_by_key_across_loads_and_appends_without_keys(tmp_path):
    db = tmp_path / "out.duckdb"
    loads = [sdk.stream_file("user_location_data"), sdk.stream_file("user_location_upsert_data")]
    for path in loads:
        assert target("duckdb", {"path": str(db)}, tmp_path, path).returncode == 0
    tables = duckdb_tables(db)
    assert_landed(tables, loads)
    users = {r["id"]: r["name"] for r in tables["test_users"]["rows"]}
    assert users == {1: "Johny", 2: "George", 3: "Jacob", 4: "Josh", 5: "Jim", 8: "Thomas", 12: "Paul", 13: "Mary"}

    db2 = tmp_path / "nopk.duckdb"
    for stem in ("no_primary_keys", "no_primary_keys_append"):
        assert target("duckdb", {"path": str(db2)}, tmp_path, sdk.stream_file(stem)).returncode == 0
    assert sorted(r["metric"] for r in duckdb_tables(db2)["test_no_pk"]["rows"]) == [11, 22, 33, 101, 202, 303, 404, 505]


@pytest.mark.postgres
def test_target_postgresql_upserts_by_key_across_loads(tmp_path, pg_config, pg_connect):
    loads = [sdk.stream_file("user_location_data"), sdk.stream_file("user_location_upsert_data")]
    for path in loads:
        assert target("postgresql", pg_config, tmp_path, path).returncode == 0
    assert_landed(postgres_tables(pg_connect), loads)


def test_target_refuses_what_it_is_told_to(tmp_path):
    db = tmp_path / "out.duckdb"
    # validate_records: the record without its required 'id' is reported with its position
    result = target(
        "duckdb", {"path": str(db)}, tmp_path, sdk.stream_file("record_missing_required_property"), args=("--validate-records",)
    )
    err = result.stderr.decode()
    assert result.returncode != 0 and "record 1: (record): 'id' is a required property" in err, err
    # without new columns: the SCHEMA adding a3 is refused, naming it; no state was printed, and the
    # row before it, not committed yet, is not written
    result = target("duckdb", {"path": str(db)}, tmp_path, sdk.stream_file("schema_updates"), args=("--no-new-columns",))
    err = result.stderr.decode()
    assert result.returncode != 0 and "new property 'a3'" in err, err
    assert result.stdout == b"" and "test_schema_updates" not in duckdb_tables(db)
    # key properties changed after records: refused
    changed = tmp_path / "keys.singer"
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}}
    changed.write_text(
        "\n".join(
            json.dumps(m)
            for m in [
                {"type": "SCHEMA", "stream": "people", "schema": schema, "key_properties": ["id"]},
                {"type": "RECORD", "stream": "people", "record": {"id": 1, "email": "a@x"}},
                {"type": "SCHEMA", "stream": "people", "schema": schema, "key_properties": ["email"]},
                {"type": "RECORD", "stream": "people", "record": {"id": 2, "email": "b@x"}},
            ]
        )
    )
    result = target("duckdb", {"path": str(tmp_path / "k.duckdb")}, tmp_path, changed)
    err = result.stderr.decode()
    assert result.returncode != 0 and "changed its key properties from ['id'] to ['email'] after 1 record(s)" in err, err


def test_target_config_secrets_are_never_echoed(tmp_path):
    secret = "pw-Zq81-very-secret"
    config = {"host": "127.0.0.1", "port": 1, "database": "x", "username": "u", "password": secret, "connect_timeout": 2}
    result = target("postgresql", config, tmp_path, sdk.stream_file("camelcase"))
    assert result.returncode != 0
    assert secret not in result.stderr.decode() + result.stdout.decode()
    result = target("duckdb", {"path": str(tmp_path / "x.duckdb"), "bogus_key": secret}, tmp_path, sdk.stream_file("camelcase"))
    assert result.returncode != 0 and "unknown config key" in result.stderr.decode()
    assert secret not in result.stderr.decode()


# ---------------------------------------------------------------- a source: singer block


def _source_notebook(tmp_path: Path, name: str, dest_streams: str = "", stream_settings: str = "") -> Path:
    exe = sdk.cat_tap(tmp_path)
    config = json.dumps({"file": str(sdk.stream_file(name))})
    return write_notebook(
        tmp_path / f"{name}.ipynb",
        [
            f"%%di_source src\nsource: singer\nconfig:\n  executable: {exe}\n  config: {config}\n{stream_settings}",
            f"%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: {tmp_path / 'out.duckdb'}\n{dest_streams}",
        ],
    )


@pytest.mark.parametrize("name", NAMES)
def test_standard_stream_through_a_singer_source_block(name, tmp_path, capsys):
    result = run_notebook(_source_notebook(tmp_path, name), capsys=capsys)
    if name in sdk.ERRORS:
        assert result.code != 0
        assert sdk.ERRORS[name] in result.out + result.err
        return
    assert result.code == 0, result.out + result.err
    tables = duckdb_tables(tmp_path / "out.duckdb")
    assert_landed(tables, [sdk.stream_file(name)])
    assert_spot_checks(tables, name)


def test_a_singer_source_block_upserts_by_key_into_a_table_loaded_before(tmp_path, capsys):
    assert run_notebook(_source_notebook(tmp_path, "user_location_data"), capsys=capsys).code == 0
    dest = "streams:\n" + "".join(
        f"  {s}:\n    unique_constraints: [id]\n" for s in ("test_users", "test_locations", "test_user_in_location")
    )
    result = run_notebook(_source_notebook(tmp_path, "user_location_upsert_data", dest), capsys=capsys)
    assert result.code == 0, result.err
    assert_landed(
        duckdb_tables(tmp_path / "out.duckdb"), [sdk.stream_file("user_location_data"), sdk.stream_file("user_location_upsert_data")]
    )


def test_a_singer_source_block_refuses_new_columns_and_invalid_records_when_told(tmp_path, capsys):
    settings = "streams:\n  test_schema_updates:\n    auto_add_new_fields: false\n"
    result = run_notebook(_source_notebook(tmp_path, "schema_updates", stream_settings=settings), capsys=capsys)
    assert result.code != 0 and "new property 'a3'" in result.err, result.err
    settings = "streams:\n  test_record_missing_required_property:\n    validate_records: true\n"
    result = run_notebook(_source_notebook(tmp_path, "record_missing_required_property", stream_settings=settings), capsys=capsys)
    assert result.code != 0 and "'id' is a required property" in result.err, result.err
