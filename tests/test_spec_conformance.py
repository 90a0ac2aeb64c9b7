"""The product spec, row by row: every table and promise a user can write or rely on.

Each test names the spec section it proves.  Blocks run through the real
magics in an IPython shell against real DuckDB/SQLite files and a real
PostgreSQL; the only test double is a slow *connector* registered with
``registry.register`` to show that ``run_in_parallel`` streams overlap.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import ConnectorSpec, Destination, ReadRequest, Source, WriteResult
from jupyter_di.connectors.catalog import catalog_entry_for_arrow
from tests.support.shell import fresh_shell

VARIABLES = {"execution_date", "pipeline"}  # runtime variables every block function also gets


def in_panel() -> bool:
    """True on the panels' background thread, which re-runs a Python block's decorators to show them."""
    return threading.current_thread().name.startswith("jupyter-di-panel")


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    runner = fresh_shell()
    seen: dict[str, Any] = {}
    calls: list[str] = []

    def record(kind: str, args: tuple, kwargs: dict, **extra: Any) -> None:
        """What a decorated function got, during pipeline runs only (not the panel's re-run)."""
        if in_panel():
            return
        calls.append(kind)
        seen[kind] = (args, dict(kwargs))
        seen.update(extra)

    runner.ip.user_ns.update(seen=seen, calls=calls, record=record)
    yield runner
    runner.ip.extension_manager.unload_extension("jupyter_di")


@pytest.fixture
def shop_db(tmp_path) -> Path:
    """A DuckDB file with two tables: users (3 rows) and accounts (2 rows)."""
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR, email VARCHAR, updated_at TIMESTAMP)")
        con.execute(
            "INSERT INTO users VALUES (1, 'Ada', 'ada@x.io', '2024-01-01 10:00'), (2, 'Bo', 'bo@x.io', '2024-01-02 10:00'),"
            " (3, 'Cy', NULL, '2024-01-03 10:00')"
        )
        con.execute("CREATE TABLE accounts (id INTEGER, power DOUBLE, created_at DATE)")
        con.execute("INSERT INTO accounts VALUES (1, 3.5, '3000-01-01'), (2, 0.25, '2024-02-29')")
    return path


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def column_types(path: Path, table: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in query(path, f'DESCRIBE "{table}"')}


def tables(path: Path) -> set[str]:
    return {t for (t,) in query(path, "SELECT table_name FROM information_schema.tables WHERE table_name <> '_jupyter_di_state'")}


def python_source(path: Path, *, selected: str = "", catalog: str = "", extra: str = "", connector: str = "duckdb") -> str:
    """The body of a ``--lang python`` source cell reading the DuckDB file ``path``."""
    return f"""
@data_integration_source
def source(*args, **kwargs):
    record('source', args, kwargs)
    return {connector!r}

@data_integration_config
def config(*args, **kwargs):
    record('config', args, kwargs)
    return {{'path': {str(path)!r}}}
{selected}
{catalog}
{extra}
"""


def extra_kwargs(recorded: tuple[tuple, dict]) -> set[str]:
    return set(recorded[1]) - VARIABLES


# --------------------------------------------------------------------------------------------
# Python blocks: the five decorators (table "Configuration / Example / Decorator / Description")
# --------------------------------------------------------------------------------------------
def test_source_decorator_is_required_and_its_return_value_names_the_connector(shell, shop_db):
    body = python_source(shop_db).replace("@data_integration_source\n", "")
    message = shell.error(f"%%di_source src --lang python\n{body}")
    assert message.startswith("block 'src': the cell has no @data_integration_source function.")
    assert "returns the connector name" in message

    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, selected=SELECT_USERS)}")
    assert shell.ip.user_ns["out"]["columns"] == ["id", "name", "email", "updated_at"]  # read by 'duckdb'

    message = shell.error(f"%%di_source src --lang python\n{python_source(shop_db, connector='duckbd')}")
    assert "no connector named 'duckbd'" in message and "Did you mean 'duckdb'" in message


def test_source_must_return_a_connector_name_string(shell, shop_db):
    body = python_source(shop_db).replace("return 'duckdb'", "return 42")
    message = shell.error(f"%%di_source src --lang python\n{body}")
    assert "@data_integration_source must return the connector name as a string, not 42." in message


SELECT_USERS = """
@data_integration_selected_streams
def selected_streams(*args, **kwargs):
    record('selected_streams', args, kwargs)
    return ['users']
"""


def test_destination_decorator_is_required_and_names_the_connector(shell, tmp_path):
    shell.ok("%%di_block rows\n@data_loader\ndef f(**kw):\n    return [{'id': 1}, {'id': 2}]\n")
    config = f"@data_integration_config\ndef config(*a, **kw):\n    return {{'path': {str(tmp_path / 'wh.duckdb')!r}}}\n"
    message = shell.error(f"%%di_destination wh --upstream rows --lang python\n{config}")
    assert message.startswith("block 'wh': the cell has no @data_integration_destination function.")
    shell.ok(
        f"%%di_destination wh --upstream rows --lang python\n@data_integration_destination\ndef d(*a, **kw):\n    return 'duckdb'\n{config}"
    )
    assert query(tmp_path / "wh.duckdb", 'SELECT id FROM "rows" ORDER BY id') == [(1,), (2,)]


def test_config_decorator_is_required_and_its_dict_configures_the_connector(shell, shop_db, tmp_path):
    body = "@data_integration_source\ndef s(*a, **kw):\n    return 'duckdb'\n"
    message = shell.error(f"%%di_source src --lang python\n{body}")
    assert message.startswith("block 'src': the cell has no @data_integration_config function.")
    message = shell.error(
        f"%%di_source src --lang python\n{body}@data_integration_config\ndef c(*a, **kw):\n    return ['not', 'a', 'dict']\n"
    )
    assert "@data_integration_config must return a dict, not list." in message
    # the dict reaches the connector: a different path reads a different database
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE only_here (x INTEGER)")
        con.execute("INSERT INTO only_here VALUES (7)")
    shell.ok(
        f"%%di_source src --lang python -o out\n{body}@data_integration_config\ndef c(*a, **kw):\n    return {{'path': {str(other)!r}}}\n"
    )
    assert shell.ip.user_ns["out"]["stream"]["stream"] == "only_here" and shell.ip.user_ns["out"]["rows"] == [[7]]


