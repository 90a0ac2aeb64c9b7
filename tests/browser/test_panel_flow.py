"""Issue 7's acceptance flow in a real JupyterLab: a panel edit reaches the cell's YAML and the next run.

notebooks/quickstart.ipynb (files source ``shop`` -> Python block ``enriched_orders`` -> DuckDB
destination ``warehouse``) is run, one column of ``customers`` is deselected in the source's
Schema properties tab, the side panel's Run pipeline runs the edited pipeline, and the warehouse
file is checked from this process.  A second test restarts the kernel and checks that the side
panel reconnects and shows what the new kernel runs.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import time
from pathlib import Path

import duckdb
import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import ARTIFACTS, Lab
from tests.browser.test_lab import TIMEOUT, cell, run_all, run_cell, show_pipeline_panel

pytestmark = pytest.mark.browser

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
RUN_TIMEOUT = 180_000  # ms; a whole pipeline run on a busy 2-core machine
DROPPED = "signed_up"  # the customers column the test deselects
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the lab reopens notebooks of earlier tests in hidden tabs


def copy_quickstart(lab: Lab, folder: str) -> tuple[Path, nbformat.NotebookNode]:
    """The quickstart notebook and its data/ in a folder of the lab root of its own (own state, own warehouse)."""
    target = lab.root / folder
    target.mkdir()
    shutil.copy(QUICKSTART, target / QUICKSTART.name)
    shutil.copytree(QUICKSTART.parent / "data", target / "data")
    return target, nbformat.read(QUICKSTART, as_version=4)


def cell_index(nb: nbformat.NotebookNode, prefix: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(prefix))


def open_quickstart(page: Page, lab: Lab, folder: str, nb: nbformat.NotebookNode) -> None:
    """test_lab.open_notebook, but in a workspace of its own (else the lab reopens the notebooks of
    earlier tests beside it, and the side panel may follow one of those), and waiting for a code
    cell's editor (the first cell is markdown, whose editor is hidden once rendered)."""
    page.goto(f"{lab.url}/lab/workspaces/{folder}/tree/{folder}/{QUICKSTART.name}?token={lab.token}")
    expect(cell(page, cell_index(nb, "%load_ext")).locator(".cm-content")).to_be_visible(timeout=TIMEOUT)
    # a cell run before the kernel is up is dropped by JupyterLab, so wait for it
    expect(page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle", timeout=TIMEOUT)


def run_cell_in_view(page: Page, index: int) -> None:
    """test_lab.run_cell on a cell that may be off screen: JupyterLab skips rendering off-screen
    cells (content-visibility), so their editor counts as invisible until scrolled to."""
    cell(page, index).scroll_into_view_if_needed(timeout=TIMEOUT)
    run_cell(page, index)


def block_names(nb: nbformat.NotebookNode) -> list[str]:
    return [m.group(1) for c in nb.cells if c.cell_type == "code" and (m := re.match(r"%%di_\w+ (\w+)", c.source))]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"panel-flow-{name}.png"))


def stream_row(detail: Locator, block: str, stream: str) -> Locator:
    """The run details' entry of one block's stream."""
    return detail.locator(f'.jp-di-run-streams .jp-di-run-stream[data-block="{block}"][data-stream="{stream}"]')


def wait_all_done(page: Page, names: list[str]) -> None:
    graph = page.locator("#jupyter-di-graph")
    for name in names:
        expect(graph.locator(f'g.jp-di-node[data-block-name="{name}"]')).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT)


class StatusLog:
    """Every ``status`` message the kernel sends the extension, read off the kernel websocket.

    Why not the side panel's DOM: it redraws once per frame, and a fast block's "running" and
    "done" often land in the same frame, so the DOM cannot tell a new run from the last one.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.seen: list[tuple[str, str]] = []  # (block, status) in arrival order
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload: str | bytes) -> None:
        content = _content(payload)
        data = content.get("data") if isinstance(content, dict) else None
        if isinstance(data, dict) and data.get("type") == "status":
            self.seen.append((data.get("name"), data.get("status")))

    def wait_ran(self, names: list[str], since: int, timeout_ms: int = RUN_TIMEOUT) -> list[tuple[str, str]]:
        """Wait until, after ``since`` messages, every block in ``names`` was running and then done."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            new = self.seen[since:]
            if all(("running" in (s := [st for n, st in new if n == name])) and s[-1] == "done" for name in names):
                return new
            assert time.monotonic() < deadline, f"blocks {names} did not run to done; statuses since: {new}"
            self.page.wait_for_timeout(250)  # lets Playwright deliver the websocket frames


