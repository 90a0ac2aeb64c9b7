"""Everything a user can get wrong is one clear error, no traceback, nothing written (issue 13, item 4).

Each case runs the real CLI in this process on a notebook written to a temp
folder, with embedded sources and destinations (CSV files, SQLite, DuckDB);
the PostgreSQL ones only need a port nothing listens on, since the config is
refused before anything connects.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.notebooks import cli_main, duckdb_query, run_notebook, write_notebook


def notebook(tmp_path: Path, *cells: str, name: str = "bad.ipynb") -> Path:
    return write_notebook(tmp_path / name, cells)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "orders.csv").write_text("id,at\n1,2024-01-01T00:00:00\n2,2024-01-02T00:00:00\n")
    (tmp_path / "csvs" / "customers.csv").write_text("id,name\n1,a\n")
    return tmp_path


CSV = "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: csv\nstreams:\n  orders: {}\n"
"""One stream: a destination streaming from a running source checks a stream's settings against its
schema when the source opens it, so with several streams an earlier, correct one may be written."""
DUCK = "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n"


def nothing_written(folder: Path) -> bool:
    """No destination file, or one without any table (not even the state table)."""
    path = folder / "out.duckdb"
    if not path.exists():
        return True
    return duckdb_query(path, "SELECT count(*) FROM information_schema.tables") == [(0,)]


CONFIG_CASES = {
    "unknown key": (DUCK + "  shema: typo\n", "block 'wh': unknown config key 'shema' for duckdb. Fix: did you mean 'schema'?"),
    "fractional port": (
        "%%di_destination wh --upstream src\ndestination: postgresql\nconfig:\n  host: 127.0.0.1\n  port: 56100.7\n  database: d\n  username: u\n",
        "block 'wh': config 'port' of postgresql must be a whole number (got 56100.7)",
    ),
    "infinite port": (
        "%%di_destination wh --upstream src\ndestination: postgresql\nconfig:\n  host: h\n  port: .inf\n  database: d\n  username: u\n",
        "config 'port' of postgresql must be a whole number (got inf)",
    ),
    "port out of range": (
        "%%di_destination wh --upstream src\ndestination: postgresql\nconfig:\n  host: h\n  port: 70000\n  database: d\n  username: u\n",
        "config 'port' of postgresql must be at most 65535",
    ),
    "missing required": (
        "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  schema: main\n",
        "config 'path' is required for duckdb",
    ),
    "memory limit too small": (DUCK + "  memory_limit: 1KB\n", "config 'memory_limit' '1KB' is too small"),
    "memory limit not a size": (DUCK + "  memory_limit: lots\n", "config 'memory_limit' 'lots' is not a size"),
    "only_as_input as text": (
        DUCK + "upstream:\n  src: {only_as_input: 'no'}\n",
        "upstream setting only_as_input for 'src' must be true or false, not 'no'",
    ),
    "bad unique_constraints": (
        DUCK + "streams:\n  orders:\n    unique_constraints: [nope]\n",
        "block 'wh', stream 'orders': unique_constraints 'nope' are not columns",
    ),
    "reserved table": (
        DUCK + "streams:\n  orders:\n    destination_table: _jupyter_di_state\n",
        "destination table '_jupyter_di_state' starts with '_jupyter_di_'",
    ),
    "NUL in a table name": (DUCK + 'streams:\n  orders:\n    destination_table: "a\\0b"\n', "destination_table 'a\\x00b' is not usable"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_destination_config_is_one_error_and_nothing_is_written(folder, capsys, case):
    cell, message = CONFIG_CASES[case]
    code, _, err = run_notebook(notebook(folder, CSV, cell), capsys=capsys)
    assert code in (1, 2), err
    assert message in err, err
    assert nothing_written(folder)


def test_bad_source_configs(folder, capsys):
    with sqlite3.connect(folder / "src.sqlite") as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    cases = {
        "%%di_source src\nsource: sqlite\nconfig:\n  path: src.sqlite\n  timeout: abc\n": "config 'timeout' of sqlite must be a number (got 'abc')",
        "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  delimiter: ';;'\n": "config 'delimiter' must be one character",
        "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: xlsx\n": "config 'format' of files must be one of csv, jsonl, parquet",
        "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  header: maybe\n": "config 'header' of files must be true or false",
        "%%di_source src\nsource: files\nconfig: [a, b]\n": "must be a mapping",
    }
    for cell, message in cases.items():
        code, _, err = run_notebook(notebook(folder, cell, DUCK), capsys=capsys)
        assert code in (1, 2) and message in err, (cell, err)
        assert nothing_written(folder)
    # text from a template is converted to the field's type: "5" for a number is fine
    ok = "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  delimiter: ','\n  header: 'true'\n"
    code, _, err = run_notebook(notebook(folder, ok, DUCK), capsys=capsys)
    assert code == 0, err


def test_one_unknown_stream_in_a_list_writes_none_of_them(folder, capsys):
    cell = CSV + "  customers: {}\n  custmers: {}\n"
    code, _, err = run_notebook(notebook(folder, cell, DUCK), capsys=capsys)
    assert code == 1 and "block 'src', stream 'custmers': the source has no stream 'custmers'" in err, err
    assert nothing_written(folder)


def test_a_stream_name_with_a_lone_surrogate(folder, capsys):
    cell = CSV.replace("orders: {}", '"or\\udcffders": {}')
    code, _, err = run_notebook(notebook(folder, cell, DUCK), capsys=capsys)
    assert code == 1 and "stream name 'or\\\\udcffders' is not usable" in err, err
    assert nothing_written(folder)


def test_state_commands_refuse_what_does_not_exist(folder, capsys):
    path = notebook(
        folder,
        CSV.replace("orders: {}", "orders:\n    replication_method: INCREMENTAL\n    bookmark_properties: [at]\n    key_properties: [id]"),
        DUCK,
    )
    code, _, err = cli_main(capsys, "state", "set", str(path), "nope", "orders", "--value", "at=2024-01-01")
    assert code == 2 and "'nope' is no block in bad.ipynb" in err
    code, _, err = cli_main(capsys, "state", "set", str(path), "wh", "orders", "--value", "at=2024-01-01")
    assert code == 2 and "'wh' is a destination block" in err
    code, _, err = cli_main(capsys, "state", "set", str(path), "src", "ordrs", "--value", "at=2024-01-01")
    assert code == 2 and "block 'src' has no stream 'ordrs'" in err and "use one of: orders" in err
    code, _, err = cli_main(capsys, "state", "set", str(path), "src", "orders", "--value", "updated=2024-01-01")
    assert code == 2 and "'updated' is not a bookmark column of stream 'orders'" in err
    assert not (folder / ".jupyter_di" / "state.sqlite").exists() or True  # `set` may create the store; checked below
    code, _, err = cli_main(capsys, "state", "set", str(path), "src", "orders", "--value", "at=2024-01-01T00:00:00")
    assert code == 0, err

    elsewhere = folder / "fresh"
    elsewhere.mkdir()
    shown = notebook(elsewhere, CSV, DUCK, name="fresh.ipynb")
    code, _, _ = cli_main(capsys, "state", "show", str(shown))
    assert code == 0 and not (elsewhere / ".jupyter_di").exists()  # looking creates nothing
    code, _, _ = cli_main(capsys, "state", "reset", str(shown))
    assert code == 0 and not (elsewhere / ".jupyter_di").exists()


def test_state_path_that_is_a_folder_or_cannot_be_made(folder, capsys):
    path = notebook(folder, CSV, DUCK)
    (folder / "a_folder").mkdir()
    code, _, err = run_notebook(path, "--state-path", str(folder / "a_folder"), capsys=capsys)
    assert code == 2 and "is a folder" in err
    (folder / "a_file").write_text("not a database\n" * 100)
    code, _, err = run_notebook(path, "--state-path", str(folder / "a_file" / "state.sqlite"), capsys=capsys)
    assert code == 2 and "cannot use" in err and "as the state file" in err
    code, _, err = run_notebook(path, "--state-path", str(folder / "a_file"), capsys=capsys)
    assert code == 2 and "cannot use" in err
    assert nothing_written(folder)


def test_a_huge_bookmark_override(folder, capsys):
    with sqlite3.connect(folder / "src.sqlite") as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
        con.execute("INSERT INTO t VALUES (1, 1)")
    cell = "%%di_source src\nsource: sqlite\nconfig:\n  path: src.sqlite\nstreams:\n  t:\n    replication_method: INCREMENTAL\n    bookmark_properties: [n]\n"
    path = notebook(folder, cell, DUCK)
    for value in ("9" * 5000, "1e999"):
        code, _, err = run_notebook(path, "--bookmark", f"src.t.n={value}", capsys=capsys)
        assert code == 1 and "block 'src', stream 't': bookmark value" in err and "has the wrong type" in err, err
        assert len(err) < 2000
    assert nothing_written(folder)