def test_selected_streams_return_value_chooses_the_streams(shell, shop_db):
    body = python_source(shop_db, selected=SELECT_USERS.replace("['users']", "['accounts']"))
    shell.ok(f"%%di_source src --lang python -o out\n{body}")
    out = shell.ip.user_ns["out"]
    assert out["stream"]["stream"] == "accounts"
    assert out["rows"] == [[1, 3.5, dt.date(3000, 1, 1)], [2, 0.25, dt.date(2024, 2, 29)]]


def test_catalog_return_value_overrides_stream_settings_and_columns(shell, shop_db, tmp_path):
    catalog = """
@data_integration_catalog
def catalog(*args, **kwargs):
    return {'streams': [{
        'tap_stream_id': 'users', 'stream': 'users',
        'replication_method': 'INCREMENTAL', 'bookmark_properties': ['updated_at'], 'key_properties': ['id'],
        'metadata': [
            {'breadcrumb': [], 'metadata': {'selected': True}},
            {'breadcrumb': ['properties', 'id'], 'metadata': {'selected': True}},
            {'breadcrumb': ['properties', 'name'], 'metadata': {'selected': True}},
            {'breadcrumb': ['properties', 'email'], 'metadata': {'selected': False}},
            {'breadcrumb': ['properties', 'updated_at'], 'metadata': {'selected': True}},
        ],
    }]}
"""
    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, catalog=catalog)}")
    out = shell.ip.user_ns["out"]
    assert out["columns"] == ["id", "name", "updated_at"]  # email deselected
    assert out["stream"]["replication_method"] == "INCREMENTAL" and out["stream"]["bookmark_properties"] == ["updated_at"]
    assert [r[0] for r in out["rows"]] == [1, 2, 3]
    # INCREMENTAL: the bookmark was saved; a second run only reads from it (inclusive)
    shell.ok(f"%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: {tmp_path / 'wh.duckdb'}\n")
    with duckdb.connect(str(shop_db)) as con:
        con.execute("INSERT INTO users VALUES (4, 'Di', 'di@x.io', '2024-01-04 10:00')")
    shell.ok("%di_run")
    assert [r[0] for r in shell.ip.user_ns["out"]["rows"]] == [3, 4]
    assert query(tmp_path / "wh.duckdb", 'SELECT id, name FROM "users" ORDER BY id') == [(1, "Ada"), (2, "Bo"), (3, "Cy"), (4, "Di")]


# --------------------------------------------------------------------------------------------
# Keyword arguments inside the decorated functions, and the order they run in
# --------------------------------------------------------------------------------------------
SELECTED_CALLED = """
@data_integration_selected_streams(discover_streams=DISCOVER)
def selected_streams(*args, **kwargs):
    record('selected_streams', args, kwargs, **{'discover_streams_func()': kwargs['discover_streams_func']() if 'discover_streams_func' in kwargs else None})
    return ['users', 'accounts']
"""
CATALOG_CALLED = """
@data_integration_catalog(discover=DISCOVER, select_all=SELECT_ALL)
def catalog(*args, **kwargs):
    discovered = kwargs['discover_func']() if 'discover_func' in kwargs else None
    record('catalog', args, kwargs, **{'discover_func()': discovered})
    return kwargs.get('catalog') or discovered
"""
CATALOG_BARE = """
@data_integration_catalog
def catalog(*args, **kwargs):
    record('catalog', args, kwargs)
    return None
"""


def test_source_functions_get_exactly_the_spec_keywords_and_run_in_spec_order(shell, shop_db):
    selected = SELECTED_CALLED.replace("DISCOVER", "True")
    catalog = CATALOG_CALLED.replace("DISCOVER", "True").replace("SELECT_ALL", "True")
    # the catalog function is written first: order is the spec's, not the cell's
    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, selected=catalog + selected)}")
    seen = shell.ip.user_ns["seen"]
    assert shell.ip.user_ns["calls"] == ["source", "config", "selected_streams", "catalog"]
    assert extra_kwargs(seen["source"]) == set()
    assert extra_kwargs(seen["config"]) == {"source"} and seen["config"][1]["source"] == "duckdb"
    assert extra_kwargs(seen["selected_streams"]) == {"source", "config", "selected_streams", "discover_streams_func"}
    kwargs = seen["selected_streams"][1]
    assert kwargs["config"] == {"path": str(shop_db)}
    assert sorted(kwargs["selected_streams"]) == ["accounts", "users"]  # all stream names of the source
    assert sorted(seen["discover_streams_func()"]) == ["accounts", "users"]  # same as selected_streams
    assert extra_kwargs(seen["catalog"]) == {"source", "config", "selected_streams", "catalog", "discover_func"}
    kwargs = seen["catalog"][1]
    assert kwargs["selected_streams"] == ["users", "accounts"]  # what selected_streams() returned
    assert [s["tap_stream_id"] for s in kwargs["catalog"]["streams"]] == ["accounts", "users"]
    assert seen["discover_func()"] == kwargs["catalog"]  # invoking discover_func gives the same catalog
    assert [o["stream"]["stream"] for o in shell.ip.user_ns["out"]] == ["users", "accounts"]


def test_bare_decorators_inject_no_discovery_helpers(shell, shop_db):
    shell.ok(f"%%di_source src --lang python\n{python_source(shop_db, selected=SELECT_USERS, catalog=CATALOG_BARE)}")
    seen = shell.ip.user_ns["seen"]
    assert extra_kwargs(seen["selected_streams"]) == {"source", "config"}
    assert extra_kwargs(seen["catalog"]) == {"source", "config", "selected_streams"}