def _content(payload: str | bytes) -> object:
    """A kernel message's content from a websocket frame (JSON text, or the v1 binary protocol)."""
    try:
        if isinstance(payload, str):
            return json.loads(payload).get("content")
        count = struct.unpack_from("<Q", payload, 0)[0]
        offsets = struct.unpack_from(f"<{count}Q", payload, 8)
        return json.loads(payload[offsets[4] : offsets[5]])  # channel, header, parent, metadata, content
    except (ValueError, struct.error, IndexError, AttributeError):
        return None


def cell_text(page: Page, index: int) -> str:
    """The cell's source as its CodeMirror editor shows it (one .cm-line per line)."""
    return "\n".join(cell(page, index).locator(".cm-content .cm-line").all_inner_texts())


def panel_tab(panel: Locator, title: str) -> Locator:
    """A tab of the block panel (ipywidgets Tab = a Lumino TabBar) by its exact title."""
    return panel.locator(".lm-TabBar-tab", has=panel.page.locator(".lm-TabBar-tabLabel", has_text=re.compile(f"^{title}$")))


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_schema_edit_in_panel_reaches_cell_and_next_pipeline_run(page: Page, lab: Lab) -> None:
    folder, nb = copy_quickstart(lab, "flow")
    names = block_names(nb)
    source_cell = cell_index(nb, "%%di_source shop")
    warehouse = folder / "warehouse.duckdb"
    statuses = StatusLog(page)

    # 1. Run All: every block done, the warehouse has the customers with their signed_up dates
    open_quickstart(page, lab, "flow", nb)
    show_pipeline_panel(page)
    run_all(page, cell_index(nb, "%load_ext"))
    expect(page.locator("#jupyter-di-connection")).to_have_attribute("data-connected", "true", timeout=RUN_TIMEOUT)
    wait_all_done(page, names)
    # the last cell (the check) printed its counts: Run All has finished and released the warehouse
    expect(cell(page, len(nb.cells) - 1).locator(".jp-OutputArea-output")).to_contain_text("enriched_orders", timeout=RUN_TIMEOUT)
    assert query(warehouse, f'SELECT count(*), count("{DROPPED}") FROM customers') == [(50, 50)]
    enriched = query(warehouse, "SELECT count(*), count(DISTINCT id), count(customer_name) FROM enriched_orders")
    assert enriched[0][0] > 0 and enriched[0][0] == enriched[0][1], enriched
    shot(page, "1-run-all")

    # 2. the shop panel: discover, open customers, deselect signed_up in Schema properties
    panel = cell(page, source_cell).locator(".jp-OutputArea-output .widget-tab")
    expect(panel).to_be_visible(timeout=TIMEOUT)
    # before any Discover, the panel shows what the run read (issue 21): orders' columns, all ticked
    panel_tab(panel, "Schema properties").click()
    read = panel.locator(".jdi-table:visible")
    expect(read.locator("tbody tr").first).to_be_visible(timeout=TIMEOUT)
    assert read.locator('tbody tr input[data-key="include"]').count() == read.locator("tbody tr").count() > 3
    expect(read.locator('tbody tr input[data-key="include"]:not(:checked)')).to_have_count(0)
    shot(page, "2-after-run-schema-properties")
    panel_tab(panel, "Streams").click()
    streams = panel.locator(".jdi-table:visible")
    panel.locator("button:visible", has_text="Discover streams").click()
    expect(panel.get_by_text(re.compile(r"2 streams found at"))).to_be_visible(timeout=TIMEOUT)
    expect(streams.locator('tr[data-id="customers"] td').nth(7)).to_have_text("all 4", timeout=TIMEOUT)
    streams.locator('tr[data-id="customers"] a').click()  # opens the stream in detail, columns and sample
    expect(panel_tab(panel, "Stream detail")).to_have_class(re.compile(r"lm-mod-current"), timeout=TIMEOUT)
    panel_tab(panel, "Schema properties").click()
    columns = panel.locator(".jdi-table:visible")
    expect(columns.locator("tbody tr")).to_have_count(4, timeout=TIMEOUT)
    include = columns.locator(f'tr[data-id="{DROPPED}"] input[data-key="include"]')
    expect(include).to_be_checked()
    shot(page, "2a-schema-properties")
    include.uncheck()
    panel_container = cell(page, source_cell).locator(".jp-OutputArea-output")
    expect(panel_container.get_by_text("Saved into the cell.")).to_be_visible(timeout=TIMEOUT)

    # the cell itself changed: customers now lists its columns without signed_up
    editor = cell(page, source_cell).locator(".cm-content")
    expect(editor).to_contain_text("columns: [id, name, city]", timeout=TIMEOUT)
    text = cell_text(page, source_cell)
    assert text.split("  customers:\n", 1)[1].splitlines()[0] == "    columns: [id, name, city]", text
    assert DROPPED not in text, text
    assert "  orders:\n    replication_method: INCREMENTAL\n" in text, text  # the other stream is untouched
    # the panel shows what the cell now says (table redrawn from the saved YAML)
    expect(columns.locator(f'tr[data-id="{DROPPED}"] input[data-key="include"]')).not_to_be_checked()
    shot(page, "2b-cell-edited")

    # 3. Run pipeline from the side panel: the edited YAML is what runs
    since = len(statuses.seen)
    page.locator("#jupyter-di-run-pipeline").click()
    statuses.wait_ran(names, since)
    wait_all_done(page, names)
    expect(page.locator("#jupyter-di-error")).to_have_text("")
    shot(page, "3-run-pipeline")

    # 4. the Runs view (issue 21): the run started from the side panel is the newest, above the
    # three cell runs of Run All, where the user finds its report
    runs = page.locator("#jupyter-di-runs tbody tr[data-run-id]")
    expect(runs).to_have_count(4, timeout=TIMEOUT)
    expect(runs.first).to_have_attribute("data-run-id", "4")
    expect(runs.first).to_have_attribute("data-status", "done")
    expect(runs.first.locator("td").nth(2)).to_have_text("kernel")
    page.locator("#jupyter-di-runs").scroll_into_view_if_needed()
    shot(page, "4-runs-view")

    # 5. clicking a run shows its record: blocks, streams with rows and bookmarks before/after
    detail = page.locator("#jupyter-di-run-detail")
    runs.first.click()
    expect(detail).to_have_attribute("data-run-id", "4", timeout=TIMEOUT)
    expect(detail.locator("h3")).to_have_text("Run #4 · kernel · done", timeout=TIMEOUT)
    blocks = detail.locator(".jp-di-run-blocks tbody tr")
    expect(blocks).to_have_count(3)
    expect(blocks.locator("td:first-child")).to_have_text(["shop", "enriched_orders", "warehouse"])
    orders = stream_row(detail, "shop", "orders")
    expect(orders.locator(".jp-di-run-before")).to_contain_text("updated_at = ")  # bookmark before: run 1's
    expect(orders.locator(".jp-di-run-after")).to_contain_text("updated_at = ")
    expect(stream_row(detail, "warehouse", "orders").locator(".jp-di-run-table")).to_have_text("orders")
    expect(detail.locator(".jp-di-run-errors li")).to_have_count(0)
    detail.scroll_into_view_if_needed()
    shot(page, "5-run-detail")
    runs.last.click()  # run 1: the source cell of Run All, the first sync of orders
    expect(detail).to_have_attribute("data-run-id", "1", timeout=TIMEOUT)
    first = stream_row(detail, "shop", "orders")
    expect(first.locator(".jp-di-run-rows")).to_have_text("1,000")
    expect(first.locator(".jp-di-run-before")).to_have_text("no bookmark yet")
    expect(first.locator(".jp-di-run-after")).to_contain_text("updated_at = ")
    page.locator("#jupyter-di-run-detail-close").click()
    expect(detail.locator("h3")).to_have_count(0)

    # the customers table keeps its signed_up column (FULL_TABLE replaces rows, not the table),
    # but every row now came without it; orders and the enriched rows are unchanged
    cols = [
        r[0]
        for r in query(
            warehouse, "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position"
        )
    ]
    assert cols == ["id", "name", "city", DROPPED], cols
    assert query(warehouse, f'SELECT count(*), count("{DROPPED}"), count(DISTINCT id), count(city) FROM customers') == [(50, 0, 50, 50)]
    assert query(warehouse, "SELECT name, city FROM customers WHERE id = 1") == [("Customer 1", "Berlin")]
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM orders") == [(1000, 1000)]
    # enriched_orders is upserted on id and joins customers by name and city, not signed_up
    assert query(warehouse, "SELECT count(*), count(DISTINCT id), count(customer_name) FROM enriched_orders") == enriched


