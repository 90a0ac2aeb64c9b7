"""Source/destination panels in a real IPython shell, without a browser.

Widgets are driven the way the front end drives them: ipywidget values are set
(as a synced edit would), the anywidget tables receive their custom
``edit``/``open`` messages.  Each test asserts the YAML that gets written,
the widget state rebuilt from YAML, the state store, or the error text.
"""

from __future__ import annotations

import json

import pytest
from IPython.utils.capture import capture_output

from jupyter_di.integration.di_config import DIConfig
from jupyter_di.notebook.panels.panel import BlockPanel
from tests.support.shell import fresh_shell

SOURCE = """%%di_source shop
source: files
config:
  path: data
streams:
  orders: {}
"""


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state" / "state.sqlite"))
    monkeypatch.setenv("JUPYTER_DI_SECRETS_FILE", str(tmp_path / "secrets.json"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("id,name,updated_at\n1,a,2024-01-01\n2,b,2024-01-02\n3,c,2024-01-03\n")
    (data / "customers.csv").write_text("id,email\n1,x@y\n")
    (data / "refunds.csv").write_text("id,amount\n1,2.5\n")
    runner = fresh_shell()
    runner.next_inputs = []
    monkeypatch.setattr(runner.ip, "set_next_input", lambda text, replace=False: runner.next_inputs.append((text, replace)))
    yield runner
    runner.ip.extension_manager.unload_extension("jupyter_di")


class FakeBridge:
    """Stands in for the lab extension: records cell rewrites."""

    connected = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def replace_cell_source(self, cell_id: str, source: str) -> bool:
        self.calls.append((cell_id, source))
        return True


def panel_of(shell, name: str = "shop") -> BlockPanel:
    return shell.session.panels.panels[name]


def pending(shell, panel) -> str | None:
    return shell.session.panels.ctx.writeback.pending_source(panel.editor.block)


def discovered(panel: BlockPanel) -> BlockPanel:
    panel.streams.discover().result(timeout=60)
    assert "3 streams found" in panel.streams.status.value
    return panel


def edit(table, ids, **changes) -> None:
    table._handle_custom_msg({"type": "edit", "ids": list(ids), "changes": changes}, [])


def all_states(widget) -> str:
    """Every synced trait of a widget tree, as JSON text (what the front end receives)."""
    parts = [json.dumps(widget.get_state(), default=str)]
    for child in getattr(widget, "children", ()) or ():
        parts.append(all_states(child))
    return "\n".join(parts)


# -- write-back -----------------------------------------------------------------------------------
def test_without_extension_an_edit_is_pending_and_the_next_run_rewrites_its_own_cell(shell):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    edit(panel.columns.table, ["updated_at"], bookmark=True)
    edit(panel.columns.table, ["id"], key=True)  # a CSV file has no key to discover: INCREMENTAL needs one
    panel.detail.inputs["replication_method"].value = "INCREMENTAL"
    expected = (
        "%%di_source shop\nsource: files\nconfig:\n  path: data\nstreams:\n  orders:\n"
        "    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n"
    )
    assert pending(shell, panel) == expected
    assert "re-run this cell" in panel.status.value

    shell.ok(SOURCE)  # the cell still holds the old text: it runs the pending YAML instead
    assert shell.next_inputs == [(expected, True)]
    assert shell.session.pipeline.graph["shop"].body == expected.split("\n", 1)[1]
    state = shell.session.pipeline.state.get("notebook", "shop", "orders")
    assert state["bookmark"] == {"updated_at": "2024-01-03"}  # it really ran INCREMENTAL
    rebuilt = panel_of(shell)
    assert rebuilt is not panel
    assert rebuilt.detail.inputs["replication_method"].value == "INCREMENTAL"
    assert pending(shell, rebuilt) is None


def test_with_the_extension_connected_the_cell_changes_at_once(shell):
    bridge = FakeBridge()
    shell.session.panels.ctx.writeback.bridge = bridge
    shell.ok(SOURCE, cell_id="cell-1")
    panel = panel_of(shell)
    panel.credentials.inputs["delimiter"].value = ";"
    panel.credentials.inputs["header"].value = False
    assert bridge.calls[-1] == (
        "cell-1",
        "%%di_source shop\nsource: files\nconfig:\n  path: data\n  delimiter: ;\n  header: false\nstreams:\n  orders: {}\n",
    )
    assert len(bridge.calls) == 2
    assert pending(shell, panel) is None
    assert "Saved into the cell." in panel.status.value


def test_a_hand_edited_cell_wins_over_a_pending_panel_edit(shell):
    shell.ok(SOURCE)
    panel = panel_of(shell)
    panel.detail.inputs["run_in_parallel"].value = True
    assert "run_in_parallel: true" in pending(shell, panel)
    with capture_output() as out:
        shell.ok(SOURCE.replace("orders: {}", "customers: {}"))
    assert shell.next_inputs == []
    assert "changes were dropped" in out.outputs[0].data["text/html"]
    assert list(panel_of(shell).editor.cfg.streams) == ["customers"]


def test_rerunning_a_cell_rebuilds_the_panel_from_its_yaml(shell):
    shell.ok(
        """%%di_source shop
source: files
config:
  path: data
streams:
  orders:
    columns: [id, updated_at]
    replication_method: INCREMENTAL
    bookmark_properties: [updated_at]
    key_properties: [id]
    destination_table: shop_orders
    run_in_parallel: true
  customers:
    selected: false
    unique_conflict_method: IGNORE
"""
    )
    panel = discovered(panel_of(shell))
    detail = panel.detail.inputs
    assert panel.detail.stream == "orders"
    assert (detail["destination_table"].value, detail["replication_method"].value) == ("shop_orders", "INCREMENTAL")
    assert (list(detail["bookmark_properties"].value), list(detail["key_properties"].value)) == (["updated_at"], ["id"])
    assert detail["run_in_parallel"].value is True
    assert list(detail["bookmark_properties"].allowed_tags) == ["id", "name", "updated_at"]
    rows = {r["id"]: r for r in panel.streams.table.rows}
    assert (rows["orders"]["selected"], rows["orders"]["columns"], rows["orders"]["bookmark"]) == (True, "2 of 3", "updated_at")
    assert (rows["customers"]["selected"], rows["customers"]["unique_conflict_method"]) == (False, "IGNORE")
    assert rows["refunds"]["selected"] is False
    cols = {r["id"]: r for r in panel.columns.table.rows}
    assert [c for c, r in cols.items() if r["include"]] == ["id", "updated_at"]
    assert (cols["id"]["key"], cols["updated_at"]["bookmark"], cols["name"]["bookmark"]) == (True, True, False)
    assert cols["updated_at"]["type"].startswith("string (date)")


# -- streams and columns --------------------------------------------------------------------------
def test_bulk_edit_sets_settings_on_many_streams_in_one_write(shell):
    shell.ok(SOURCE.replace("streams:\n  orders: {}\n", ""))  # no streams listed: all are read
    panel = discovered(panel_of(shell))
    assert [r["selected"] for r in panel.streams.table.rows] == [True, True, True]
    edit(panel.streams.table, ["customers", "orders", "refunds"], run_in_parallel=True, unique_conflict_method="IGNORE")
    edit(panel.streams.table, ["refunds"], selected=False)
    edit(panel.streams.table, ["orders"], destination_table="raw_orders")
    cfg = DIConfig.parse(pending(shell, panel).split("\n", 1)[1], kind="source", block="shop")
    assert cfg.streams == {
        "customers": {"unique_conflict_method": "IGNORE", "run_in_parallel": True},
        "orders": {"unique_conflict_method": "IGNORE", "run_in_parallel": True, "destination_table": "raw_orders"},
        "refunds": {"selected": False, "unique_conflict_method": "IGNORE", "run_in_parallel": True},
    }
    assert [r["selected"] for r in panel.streams.table.rows] == [True, True, False]


def test_selecting_streams_lists_them_and_unselecting_drops_plain_ones(shell):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    edit(panel.streams.table, ["customers", "refunds"], selected=True)
    assert list(panel.editor.cfg.streams) == ["orders", "customers", "refunds"]
    edit(panel.streams.table, ["orders", "refunds"], selected=False)
    assert pending(shell, panel).endswith("streams:\n  customers: {}\n")
    edit(panel.streams.table, ["orders"], replication_method="INCREMENTAL")  # an unselected stream stays unselected
    assert "  orders:\n    selected: false\n    replication_method: INCREMENTAL\n" in pending(shell, panel)
    assert "needs bookmark_properties" in panel.status.value


def test_columns_exclude_include_and_marks(shell):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    table = panel.columns.table
    edit(table, ["name"], include=False)
    assert "    columns: [id, updated_at]\n" in pending(shell, panel)
    edit(table, ["id"], key=True, unique=True)
    edit(table, ["updated_at"], bookmark=True)
    edit(table, ["name"], include=True)
    assert pending(shell, panel).endswith(
        "  orders:\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n    unique_constraints: [id]\n"
    )
    edit(table, ["id"], key=False)
    assert "key_properties" not in pending(shell, panel)
    assert [r["unique"] for r in table.rows] == [True, False, False]


def test_the_streams_table_opens_a_stream_in_the_detail_tabs(shell):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    panel.streams.table._handle_custom_msg({"type": "open", "id": "customers"}, [])
    assert (panel.detail.stream, panel.columns.stream, panel.sample.stream) == ("customers", "customers", "customers")
    assert panel.tabs.selected_index == 3
    assert [r["id"] for r in panel.columns.table.rows] == ["id", "email"]


def tree(widget) -> list:
    """A widget and every widget below it."""
    return [widget] + [w for child in getattr(widget, "children", ()) or () for w in tree(child)]


def test_tabs_are_built_when_first_opened_and_widgets_share_layouts(shell):
    shell.ok(SOURCE)
    panel = panel_of(shell)
    # only the tab shown first is built; the others show one shared empty widget
    assert [t for t in panel.titles if panel.built(t) is not None] == ["Credentials"]
    unopened = {c.model_id for c in panel.tabs.children[1:]}
    assert len(unopened) == 1
    # selecting a tab (what a click in the front end syncs) builds it in place, for the stream shown
    panel.tabs.selected_index = panel.titles.index("Schema properties")
    columns = panel.built("Schema properties")
    assert columns is not None and panel.tabs.children[4] is columns.widget
    assert columns.stream == "orders" and panel.tabs.selected_index == 4
    # a stream opened before its tabs are built: they show it when they are
    panel.streams.discover().result(timeout=60)
    panel.streams.table._handle_custom_msg({"type": "open", "id": "customers"}, [])
    assert panel.built("Sample data") is None and panel.sample.stream == "customers"
    assert [r["id"] for r in panel.columns.table.rows] == ["id", "email"]
    # an edit in a tab opened late still lands in the cell
    edit(panel.columns.table, ["email"], include=False)
    assert "columns: [id]" in pending(shell, panel)
    # layouts and styles are shared: one model per distinct setting, not one (or two) per widget
    shown = {w.model_id: w for w in tree(panel.widget)}.values()
    layouts = {w.layout.model_id for w in shown}
    styles = {w.style.model_id for w in shown if hasattr(w, "style")}
    assert len(shown) > 30 and len(layouts) <= 8 and len(styles) <= 12, (len(shown), len(layouts), len(styles))


def test_catalog_is_cached_beside_the_state_file_not_in_the_cell(shell, tmp_path):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    cache = tmp_path / "state" / "catalogs" / "notebook.shop.json"
    entry = json.loads(cache.read_text())
    assert [s["tap_stream_id"] for s in entry["catalog"]["streams"]] == ["customers", "orders", "refunds"]
    panel.detail.inputs["run_in_parallel"].value = True
    assert "properties" not in pending(shell, panel) and "schema" not in pending(shell, panel)
    shell.session.panels.ctx.catalogs._memory.clear()  # a new kernel: read from the file
    shell.ok(SOURCE)
    assert panel_of(shell).view.stream_names() == ["customers", "orders", "refunds"]


# -- upstream, destinations -----------------------------------------------------------------------
def test_destination_upstream_settings_and_streams_from_upstream_outputs(shell, tmp_path):
    shell.ok("%%di_block extra\n@data_loader\ndef f(**kw):\n    import pandas as pd\n    return pd.DataFrame({'k': [1, 2]})\n")
    shell.ok(SOURCE)
    shell.ok("%%di_destination wh --upstream shop extra\ndestination: sqlite\nconfig:\n  path: wh.sqlite\nstreams: {}\n")
    panel = panel_of(shell, "wh")
    assert sorted(panel.view.stream_names()) == ["extra", "orders"]
    panel.sample.show("extra")
    panel.sample.fetch().result(timeout=30)
    assert panel.sample.frame["k"].tolist() == [1, 2]
    boxes = panel.upstream.boxes["extra"]
    assert set(boxes) == {"use_output_as_input", "use_catalog_as_input", "only_as_input"}
    boxes["only_as_input"].value = True
    boxes["use_catalog_as_input"].value = True
    assert pending(shell, panel).endswith("upstream:\n  extra:\n    use_catalog_as_input: true\n    only_as_input: true\nstreams: {}\n")
    assert panel.view.stream_names() == ["orders"]  # extra is only an input now
    assert "Bookmarks" in panel.tabs.titles[-1] and "<code>shop</code>" in panel.bookmarks.widget.value


# -- sample data, bookmarks, test connection ------------------------------------------------------
def test_sample_data_reads_the_first_rows_with_the_panels_columns(shell):
    shell.ok(SOURCE)
    panel = discovered(panel_of(shell))
    edit(panel.columns.table, ["name"], include=False)
    panel.sample.limit.value = 2
    panel.sample.fetch().result(timeout=30)
    assert panel.sample.frame.to_dict("list") == {"id": [1, 2], "updated_at": panel.sample.frame["updated_at"].tolist()}
    assert list(panel.sample.frame.columns) == ["id", "updated_at"] and len(panel.sample.frame) == 2
    assert "2 rows of orders" in panel.sample.status.value and "<table" in panel.sample.view.value


def test_bookmark_edit_pins_the_state_and_reset_forgets_it(shell):
    shell.ok(
        SOURCE.replace("orders: {}", "orders: {replication_method: INCREMENTAL, bookmark_properties: [updated_at], key_properties: [id]}")
    )
    store = shell.session.pipeline.state
    assert store.get("notebook", "shop", "orders")["bookmark"] == {"updated_at": "2024-01-03"}
    panel = panel_of(shell)
    marks = panel.bookmarks
    assert marks.inputs["updated_at"].value == "2024-01-03"
    typed = marks.inputs["updated_at"]
    typed.value = "2024-01-02"
    marks.set_bookmark()
    assert store.get("notebook", "shop", "orders") == {"bookmark": {"updated_at": "2024-01-02"}, "pinned": True}
    # the form is refilled with new boxes; the replaced ones are closed (not kept in saved notebooks)
    assert marks.inputs["updated_at"] is not typed and typed.comm is None
    assert all(box.comm is not None for box in marks.values.children)
    assert "<code>updated_at</code> = <code>2024-01-02</code> (pinned)" in marks.overview.value
    shell.ok("%%di_block n --upstream shop -o n\n@transformer\ndef f(shop, **kw):\n    return shop.to_pandas()['id'].tolist()\n")
    shell.ok("%di_run --blocks n")
    assert shell.ip.user_ns["n"] == [2, 3]  # the next read starts at the pinned bookmark (inclusive)
    marks.reset("orders")
    assert store.get("notebook", "shop", "orders") is None
    assert "full sync" in marks.status.value


def test_test_connection_shows_the_connectors_error_text(shell):
    shell.ok(SOURCE)
    panel = panel_of(shell)
    panel.credentials.inputs["path"].value = "missing_folder"
    panel.credentials.test().result(timeout=30)
    text = panel.credentials.status.value
    assert "folder" in text and "missing_folder" in text and "does not exist" in text and "Traceback" not in text
    panel.credentials.inputs["path"].value = "data"
    panel.credentials.test().result(timeout=30)
    assert "Connection to files works." in panel.credentials.status.value


def test_a_failed_run_still_shows_the_panel(shell):
    with capture_output() as out:
        message = shell.error(SOURCE.replace("path: data", "path: nowhere"))
    assert "does not exist" in message
    assert "shop" in shell.session.panels.panels
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)


@pytest.mark.postgres
def test_secret_typed_in_the_panel_stays_out_of_cell_widgets_outputs_and_errors(shell, pg_config, tmp_path):
    secret = "s3cr3t-Pa55word"
    cell = (
        "%%di_source pg\nsource: postgresql\nconfig:\n"
        f"  host: {pg_config['host']}\n  port: {pg_config['port']}\n  database: {pg_config['database']}\n"
        f"  username: {pg_config['username']}\nstreams: {{}}\n"
    )
    with capture_output() as out:
        shell.run(cell)  # an empty database has no streams: the run fails, the panel shows
    panel = panel_of(shell, "pg")
    box = panel.credentials.inputs["password"]
    assert type(box).__name__ == "Password"
    box.value = secret
    assert box.value == ""
    assert shell.session.panels.ctx.secrets.get("pg_password") == secret
    source = pending(shell, panel)
    assert "  password: \"{{ secret('pg_password') }}\"\n" in source and secret not in source
    assert secret not in all_states(panel.widget)
    panel.credentials.test().result(timeout=30)
    assert "Connection to postgresql works." in panel.credentials.status.value
    panel.credentials.inputs["username"].value = "nobody_here"
    panel.credentials.test().result(timeout=30)
    text = panel.credentials.status.value
    assert "nobody_here" in text and "could not connect" in text and secret not in text
    with capture_output() as out2:
        shell.run(cell)  # runs the pending YAML (the secret is resolved from the store)
    outputs = json.dumps([o.data for o in out.outputs + out2.outputs], default=str)
    assert secret not in outputs and "nobody_here" in shell.next_inputs[0][0]
    stored = tmp_path / "secrets.json"  # the one place the value lives: owner-only
    assert json.loads(stored.read_text()) == {"pg_password": secret} and stored.stat().st_mode & 0o077 == 0


def test_python_blocks_show_their_decorators_result_read_only_with_secrets_masked(shell):
    shell.run(
        """%%di_source py --lang python
@data_integration_source
def source(*args, **kwargs):
    return 'postgresql'

@data_integration_config
def config(*args, **kwargs):
    return {'host': 'db.invalid', 'database': 'shop', 'username': 'etl', 'password': 'pw-98765', 'connect_timeout': 1}

@data_integration_selected_streams
def streams(*args, **kwargs):
    return ['orders']
"""
    )  # the run fails (no such host); the panel still shows what the decorators returned
    panel = panel_of(shell, "py")
    panel.future.result(timeout=30)
    text = panel.view.value
    assert "<code>postgresql</code>" in text and "<code>orders</code>" in text and "&quot;database&quot;: &quot;shop&quot;" in text
    assert "&quot;password&quot;: &quot;***&quot;" in text and "pw-98765" not in text
    assert not hasattr(panel, "editor")  # nothing to write back


# -- replica blocks (issue 20) ------------------------------------------------------------------------
def test_a_replicas_panel_shows_merged_settings_and_writes_only_its_override(shell):
    bridge = FakeBridge()
    shell.session.panels.ctx.writeback.bridge = bridge
    shell.ok(SOURCE, cell_id="cell-1")
    shell.ok("%%di_source shop_b --replicate shop\nstreams:\n  orders: {run_in_parallel: true}\n", cell_id="cell-2")
    panel = panel_of(shell, "shop_b")
    assert "replica of <code>shop</code>" in panel.header.value
    assert panel.editor.cfg.config == {"path": "data"}  # the original's config, merged
    assert panel.detail.inputs["run_in_parallel"].value is True  # the override's setting
    panel.credentials.inputs["delimiter"].value = ";"
    assert bridge.calls[-1] == (
        "cell-2",
        "%%di_source shop_b --replicate shop\nconfig:\n  delimiter: ;\nstreams:\n  orders:\n    run_in_parallel: true\n",
    )
    assert shell.session.pipeline.graph["shop"].body == SOURCE.split("\n", 1)[1]  # the original is untouched
    # the redefined replica runs the merged settings
    effective = shell.session.pipeline.effective(shell.session.pipeline.graph["shop_b"])
    assert DIConfig.parse(effective.body, kind="source", block="shop_b").config == {"path": "data", "delimiter": ";"}
    panel.detail.inputs["run_in_parallel"].value = False  # back to the original's value: it leaves the override
    assert bridge.calls[-1] == ("cell-2", "%%di_source shop_b --replicate shop\nconfig:\n  delimiter: ;\n")


# -- schema conflicts and column type overrides (issue 21, item 5) ---------------------------------
WAREHOUSE = "%%di_destination wh --upstream shop\ndestination: duckdb\nconfig:\n  path: wh.duckdb\nstreams:\n  orders:\n"


def conflicts_of(panel) -> dict[str, tuple[str, str, bool]]:
    panel.conflicts.check().result(timeout=60)
    (found,) = panel.conflicts.found
    return {c.column: (c.kind, c.outcome, c.fails) for c in found.conflicts}


def test_schema_conflicts_say_what_the_next_run_does_and_match_its_error(shell, tmp_path):
    import duckdb

    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute("CREATE TABLE orders (id BIGINT, name INTEGER, legacy VARCHAR)")
    shell.ok(SOURCE)
    with capture_output():
        error = shell.error(WAREHOUSE + "    auto_add_new_fields: false\n    unique_constraints: [id]\n")
    panel = panel_of(shell, "wh")
    assert "Schema conflicts" in panel.tabs.titles
    found = conflicts_of(panel)
    assert set(found) == {"name", "updated_at", "legacy"}  # id: BIGINT on both sides
    kind, outcome, fails = found["updated_at"]
    assert kind == "new column" and fails
    assert "the stream has column(s) 'updated_at' that table 'orders' does not have" in outcome
    assert "the stream has column(s) 'updated_at' that table 'orders' does not have" in error  # the run's own error
    kind, outcome, fails = found["name"]
    assert kind == "type changed" and fails and "cast to INTEGER on write" in outcome
    assert found["legacy"][:2] == ("not sent", "kept in the rows the next run updates, NULL in the rows it inserts")
    html_view = panel.conflicts.view.value
    assert "<td>updated_at</td>" in html_view and "color:#c62828" in html_view
    assert "3 conflicts in 1 stream, 2 that can fail the next run." in panel.conflicts.status.value

    # with new columns allowed the same column is added, and the view says with which type
    panel.editor.set_stream_fields(["orders"], {"auto_add_new_fields": True})
    found = conflicts_of(panel)
    assert found["updated_at"][0] == "new column" and found["updated_at"][1].startswith("added as ") and not found["updated_at"][2]


def test_a_type_typed_in_schema_properties_is_written_as_column_types_and_used(shell, tmp_path):
    shell.ok(SOURCE)
    shell.ok(WAREHOUSE + "    replication_method: FULL_TABLE\n")
    panel = panel_of(shell, "wh")
    panel.open_stream("orders", switch=False)
    assert any(c["key"] == "column_type" for c in panel.columns.table.columns)
    edit(panel.columns.table, ["id"], column_type="decimal(12, 0)")
    text = pending(shell, panel)
    assert "column_types:\n      id: decimal(12, 0)\n" in text
    # the existing table keeps BIGINT: the conflict view says the override is not applied
    found = conflicts_of(panel)
    assert found["id"][0] == "override not applied" and "the table keeps BIGINT" in found["id"][1]
    edit(panel.columns.table, ["id"], column_type="int); drop table orders; --")
    assert "not a type name" in panel.status.value  # written with the warning the run would fail with
    edit(panel.columns.table, ["id"], column_type="")
    assert "column_types" not in pending(shell, panel)


def test_tables_carry_one_line_and_get_the_script_only_when_a_client_asks(shell):
    """The lab extension registers the table module once; a table's state holds one line, and a
    client without the extension asks (``{"type": "module"}``) and gets the whole script inline."""
    from jupyter_di.notebook.panels.table import SHARED_ESM, STATIC

    shell.ok(SOURCE)
    table = panel_of(shell).streams.table
    assert table.get_state()["_esm"] == SHARED_ESM and table.get_state()["_css"] == ""
    assert len(SHARED_ESM) < 300 and "globalThis.jupyterDiTable" in SHARED_ESM
    table._handle_custom_msg({"type": "module"}, [])
    assert table.get_state()["_esm"] == (STATIC / "table.js").read_text("utf-8")
    assert table.get_state()["_css"] == (STATIC / "table.css").read_text("utf-8")
    assert panel_of(shell).columns.table.get_state()["_esm"] == SHARED_ESM  # only the table that asked