def test_called_decorators_without_discovery_inject_only_the_functions(shell, shop_db):
    selected = SELECTED_CALLED.replace("DISCOVER", "False")
    catalog = CATALOG_CALLED.replace("DISCOVER", "False").replace("SELECT_ALL", "True")
    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, selected=selected, catalog=catalog)}")
    seen = shell.ip.user_ns["seen"]
    assert extra_kwargs(seen["selected_streams"]) == {"source", "config", "discover_streams_func"}
    assert extra_kwargs(seen["catalog"]) == {"source", "config", "selected_streams", "discover_func"}
    # discover_func() honours selected_streams and (select_all=True) selects streams and all their fields
    discovered = seen["discover_func()"]
    assert [s["tap_stream_id"] for s in discovered["streams"]] == ["accounts", "users"]
    for entry in discovered["streams"]:
        assert all(item["metadata"]["selected"] is True for item in entry["metadata"])
    assert [o["columns"] for o in shell.ip.user_ns["out"]] == [["id", "name", "email", "updated_at"], ["id", "power", "created_at"]]


def test_select_all_false_leaves_discovered_streams_unselected(shell, shop_db):
    catalog = """
@data_integration_catalog(discover=True, select_all=False)
def catalog(*args, **kwargs):
    cat = kwargs['catalog']
    seen['unselected'] = [
        (s['tap_stream_id'], [m['metadata'].get('selected') for m in s['metadata']]) for s in cat['streams']
    ]
    # select one stream and two of its columns by hand, via metadata
    users = [s for s in cat['streams'] if s['tap_stream_id'] == 'users'][0]
    for item in users['metadata']:
        if item['breadcrumb'] in ([], ['properties', 'name'], ['properties', 'updated_at']):
            item['metadata']['selected'] = True
    return cat
"""
    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, catalog=catalog)}")
    assert shell.ip.user_ns["seen"]["unselected"] == [("accounts", [False] * 4), ("users", [False] * 5)]
    out = shell.ip.user_ns["out"]
    assert out["stream"]["stream"] == "users"  # accounts stayed unselected
    assert out["columns"] == ["id", "name", "updated_at"]  # id is the key (automatic)
    # a catalog that selects nothing is an error, not "sync everything"
    nothing = catalog.replace(
        "return cat",
        "return {'streams': [dict(s, metadata=[{'breadcrumb': [], 'metadata': {'selected': False}}]) for s in cat['streams']]}",
    )
    message = shell.error(f"%%di_source src --lang python\n{python_source(shop_db, catalog=nothing)}")
    assert "the catalog selects no streams." in message and "select_all=True" in message


def test_select_all_true_selects_only_the_selected_streams(shell, shop_db):
    selected = SELECT_USERS
    catalog = CATALOG_CALLED.replace("DISCOVER", "True").replace("SELECT_ALL", "True")
    shell.ok(f"%%di_source src --lang python -o out\n{python_source(shop_db, selected=selected, catalog=catalog)}")
    cat = shell.ip.user_ns["seen"]["catalog"][1]["catalog"]
    assert [s["tap_stream_id"] for s in cat["streams"]] == ["users"]  # discovery limited to selected_streams
    assert all(item["metadata"]["selected"] for item in cat["streams"][0]["metadata"])
    assert shell.ip.user_ns["out"]["stream"]["stream"] == "users"


def test_destination_functions_get_destination_keywords_and_never_discovery(shell, tmp_path):
    shell.ok("%%di_block rows\n@data_loader\ndef f(**kw):\n    return [{'id': 1}]\n")
    cell = f"""%%di_destination wh --upstream rows --lang python
@data_integration_destination
def d(*args, **kwargs):
    record('destination', args, kwargs)
    return 'duckdb'
@data_integration_config
def c(*args, **kwargs):
    record('config', args, kwargs)
    return {{'path': {str(tmp_path / "wh.duckdb")!r}}}
@data_integration_selected_streams()
def s(*args, **kwargs):
    record('selected_streams', args, kwargs)
    return ['rows']
@data_integration_catalog()
def cat(*args, **kwargs):
    record('catalog', args, kwargs)
    return None
"""
    shell.ok(cell)
    seen = shell.ip.user_ns["seen"]
    assert shell.ip.user_ns["calls"] == ["destination", "config", "selected_streams", "catalog"]
    assert extra_kwargs(seen["destination"]) == set()
    assert extra_kwargs(seen["config"]) == {"destination"} and seen["config"][1]["destination"] == "duckdb"
    assert extra_kwargs(seen["selected_streams"]) == {"destination", "config"}  # no discover_streams_func
    assert extra_kwargs(seen["catalog"]) == {"destination", "config", "selected_streams"}  # no discover_func/catalog
    assert seen["catalog"][1]["selected_streams"] == ["rows"]
    assert query(tmp_path / "wh.duckdb", 'SELECT id FROM "rows"') == [(1,)]
    for decorator, option in (
        ("data_integration_selected_streams", "discover_streams=True"),
        ("data_integration_catalog", "discover=True"),
        ("data_integration_catalog", "select_all=False"),
    ):
        bad = cell.replace(f"@{decorator}()", f"@{decorator}({option})")
        message = shell.error(bad)
        assert f"@{decorator}({option.split('=')[0]}=...) is only available in source blocks." in message


# --------------------------------------------------------------------------------------------
# Data from upstream blocks: inputs as positional arguments, the three upstream options
# --------------------------------------------------------------------------------------------
CREDS = """%%di_block pg_credentials
@custom
def get_credentials(*args, **kwargs):
    return dict(PG)
"""


def test_inputs_are_positional_arguments_of_every_decorated_function_in_upstream_order(shell, shop_db):
    shell.ok("%%di_block first\n@custom\ndef f(**kw):\n    return {'name': 'first'}\n")
    shell.ok(f"%%di_block second\n@custom\ndef f(**kw):\n    return {{'path': {str(shop_db)!r}}}\n")
    body = """
@data_integration_source
def source(*args, **kwargs):
    seen['source'] = args
    return 'duckdb'
@data_integration_config
def config(creds, *args, **kwargs):   # the spec's `def config(creds, *args, **kwargs)`
    seen['config'] = (creds, args)
    return dict(path=args[0]['path'])
@data_integration_selected_streams
def selected(*args, **kwargs):
    seen['selected_streams'] = args
    return ['accounts']
@data_integration_catalog
def catalog(first, second, **kwargs):
    seen['catalog'] = (first, second)
    return None
"""
    shell.ok(f"%%di_source src --upstream first second --lang python -o out\n{body}")
    seen = shell.ip.user_ns["seen"]
    expected = ({"name": "first"}, {"path": str(shop_db)})
    assert seen["source"] == expected
    assert seen["config"] == (expected[0], (expected[1],))
    assert seen["selected_streams"] == expected and seen["catalog"] == expected
    assert shell.ip.user_ns["out"]["rows"][0] == [1, 3.5, dt.date(3000, 1, 1)]