def test_kernel_restart_reconnects_side_panel(page: Page, lab: Lab) -> None:
    _folder, nb = copy_quickstart(lab, "restart")
    load_ext, shop, enriched = (cell_index(nb, p) for p in ("%load_ext", "%%di_source shop", "%%di_block enriched_orders"))
    statuses = StatusLog(page)
    open_quickstart(page, lab, "restart", nb)
    show_pipeline_panel(page)
    connection = page.locator("#jupyter-di-connection")
    graph = page.locator("#jupyter-di-graph")
    nodes = graph.locator("g.jp-di-node")
    run_cell_in_view(page, load_ext)
    expect(connection).to_have_attribute("data-connected", "true", timeout=TIMEOUT)
    run_cell_in_view(page, shop)
    run_cell_in_view(page, enriched)
    # the kernel's graph (the blocks it defined) replaces the blocks parsed from the cells
    expect(nodes).to_have_count(2, timeout=TIMEOUT)
    for name in ("shop", "enriched_orders"):
        expect(graph.locator(f'g.jp-di-node[data-block-name="{name}"]')).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT)

    # Kernel > Restart Kernel…, confirmed: the comm is gone with the old process
    page.locator(".lm-MenuBar-item", has_text="Kernel").first.click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Restart Kernel…")).first.click()
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    expect(connection).to_have_attribute("data-connected", "false", timeout=TIMEOUT)
    expect(page.locator("#jupyter-di-run-pipeline")).to_be_disabled()
    expect(page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle", timeout=TIMEOUT)
    shot(page, "restart-1-disconnected")

    # %load_ext in the new kernel: connected again, Run pipeline usable again
    since = len(statuses.seen)
    run_cell_in_view(page, load_ext)
    expect(connection).to_have_attribute("data-connected", "true", timeout=TIMEOUT)
    expect(page.locator("#jupyter-di-run-pipeline")).to_be_enabled()
    # the new kernel runs shop: its status reaches the panel, whose graph is now the new kernel's
    run_cell_in_view(page, shop)
    statuses.wait_ran(["shop"], since)
    expect(nodes).to_have_count(1, timeout=TIMEOUT)
    expect(graph.locator('g.jp-di-node[data-block-name="shop"]')).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT)
    expect(page.locator(f'{NOTEBOOK} .jp-di-badge[data-block-name="shop"]')).to_have_attribute("data-status", "done")
    # and the new kernel's bridge serves side-panel requests: Run block on shop runs it once more
    since = len(statuses.seen)
    graph.locator('g.jp-di-node[data-block-name="shop"]').click()
    page.locator("#jupyter-di-run-block").click()
    statuses.wait_ran(["shop"], since)
    expect(page.locator("#jupyter-di-error")).to_have_text("")
    shot(page, "restart-2-reconnected")
