"""One table module for every table widget (issue 21): the lab extension registers table.js once, each
table widget's ``_esm`` is a one-liner, and a page without the module gets the script inline.

With the widget manager's ``saveState`` on (so the notebook keeps every widget's state, as other
clients do), the quickstart is run twice in one lab: once as JupyterLab runs it, once on a page
where the module was removed before the run (a client without the extension).  Both notebooks
are saved (after opening the source panel's Streams tab), their sizes and widget models printed
and kept in test-artifacts/table-module-sizes.json; the first must stay under 40 KB (issue 21:
panel tabs are built when opened, widgets share layouts and styles).
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from jupyter_di.notebook.panels.table import SHARED_ESM
from tests.browser.conftest import ARTIFACTS, Lab
from tests.browser.test_lab import TIMEOUT, cell, run_all, show_pipeline_panel
from tests.browser.test_panel_flow import (
    RUN_TIMEOUT,
    block_names,
    cell_index,
    copy_quickstart,
    open_quickstart,
    panel_tab,
    wait_all_done,
)

pytestmark = pytest.mark.browser

WIDGETS = "application/vnd.jupyter.widget-state+json"
TABLE_JS = 5_000  # bytes; table.js is 5.2 KB
LIGHT = 40_000  # bytes: the executed quickstart, saved with its widget state


def set_save_state(lab: Lab, on: bool) -> None:
    """The ipywidgets manager's saveState setting (JupyterLab saves no widget state by default)."""
    body = json.dumps({"raw": json.dumps({"saveState": on})}).encode()
    req = urllib.request.Request(
        f"{lab.url}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin",
        data=body,
        method="PUT",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def read_saved(path: Path) -> nbformat.NotebookNode | None:
    """The saved notebook, or None while the lab is still writing it (an empty or partial file)."""
    try:
        return nbformat.read(path, as_version=4)
    except (nbformat.reader.NotJSONError, json.JSONDecodeError):
        return None


def run_and_save(page: Page, lab: Lab, folder: str, *, without_module: bool) -> tuple[int, list[dict], Counter[str]]:
    """Run the quickstart in its own folder, check a table rendered, save; (file size, table models' states,
    saved widget models by model name)."""
    target, nb = copy_quickstart(lab, folder)
    open_quickstart(page, lab, folder, nb)
    show_pipeline_panel(page)
    assert page.evaluate("typeof globalThis.jupyterDiTable") == "object"  # the extension registered it
    if without_module:
        page.evaluate("delete globalThis.jupyterDiTable")
    run_all(page, cell_index(nb, "%load_ext"))
    wait_all_done(page, block_names(nb))
    panel = cell(page, cell_index(nb, "%%di_source shop")).locator(".jp-OutputArea-output .widget-tab")
    panel_tab(panel, "Streams").click()
    expect(panel.locator(".jdi-table:visible tbody tr").first).to_be_visible(timeout=RUN_TIMEOUT)
    expect(cell(page, len(nb.cells) - 1).locator(".jp-OutputArea-output")).to_contain_text("enriched_orders", timeout=RUN_TIMEOUT)
    page.keyboard.press("Control+s")
    path = target / "quickstart.ipynb"
    deadline = TIMEOUT / 1000
    saved = read_saved(path)
    while (saved is None or WIDGETS not in saved.metadata.get("widgets", {})) and deadline > 0:
        page.wait_for_timeout(250)
        deadline -= 0.25
        saved = read_saved(path)
    assert saved is not None
    states = saved.metadata["widgets"][WIDGETS]["state"].values()
    tables = [m["state"] for m in states if m.get("model_name") == "AnyModel"]
    return path.stat().st_size, tables, Counter(m.get("model_name", "?") for m in states)


def test_tables_share_one_module_and_saved_notebooks_shrink(page: Page, lab: Lab) -> None:
    set_save_state(lab, True)
    try:
        shared_size, shared, models = run_and_save(page, lab, "table-shared", without_module=False)
        page.screenshot(path=str(ARTIFACTS / "table-module-shared.png"))
        inline_size, inline, _ = run_and_save(page, lab, "table-inline", without_module=True)
        page.screenshot(path=str(ARTIFACTS / "table-module-inline.png"))
    finally:
        set_save_state(lab, False)
    sizes = {
        "tables": len(shared),
        "saved_bytes_shared_module": shared_size,
        "saved_bytes_script_inline": inline_size,
        "esm_bytes_per_table_shared": len(SHARED_ESM),
        "widget_models": sum(models.values()),
        "widget_models_by_name": dict(models.most_common()),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "table-module-sizes.json").write_text(json.dumps(sizes, indent=2))
    print(sizes)
    assert shared and inline  # the Streams tab was opened: its table was built (other tabs' only when opened)
    assert all(t["_esm"] == SHARED_ESM and t["_css"] == "" for t in shared)  # one line per table, no CSS
    # without the module every rendered table asked for the script and got it inline
    assert all(len(t["_esm"]) > TABLE_JS for t in inline if t["_esm"] != SHARED_ESM)
    assert any(len(t["_esm"]) > TABLE_JS for t in inline)
    assert shared_size < inline_size
    assert shared_size < LIGHT  # issue 21: an executed quickstart stays under 40 KB, widget state saved