def test_use_output_as_input_false_keeps_an_upstream_out_of_the_arguments(shell, shop_db):
    shell.ok("%%di_block first\n@custom\ndef f(**kw):\n    return 'first'\n")
    shell.ok("%%di_block second\n@custom\ndef f(**kw):\n    return 'second'\n")
    body = python_source(shop_db, selected=SELECT_USERS, extra="upstream = {'first': {'use_output_as_input': False}}")
    shell.ok(f"%%di_source src --upstream first second --lang python\n{body}")
    assert shell.ip.user_ns["seen"]["config"][0] == ("second",)
    # YAML: block_output() of a non-input upstream says how to fix it
    message = shell.error(
        "%%di_source y --upstream first\nsource: duckdb\nconfig:\n  path: \"{{ block_output('first') }}\"\nupstream:\n  first: {use_output_as_input: false}\n"
    )
    assert "upstream block 'first' is not an input of this block." in message and "use_output_as_input: true" in message


TITANIC = """%%di_block titanic_survival
import pandas as pd
@data_loader
def load_data(*args, **kwargs):
    return pd.DataFrame({
        'PassengerId': [2, 3], 'Survived': [1, 1], 'Pclass': [1, 3],
        'Name': ['Mrs. John Bradley (Florence Briggs Thayer)', 'Miss. Laina Heikkinen'], 'Sex': ['female', 'female'],
        'Age': [38.0, 26.0], 'SibSp': [1, 0], 'Parch': [0, 0], 'Ticket': ['PC 17599', 'STON/O2. 3101282'],
        'Fare': [71.2833, 7.925], 'Cabin': ['C85', None], 'Embarked': ['C', 'S'],
    })
"""
TITANIC_TYPES = {
    "PassengerId": "integer",
    "Survived": "integer",
    "Pclass": "integer",
    "Name": "string",
    "Sex": "string",
    "Age": "number",
    "SibSp": "integer",
    "Parch": "integer",
    "Ticket": "string",
    "Fare": "number",
    "Cabin": "string",
    "Embarked": "string",
}


def test_use_catalog_as_input_gives_a_data_and_catalog_tuple_inferred_from_dtypes(shell, tmp_path):
    shell.ok(TITANIC)
    cell = f"""%%di_destination titanic_wh --upstream titanic_survival --lang python
upstream = {{'titanic_survival': {{'use_catalog_as_input': True}}}}

@data_integration_destination
def destination(*args, **kwargs):
    return 'duckdb'

@data_integration_config
def config(*args, **kwargs):
    return {{'path': {str(tmp_path / "wh.duckdb")!r}}}

@data_integration_catalog
def catalog(titanic_survival_data_and_catalog, *args, **kwargs):
    data, catalog = titanic_survival_data_and_catalog
    seen['input'] = (type(data).__name__, len(data), catalog)
    stream = catalog['streams'][0]
    stream['destination_table'] = 'passengers'
    stream['unique_constraints'] = ['PassengerId']
    stream['replication_method'] = 'INCREMENTAL'
    return catalog
"""
    shell.ok(cell)
    kind, rows, catalog = shell.ip.user_ns["seen"]["input"]
    assert (kind, rows) == ("DataFrame", 2)
    [stream] = catalog["streams"]
    assert stream["stream"] == "titanic_survival"
    assert {name: [t for t in p["type"] if t != "null"][0] for name, p in stream["schema"]["properties"].items()} == TITANIC_TYPES
    assert [m["breadcrumb"] for m in stream["metadata"]][1:] == [["properties", c] for c in TITANIC_TYPES]
    # the catalog built at run time decides the table and the upsert key: a rerun never duplicates
    shell.ok("%di_run")
    assert query(tmp_path / "wh.duckdb", 'SELECT "PassengerId", "Fare", "Cabin" FROM passengers ORDER BY 1') == [
        (2, 71.2833, "C85"),
        (3, 7.925, None),
    ]
    assert column_types(tmp_path / "wh.duckdb", "passengers")["Age"] == "DOUBLE"


def test_use_catalog_as_input_in_yaml_interpolation_and_catalog_only(shell, tmp_path):
    shell.ok(TITANIC)
    target = tmp_path / "wh.duckdb"
    cell = f"""%%di_destination wh --upstream titanic_survival
destination: duckdb
config:
  path: {target}
  schema: "{{{{ block_output('titanic_survival', 1, 'streams', 0, 'stream') }}}}"
upstream:
  titanic_survival: {{use_catalog_as_input: true}}
"""
    shell.ok(cell)
    assert query(target, "SELECT count(*) FROM titanic_survival.titanic_survival") == [(2,)]
    # catalog only (no data): the argument is the catalog itself
    shell.ok(
        """%%di_source s --upstream titanic_survival --lang python
upstream = {'titanic_survival': {'use_output_as_input': False, 'use_catalog_as_input': True}}
@data_integration_source
def s(cat, **kw):
    seen['cat'] = cat
    return 'duckdb'
@data_integration_config
def c(cat, **kw):
    return {'path': PATH}
""".replace("PATH", repr(str(target)))
    )
    assert list(shell.ip.user_ns["seen"]["cat"]) == ["streams"]
    assert shell.ip.user_ns["seen"]["cat"]["streams"][0]["tap_stream_id"] == "titanic_survival"


