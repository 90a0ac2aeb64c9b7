"""The jupyter-di extension in a real JupyterLab: side panel, comm write-back, badges, run buttons."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import ARTIFACTS, Lab

pytestmark = pytest.mark.browser

TIMEOUT = 60_000  # ms; the first kernel start on a busy 2-core machine is slow

NEW_SOURCE = "%%di_source shop --upstream creds\nsource: duckdb\nconfig:\n  path: shop.duckdb\n"

REGISTER = """\
import threading
from jupyter_di.notebook.comm import get_bridge
bridge = get_bridge(get_ipython().kernel)
bridge.on_request(
    "run_block", lambda msg: bridge.publish_status(msg["name"], "running", message=threading.current_thread().name)
)
"""

WRITE = f"""\
ok = bridge.replace_cell_source("target", {NEW_SOURCE!r})
bridge.publish_graph([
    {{"name": "creds", "kind": "python", "cell_id": "register", "status": "done", "duration_s": 0.2}},
    {{"name": "shop", "kind": "source", "upstream": ["creds"], "cell_id": "target", "status": "pending"}},
])
bridge.publish_status("shop", "done", 1.5, "1 stream, 3 rows")
print("sent", ok, bridge.connected)
"""


def write_notebook(lab: Lab, name: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source, id=cell_id) for cell_id, source in cells]
    nbformat.write(nb, lab.root / name)


def cell(page: Page, index: int):  # noqa: ANN201
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def accept_kernel_dialog(page: Page) -> None:
    """Accept JupyterLab's "Select Kernel" dialog if it is open (its preselected Python 3).

    On a loaded machine JupyterLab now and then asks for the kernel of a notebook whose kernelspec
    it has not listed yet, even after the kernel came up; the dialog then takes every click.
    """
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator(".jp-mod-accept").click()
        expect(dialog).to_have_count(0, timeout=TIMEOUT)


def run_cell(page: Page, index: int) -> None:
    """Select the cell, Shift+Enter, wait for its execution count.

    JupyterLab now and then drops a run asked for right after the kernel came up (the prompt
    never turns to [*]); a dropped run is asked for again, a started one never is.
    """
    target = cell(page, index)
    prompt = target.locator(".jp-InputPrompt")
    for _attempt in range(3):
        accept_kernel_dialog(page)
        try:
            target.locator(".cm-content").click(timeout=15_000)
        except PlaywrightTimeout:  # a dialog that opened meanwhile took the click: accept it, then again
            continue
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).to_have_text(re.compile(r"\[[\d*]+\]:"), timeout=5_000)
            break
        except AssertionError:
            continue
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=TIMEOUT)


def run_all(page: Page, first_code_cell: int) -> None:
    """Run > Run All Cells, asked again while the first code cell never started (see run_cell)."""
    prompt = cell(page, first_code_cell).locator(".jp-InputPrompt")
    for _attempt in range(3):
        accept_kernel_dialog(page)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
        try:
            expect(prompt).to_have_text(re.compile(r"\[[\d*]+\]:"), timeout=5_000)
            return
        except AssertionError:
            continue
    expect(prompt).to_have_text(re.compile(r"\[[\d*]+\]:"))


def open_notebook(page: Page, lab: Lab, name: str) -> None:
    page.goto(lab.open_url(name))
    # the cell, not its editor: a rendered Markdown cell's editor is hidden
    expect(cell(page, 0)).to_be_visible(timeout=TIMEOUT)
    # a cell run before the kernel is up is dropped by JupyterLab, so wait for it
    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=TIMEOUT
    )


def show_pipeline_panel(page: Page) -> None:
    tab = page.locator('.jp-SideBar [data-id="jupyter-di-pipeline"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    expect(page.locator("#jupyter-di-pipeline")).to_be_visible()


def test_extension_loads_and_kernel_writes_back_into_cells(page: Page, lab: Lab) -> None:
    write_notebook(lab, "writeback.ipynb", [("target", "x = 1  # before"), ("register", REGISTER), ("writer", WRITE)])
    open_notebook(page, lab, "writeback.ipynb")

    # the extension is loaded: its side panel and tab exist; nothing is a block yet
    expect(page.locator("#jupyter-di-pipeline")).to_have_count(1)
    show_pipeline_panel(page)
    expect(page.locator("#jupyter-di-graph-empty")).to_be_visible()
    expect(page.locator("#jupyter-di-graph-empty")).to_contain_text("No blocks yet")
    expect(page.locator("#jupyter-di-connection")).to_have_attribute("data-connected", "false")

    # %load_ext's job: register the bridge; the extension answers its comm when the cell ends
    run_cell(page, 1)
    expect(page.locator("#jupyter-di-connection")).to_have_attribute("data-connected", "true", timeout=TIMEOUT)

    run_cell(page, 2)
    expect(cell(page, 2).locator(".jp-OutputArea-output")).to_have_text("sent True True\n", timeout=TIMEOUT)

    # the other cell's source was replaced, and it is now a YAML source block with a badge
    target = cell(page, 0)
    expect(target.locator(".cm-content")).to_have_text(re.compile(r"%%di_source shop --upstream creds\s*source: duckdb"))
    expect(target.locator(".cm-content")).to_have_attribute("data-language", "yaml")
    badge = target.locator(".jp-di-badge")
    expect(badge).to_have_attribute("data-block-name", "shop")
    expect(badge).to_have_attribute("data-kind", "source")
    expect(badge).to_have_attribute("data-status", "done")
    expect(badge).to_have_attribute("title", "1 stream, 3 rows")
    expect(badge.locator(".jp-di-badge-upstream")).to_have_text("← creds")
    expect(badge.locator(".jp-di-badge-duration")).to_have_text("1.5s")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "writeback-after-replace.png"))

    # the side panel draws the kernel's graph, coloured by status
    graph = page.locator("#jupyter-di-graph")
    expect(graph.locator('g.jp-di-node[data-block-name="shop"]')).to_have_attribute("data-status", "done")
    expect(graph.locator('g.jp-di-node[data-block-name="creds"]')).to_have_attribute("data-status", "done")
    expect(graph.locator('path.jp-di-edge[data-from="creds"][data-to="shop"]')).to_have_count(1)

    # clicking a node activates its cell; Run block reaches the kernel handler, whose status comes back
    graph.locator('g.jp-di-node[data-block-name="shop"]').click()
    expect(page.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-di-badge")).to_have_attribute("data-block-name", "shop")
    page.locator("#jupyter-di-run-block").click()
    expect(graph.locator('g.jp-di-node[data-block-name="shop"]')).to_have_attribute("data-status", "running", timeout=TIMEOUT)
    expect(badge).to_have_attribute("data-status", "running")
    # ...on the kernel's main thread, in turn with cells (not on a comm subshell)
    expect(badge).to_have_attribute("title", "MainThread")

    # Run pipeline without a handler: the kernel's ack says why, the panel shows it
    page.locator("#jupyter-di-run-pipeline").click()
    expect(page.locator("#jupyter-di-error")).to_have_text(
        "run_pipeline failed: the kernel has no handler for run_pipeline; run `%load_ext jupyter_di` first",
        timeout=TIMEOUT,
    )

    # the write-back is a single undoable edit of that cell
    target.locator(".cm-content").click()
    page.keyboard.press("Control+z")
    expect(target.locator(".cm-content")).to_have_text("x = 1  # before")
    expect(target.locator(".jp-di-badge")).to_have_count(0)


QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_run_all_shows_every_block_done(page: Page, lab: Lab) -> None:
    """notebooks/quickstart.ipynb as a user runs it: Run All, then the panel and badges say done."""
    shutil.copy(QUICKSTART, lab.root / "quickstart.ipynb")
    shutil.copytree(QUICKSTART.parent / "data", lab.root / "data", dirs_exist_ok=True)
    nb = nbformat.read(QUICKSTART, as_version=4)
    blocks = {}  # block name -> kind, from the magic lines
    for c in nb.cells:
        m = re.match(r"%%di_(source|destination|block) (\w+)", c.source)
        if c.cell_type == "code" and m:
            blocks[m.group(2)] = {"block": "python"}.get(m.group(1), m.group(1))
    assert len(blocks) >= 3
    open_notebook(page, lab, "quickstart.ipynb")
    show_pipeline_panel(page)
    # before any run the panel already shows the blocks parsed from the cells
    graph = page.locator("#jupyter-di-graph")
    for name in blocks:
        expect(graph.locator(f'g.jp-di-node[data-block-name="{name}"]')).to_have_attribute("data-status", "idle")

    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    run_all(page, first_code)
    last = cell(page, len(nb.cells) - 1)
    expect(last.locator(".jp-OutputArea-output")).to_contain_text("enriched_orders", timeout=180_000)

    expect(page.locator("#jupyter-di-connection")).to_have_attribute("data-connected", "true", timeout=TIMEOUT)
    for name, kind in blocks.items():
        node = graph.locator(f'g.jp-di-node[data-block-name="{name}"]')
        expect(node).to_have_attribute("data-status", "done", timeout=TIMEOUT)
        expect(node).to_have_attribute("data-kind", kind)
        badge = page.locator(f'.jp-di-badge[data-block-name="{name}"]')
        expect(badge).to_have_attribute("data-status", "done")
        expect(badge.locator(".jp-di-badge-duration")).to_have_text(re.compile(r"\d"))
    # the warehouse received rows: the check cell printed a non-zero count per table
    counts = dict(line.split() for line in last.locator(".jp-OutputArea-output").inner_text().strip().splitlines())
    assert counts and all(int(v) > 0 for v in counts.values()), counts