def test_only_as_input_upstream_is_not_exported(shell, tmp_path):
    target = tmp_path / "wh.duckdb"
    shell.ok(f"%%di_block wh_credentials\n@custom\ndef c(**kw):\n    return {{'path': {str(target)!r}}}\n")
    shell.ok("%%di_block people\n@data_loader\ndef f(**kw):\n    return [{'id': 1, 'name': 'Ana'}]\n")
    shell.ok(
        """%%di_destination wh --upstream wh_credentials people
destination: duckdb
config:
  path: "{{ block_output('wh_credentials', 'path') }}"
upstream:
  wh_credentials: {only_as_input: true}
"""
    )
    assert tables(target) == {"people"}
    # the same with a Python destination
    target2 = tmp_path / "wh2.duckdb"
    shell.ok(f"%%di_block wh_credentials\n@custom\ndef c(**kw):\n    return {{'path': {str(target2)!r}}}\n")
    shell.ok(
        """%%di_destination wh_py --upstream wh_credentials people --lang python
upstream = {'wh_credentials': {'only_as_input': True}}
@data_integration_destination
def d(creds, people, **kw):
    return 'duckdb'
@data_integration_config
def c(creds, *args, **kw):
    return dict(creds)
"""
    )
    assert tables(target2) == {"people"}
    assert query(target2, "SELECT id, name FROM people") == [(1, "Ana")]
    # without only_as_input, a dict output cannot be exported: a clear error
    message = shell.error(
        """%%di_destination wh --upstream wh_credentials people
destination: duckdb
config:
  path: "{{ block_output('wh_credentials', 'path') }}"
"""
    )
    assert "the output of block 'wh_credentials' (dict) cannot be exported." in message and "only_as_input" in message


# --------------------------------------------------------------------------------------------
# Dynamically calculate credentials / build the catalog at runtime
# --------------------------------------------------------------------------------------------
def seed_pg(pg_connect) -> None:
    with pg_connect() as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, total numeric(10,2), updated_at timestamptz)")
        conn.execute("INSERT INTO orders VALUES (1, 9.99, '2024-01-01T00:00:00Z'), (2, 20.00, '2024-01-02T00:00:00Z')")


def test_credentials_from_an_upstream_block_interpolated_into_yaml(shell, pg_config, pg_connect):
    seed_pg(pg_connect)
    shell.ip.user_ns["PG"] = pg_config
    shell.ok(CREDS)
    shell.ok(
        """%%di_source pg --upstream pg_credentials -o out
source: postgresql
config:
  host: "{{ block_output('pg_credentials', 'host') }}"
  port: "{{ block_output('pg_credentials', 'port') }}"
  database: "{{ block_output('pg_credentials', 'database') }}"
  username: "{{ block_output('pg_credentials', 'username') }}"
  password: "{{ block_output('pg_credentials', 'password') }}"
  schema: public
streams:
  orders: {}
"""
    )
    out = shell.ip.user_ns["out"]
    assert out["rows"] == [
        [1, decimal.Decimal("9.99"), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)],
        [2, decimal.Decimal("20.00"), dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)],
    ]
    message = shell.error(
        "%%di_source pg2 --upstream pg_credentials\nsource: postgresql\nconfig:\n  host: \"{{ block_output('pg_credentials', 'hots') }}\"\n"
    )
    assert "the output of block 'pg_credentials' has no field 'hots'." in message and "It has: host, port" in message


def test_credentials_from_an_upstream_block_in_python_config(shell, pg_config, pg_connect):
    seed_pg(pg_connect)
    shell.ip.user_ns["PG"] = pg_config
    shell.ok(CREDS)
    shell.ok(
        "%%di_block totals\nimport pandas as pd\n@data_loader\ndef f(**kw):\n    return pd.DataFrame({'day': ['2024-01-01'], 'revenue': [9.99]})\n"
    )
    shell.ok(
        """%%di_destination pg_dest --upstream pg_credentials totals --lang python
upstream = {'pg_credentials': {'only_as_input': True}}
@data_integration_destination
def destination(*args, **kwargs):
    return 'postgresql'
@data_integration_config
def config(creds, *args, **kwargs):
    return dict(creds, schema='public')
"""
    )
    with pg_connect() as conn:
        assert conn.execute("SELECT day, revenue FROM totals").fetchall() == [("2024-01-01", 9.99)]
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'pg_credentials'").fetchone() == (0,)


def test_credentials_from_environment_and_runtime_variables(shell, shop_db, monkeypatch):
    monkeypatch.setenv("SHOP_DB_DIR", str(shop_db.parent))
    cell = """%%di_source src -o out
source: duckdb
config:
  path: "{{ env_var('SHOP_DB_DIR') }}/{{ variables('db_name', 'missing') }}.duckdb"
streams:
  accounts: {}
"""
    message = shell.error(cell)  # the default: a database without that table
    assert "block 'src'" in message and "accounts" in message
    shell.ok("%di_run --blocks src -p db_name=shop")
    assert shell.ip.user_ns["out"]["rows"][0] == [1, 3.5, dt.date(3000, 1, 1)]
    message = shell.error(cell.replace("SHOP_DB_DIR", "NOT_SET_ANYWHERE"))
    assert "environment variable 'NOT_SET_ANYWHERE' is not set." in message


# --------------------------------------------------------------------------------------------
# Output data from source blocks: shape of the output and of each dictionary
# --------------------------------------------------------------------------------------------
def test_one_stream_outputs_a_dict_with_stream_columns_rows(shell, shop_db):
    shell.ok(f"%%di_source src -o out\nsource: duckdb\nconfig:\n  path: {shop_db}\nstreams:\n  accounts: {{}}\n")
    shell.ok("%%di_block check --upstream src -o seen_by_block\n@transformer\ndef t(data, **kw):\n    return data\n")
    out = shell.ip.user_ns["seen_by_block"]
    assert isinstance(out, dict) and not isinstance(out, list)  # how code tells one stream from many
    assert list(out.keys()) == ["stream", "columns", "rows"] and len(out) == 3
    assert dict(out)["columns"] == out["columns"] == ["id", "power", "created_at"]
    plain = json.loads(json.dumps(out, default=str))  # a plain dict all the way down
    assert plain["rows"] == [[1, 3.5, "3000-01-01"], [2, 0.25, "2024-02-29"]] and plain["stream"]["stream"] == "accounts"
    assert out["rows"] == [[1, 3.5, dt.date(3000, 1, 1)], [2, 0.25, dt.date(2024, 2, 29)]]
    # each inner list lines up with the columns
    assert [dict(zip(out["columns"], row))["power"] for row in out["rows"]] == [3.5, 0.25]
    stream = out["stream"]
    assert stream["stream"] == "accounts" and stream["replication_method"] == "FULL_TABLE"
    assert set(stream["schema"]["properties"]) == {"id", "power", "created_at"}
    assert stream["schema"]["properties"]["power"]["type"] == ["null", "number"]
    assert stream["metadata"][0]["breadcrumb"] == [] and len(stream["metadata"]) == 4


def test_two_streams_output_a_list_of_dicts_in_configured_order(shell, shop_db):
    shell.ok(
        f"%%di_source src -o out\nsource: duckdb\nconfig:\n  path: {shop_db}\nstreams:\n  users:\n    columns: [id, name]\n  accounts: {{}}\n"
    )
    out = shell.ip.user_ns["out"]
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(o, dict) for o in out)
    assert [o["stream"]["stream"] for o in out] == ["users", "accounts"]
    assert out[0]["columns"] == ["id", "name"] and out[0]["rows"] == [[1, "Ada"], [2, "Bo"], [3, "Cy"]]
    assert out[1]["rows"][1] == [2, 0.25, dt.date(2024, 2, 29)]


def test_source_output_is_lazy_with_pandas_and_arrow_views(shell, shop_db):
    shell.ok(f"%%di_source src -o out\nsource: duckdb\nconfig:\n  path: {shop_db}\nstreams:\n  users: {{}}\n")
    out = shell.ip.user_ns["out"]
    table = out.to_arrow()
    assert isinstance(table, pa.Table) and table.num_rows == 3
    assert table.schema.field("updated_at").type == pa.timestamp("us")
    df = out.to_pandas()
    assert df["name"].tolist() == ["Ada", "Bo", "Cy"] and str(df["id"].dtype) == "int32"
    assert "users" in out._repr_html_() and "Ada" in out._repr_html_()


# --------------------------------------------------------------------------------------------
# Any block can output its data to a destination block
# --------------------------------------------------------------------------------------------
EVERY_TYPE = """%%di_block frame
import datetime as dt, decimal
import pandas as pd
@data_loader
def load(*args, **kwargs):
    return pd.DataFrame({
        'i': [1, 2], 'f': [1.5, None], 'b': [True, False],
        'aware': pd.to_datetime(['2024-01-01T10:00:00+02:00', '2024-06-01T00:00:00Z'], utc=True),
        'naive': pd.to_datetime(['2024-01-01 10:00', '2024-06-01 00:00']),
        's': ['x', None], 'dec': [decimal.Decimal('1.23'), decimal.Decimal('45.60')],
        'obj': [{'a': 1, 'nested': {'b': [1, 2]}}, {'a': 2}], 'lst': [['p', 'q'], []],
    })
"""


def test_pandas_dataframe_lands_with_its_column_types(shell, tmp_path):
    shell.ok(EVERY_TYPE)
    target = tmp_path / "wh.duckdb"
    shell.ok(f"%%di_destination wh --upstream frame\ndestination: duckdb\nconfig:\n  path: {target}\n")
    assert column_types(target, "frame") == {
        "i": "BIGINT",
        "f": "DOUBLE",
        "b": "BOOLEAN",
        "aware": "TIMESTAMP WITH TIME ZONE",
        "naive": "TIMESTAMP",
        "s": "VARCHAR",
        "dec": "DECIMAL(4,2)",
        "obj": "JSON",
        "lst": "JSON",
    }
    rows = query(target, "SELECT i, f, b, epoch(aware), naive, s, dec, obj, lst FROM frame ORDER BY i")
    assert rows[0][:7] == (1, 1.5, True, 1704096000.0, dt.datetime(2024, 1, 1, 10), "x", decimal.Decimal("1.23"))
    assert rows[1][:7] == (2, None, False, 1717200000.0, dt.datetime(2024, 6, 1), None, decimal.Decimal("45.60"))
    assert [json.loads(r[7]) for r in rows] == [{"a": 1, "nested": {"b": [1, 2]}}, {"a": 2}]
    assert [json.loads(r[8]) for r in rows] == [["p", "q"], []]


def test_polars_arrow_and_list_of_dicts_land_as_streams_named_after_their_blocks(shell, tmp_path):
    shell.ok(
        "%%di_block pl_frame\nimport polars as pl\n@data_loader\ndef f(**kw):\n    return pl.DataFrame({'x': [1, 2], 'y': ['a', None], 'when': [dt.datetime(2024, 1, 1), None]})\n".replace(
            "dt.datetime", "__import__('datetime').datetime"
        )
    )
    shell.ok(
        "%%di_block arrow_table\nimport pyarrow as pa, decimal\n@data_loader\ndef f(**kw):\n"
        "    return pa.table({'k': pa.array([1, 2], pa.int32()), 'amount': pa.array([decimal.Decimal('0.10'), None], pa.decimal128(12, 2)),"
        " 'tags': pa.array([['a'], ['b', 'c']], pa.list_(pa.string()))})\n"
    )
    shell.ok(
        "%%di_block records\n@data_loader\ndef f(**kw):\n    return [{'id': 1, 'ok': True, 'meta': {'k': 'v'}}, {'id': 2, 'ok': False, 'meta': None}]\n"
    )
    target = tmp_path / "wh.duckdb"
    shell.ok(f"%%di_destination wh --upstream pl_frame arrow_table records\ndestination: duckdb\nconfig:\n  path: {target}\n")
    assert tables(target) == {"pl_frame", "arrow_table", "records"}
    assert column_types(target, "pl_frame") == {"x": "BIGINT", "y": "VARCHAR", "when": "TIMESTAMP"}
    assert query(target, 'SELECT x, y, "when" FROM pl_frame ORDER BY x') == [(1, "a", dt.datetime(2024, 1, 1)), (2, None, None)]
    types = column_types(target, "arrow_table")
    assert types["k"] == "INTEGER" and types["amount"] == "DECIMAL(12,2)"
    assert query(target, "SELECT amount FROM arrow_table ORDER BY k") == [(decimal.Decimal("0.10"),), (None,)]
    assert column_types(target, "records") == {"id": "BIGINT", "ok": "BOOLEAN", "meta": "JSON"}
    assert query(target, "SELECT id, ok, meta FROM records ORDER BY id") == [(1, True, '{"k": "v"}'), (2, False, None)]


def test_source_output_lands_at_a_destination_with_its_stream_names_and_types(shell, shop_db, tmp_path):
    shell.ok(f"%%di_source src\nsource: duckdb\nconfig:\n  path: {shop_db}\nstreams:\n  users: {{}}\n  accounts: {{}}\n")
    target = tmp_path / "wh.sqlite"
    shell.ok(f"%%di_destination wh --upstream src\ndestination: sqlite\nconfig:\n  path: {target}\n")
    import sqlite3

    with sqlite3.connect(target) as con:
        assert con.execute('SELECT id, name, email FROM "users" ORDER BY id').fetchall() == [
            (1, "Ada", "ada@x.io"),
            (2, "Bo", "bo@x.io"),
            (3, "Cy", None),
        ]
        assert con.execute('SELECT id, power, created_at FROM "accounts" ORDER BY id').fetchall() == [
            (1, 3.5, "3000-01-01"),
            (2, 0.25, "2024-02-29"),
        ]


def test_a_python_block_can_pass_a_source_output_through_to_a_destination(shell, shop_db, tmp_path):
    shell.ok(f"%%di_source src\nsource: duckdb\nconfig:\n  path: {shop_db}\nstreams:\n  users: {{}}\n")
    shell.ok(
        "%%di_block shaped --upstream src\n@transformer\ndef t(users, **kw):\n    return {'columns': users['columns'][:2], 'rows': [r[:2] for r in users['rows']]}\n"
    )
    target = tmp_path / "wh.duckdb"
    shell.ok(f"%%di_destination wh --upstream shaped\ndestination: duckdb\nconfig:\n  path: {target}\n")
    assert query(target, "SELECT id, name FROM shaped ORDER BY id") == [(1, "Ada"), (2, "Bo"), (3, "Cy")]


def test_destination_blocks_output_nothing_downstream(shell, tmp_path):
    shell.ok("%%di_block rows\n@data_loader\ndef f(**kw):\n    return [{'id': 1}]\n")
    shell.ok(f"%%di_destination wh --upstream rows -o wh_out\ndestination: duckdb\nconfig:\n  path: {tmp_path / 'wh.duckdb'}\n")
    assert shell.ip.user_ns["wh_out"] is None
    shell.ok("%%di_block after --upstream wh -o after_out\n@custom\ndef f(data, **kw):\n    return ('got', data)\n")
    assert shell.ip.user_ns["after_out"] == ("got", None)


# --------------------------------------------------------------------------------------------
# Per-stream destination settings
# --------------------------------------------------------------------------------------------
def test_destination_stream_settings_table_keys_columns_and_conflicts(shell, tmp_path):
    shell.ok(
        "%%di_block changes -o changes\nimport pandas as pd\n@data_loader\ndef f(**kw):\n"
        "    return pd.DataFrame({'id': [1, 2], 'status': ['new', 'new'], 'secret': ['s1', 's2']})\n"
    )
    target = tmp_path / "wh.duckdb"
    dest = f"""%%di_destination wh --upstream changes
destination: duckdb
config:
  path: {target}
streams:
  changes:
    destination_table: order_status
    replication_method: INCREMENTAL
    unique_constraints: [id]
    unique_conflict_method: METHOD
"""
    shell.ok(dest.replace("METHOD", "UPDATE"))
    assert tables(target) == {"order_status"}
    shell.ok(
        "%%di_block changes -o changes\nimport pandas as pd\n@data_loader\ndef f(**kw):\n"
        "    return pd.DataFrame({'id': [2, 3], 'status': ['paid', 'new'], 'secret': ['s2', 's3']})\n"
    )
    shell.ok("%di_run")
    assert query(target, "SELECT id, status FROM order_status ORDER BY id") == [(1, "new"), (2, "paid"), (3, "new")]
    shell.ok(dest.replace("METHOD", "IGNORE"))  # redefining reruns it: existing rows are kept
    shell.ok(
        "%%di_block changes -o changes\nimport pandas as pd\n@data_loader\ndef f(**kw):\n"
        "    return pd.DataFrame({'id': [1, 4], 'status': ['refunded', 'new'], 'secret': ['s1', 's4']})\n"
    )
    shell.ok("%di_run")
    assert query(target, "SELECT id, status FROM order_status ORDER BY id") == [(1, "new"), (2, "paid"), (3, "new"), (4, "new")]


def test_destination_stream_columns_choose_the_columns_of_the_table(shell, tmp_path):
    shell.ok("%%di_block changes\n@data_loader\ndef f(**kw):\n    return [{'id': 1, 'status': 'new', 'secret': 's1'}]\n")
    target = tmp_path / "wh.duckdb"
    shell.ok(
        f"%%di_destination wh --upstream changes\ndestination: duckdb\nconfig:\n  path: {target}\nstreams:\n  changes:\n    columns: [id, status]\n"
    )
    assert query(target, "SELECT * FROM changes") == [(1, "new")]


PY_DEST = """%%di_destination wh --upstream a b --lang python
@data_integration_destination
def d(*args, **kwargs):
    return 'duckdb'
@data_integration_config
def c(*args, **kwargs):
    return {'path': PATH}
"""


def test_python_destination_catalog_unselected_stream_is_not_exported(shell, tmp_path):
    shell.ok("%%di_block a\n@data_loader\ndef f(**kw):\n    return [{'x': 1}]\n")
    shell.ok("%%di_block b\n@data_loader\ndef f(**kw):\n    return [{'y': 1}]\n")
    catalog = (
        "@data_integration_catalog\ndef cat(*args, **kwargs):\n"
        "    return {'streams': [{'tap_stream_id': 'a', 'metadata': [{'breadcrumb': [], 'metadata': {'selected': True}}]},\n"
        "                        {'tap_stream_id': 'b', 'metadata': [{'breadcrumb': [], 'metadata': {'selected': False}}]}]}\n"
    )
    shell.ok(PY_DEST.replace("PATH", repr(str(tmp_path / "wh.duckdb"))) + catalog)
    assert tables(tmp_path / "wh.duckdb") == {"a"}


def test_python_destination_selected_streams_choose_what_is_exported(shell, tmp_path):
    shell.ok("%%di_block a\n@data_loader\ndef f(**kw):\n    return [{'x': 1}]\n")
    shell.ok("%%di_block b\n@data_loader\ndef f(**kw):\n    return [{'y': 1}]\n")
    selected = "@data_integration_selected_streams\ndef s(*args, **kwargs):\n    return ['a']\n"
    shell.ok(PY_DEST.replace("PATH", repr(str(tmp_path / "wh.duckdb"))) + selected)
    assert tables(tmp_path / "wh.duckdb") == {"a"}


def test_full_table_destination_stream_replaces_rows(shell, tmp_path):
    target = tmp_path / "wh.duckdb"
    for values in ([1, 2, 3], [7]):
        shell.ok(f"%%di_block nums\n@data_loader\ndef f(**kw):\n    return [{{'n': v}} for v in {values}]\n")
        shell.ok(
            f"%%di_destination wh --upstream nums\ndestination: duckdb\nconfig:\n  path: {target}\nstreams:\n  nums: {{replication_method: FULL_TABLE}}\n"
        )
    assert query(target, "SELECT n FROM nums") == [(7,)]


# --------------------------------------------------------------------------------------------
# Load/Export stream data in parallel
# --------------------------------------------------------------------------------------------
class _Timeline:
    """Start/end of each stream's work, and a barrier the parallel streams must meet at."""

    def __init__(self, parties: int) -> None:
        self.events: dict[str, tuple[float, float]] = {}
        self.barrier = threading.Barrier(parties, timeout=10)
        self.lock = threading.Lock()

    def work(self, stream: str, meet: bool) -> None:
        start = time.monotonic()
        if meet:
            self.barrier.wait()  # raises BrokenBarrierError unless the other stream runs at the same time
        time.sleep(0.05)
        with self.lock:
            self.events[stream] = (start, time.monotonic())

    def overlap(self, a: str, b: str) -> bool:
        (s1, e1), (s2, e2) = self.events[a], self.events[b]
        return s1 < e2 and s2 < e1


TIMELINE: dict[str, _Timeline] = {}


class SlowSource(Source):
    name = "slow_fake"

    def discover(self, streams=None):
        names = streams or ["a", "b", "c"]
        return {"streams": [catalog_entry_for_arrow(n, pa.schema([("x", pa.int64())])) for n in names]}

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        s = request.settings
        if not in_panel():  # a panel's sample-data read is not part of the run
            TIMELINE["read"].work(s.stream, s.run_in_parallel)
        table = pa.table({"x": [1, 2, 3]})
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


class SlowDestination(Destination):
    name = "slow_fake"
    written: dict[str, int] = {}

    def write(self, request, chunks, on_commit=None):
        rows = sum(c.batch.num_rows for c in chunks)
        TIMELINE["write"].work(request.settings.stream, request.settings.run_in_parallel)
        SlowDestination.written[request.settings.table_name] = rows
        if on_commit:
            on_commit(rows, None)
        return WriteResult(rows_written=rows)


@pytest.fixture
def slow_connector():
    registry.register(ConnectorSpec(name="slow_fake", title="Slow fake", config_schema=[], source=SlowSource, destination=SlowDestination))
    TIMELINE.clear()
    TIMELINE["read"] = _Timeline(2)
    TIMELINE["write"] = _Timeline(2)
    SlowDestination.written = {}
    yield
    registry._loaded.pop("slow_fake", None)


def test_run_in_parallel_streams_are_read_and_exported_at_the_same_time(shell, slow_connector):
    shell.ok("%%di_source src -o out\nsource: slow_fake\nstreams:\n  a: {run_in_parallel: true}\n  b: {run_in_parallel: true}\n  c: {}\n")
    read = TIMELINE["read"]
    assert read.overlap("a", "b")
    assert [o["stream"]["stream"] for o in shell.ip.user_ns["out"]] == ["a", "b", "c"]  # output order is the configured order
    shell.ok(
        "%%di_destination wh --upstream src\ndestination: slow_fake\nstreams:\n  a: {run_in_parallel: true}\n  b: {run_in_parallel: true}\n"
    )
    assert TIMELINE["write"].overlap("a", "b")
    assert SlowDestination.written == {"a": 3, "b": 3, "c": 3}


def test_streams_without_run_in_parallel_run_one_after_another(shell, slow_connector):
    shell.ok("%%di_source src\nsource: slow_fake\nstreams:\n  a: {}\n  b: {}\n  c: {}\n")
    read = TIMELINE["read"]
    assert not read.overlap("a", "b") and not read.overlap("b", "c")
    assert read.events["a"][1] <= read.events["b"][0] <= read.events["c"][0]


def test_decorated_functions_run_once_per_cell_run_even_with_the_panel_shown(tmp_path, monkeypatch, shop_db):
    """The panel shows what the run resolved; it never re-runs the decorated functions (side effects)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    runner = fresh_shell()
    runner.ip.user_ns["CALLS"] = []
    body = (
        "@data_integration_source\ndef s(*args, **kwargs):\n    return 'duckdb'\n"
        f"@data_integration_config\ndef c(*args, **kwargs):\n    CALLS.append('config')\n    return {{'path': {str(shop_db)!r}}}\n"
        "@data_integration_selected_streams\ndef sel(*args, **kwargs):\n    return ['users']\n"
    )
    try:
        runner.ok(f"%%di_source src --lang python\n{body}")
        time.sleep(1.0)  # give a background panel job the chance to (wrongly) resolve again
        assert runner.ip.user_ns["CALLS"] == ["config"]
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")
