"""The new-block commands in a real JupyterLab (issue 21): from the palette, the notebook toolbar
and the cell context menu, pick a connector (searching), get its config template in a new cell
with a free name, and the cell runs so its panel opens.

The notebook starts with one empty cell and no `%load_ext jupyter_di`: the first command adds it.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Lab
from tests.browser.test_lab import TIMEOUT, cell, open_notebook, write_notebook
from tests.browser.test_panel_flow import cell_text

pytestmark = pytest.mark.browser

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def pick(page: Page, search: str, name: str) -> None:
    """The connector dialog: type into the search, the list keeps the matches, Add block."""
    box = page.locator("#jupyter-di-connector-search")
    expect(box).to_be_visible(timeout=TIMEOUT)
    box.fill(search)
    expect(page.locator(f'#jupyter-di-connector-list option[value="{name}"]')).not_to_have_attribute("hidden", "")
    expect(page.locator("#jupyter-di-connector-list")).to_have_value(name)
    page.locator(".jp-Dialog-button", has_text="Add block").click()


def test_new_block_commands_add_template_cells_that_open_their_panels(page: Page, lab: Lab) -> None:
    write_notebook(lab, "newblocks.ipynb", [("empty", "")])
    open_notebook(page, lab, "newblocks.ipynb")

    # 1. the palette: New Source Block, searched "local files" -> the files connector
    cell(page, 0).locator(".cm-content").click()
    palette = page.locator(".lm-CommandPalette-input")
    entry = page.locator('.lm-CommandPalette-item.lm-mod-active[data-command="jupyter-di:new-source-block"]')
    dialog = page.locator("#jupyter-di-connector-search")
    for _attempt in range(5):  # the palette opened right after the page settles may close again (focus moves)
        if not palette.is_visible():
            page.keyboard.press("Control+Shift+C")
        try:
            expect(palette).to_be_visible(timeout=10_000)
            palette.fill("New Source Block", timeout=10_000)
            expect(entry).to_be_visible(timeout=10_000)
            palette.press("Enter", timeout=10_000)
            expect(dialog).to_be_visible(timeout=10_000)  # the command ran: its connector picker is open
            break
        except (AssertionError, Exception):  # noqa: BLE001 - playwright's TimeoutError: try again
            continue
    pick(page, "local files", "files")
    expect(cell(page, 2).locator(".jp-InputPrompt")).to_have_text("[2]:", timeout=TIMEOUT)
    assert cell_text(page, 0) == "%load_ext jupyter_di"
    source = cell_text(page, 2)
    assert source.startswith("%%di_source files\nsource: files\nconfig:\n  path:  # required"), source
    assert "  # format: csv  # csv, jsonl or parquet." in source, source
    # it ran: the missing path is the one error, and the panel is there to fill it in
    output = cell(page, 2).locator(".jp-OutputArea")
    expect(output.locator(".widget-tab")).to_be_visible(timeout=TIMEOUT)
    expect(output).to_contain_text("path", timeout=TIMEOUT)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "new-block-1-source.png"))

    # 2. the notebook toolbar: + Destination, reading from the source
    page.locator(f"{NOTEBOOK} .jp-Toolbar-item[data-jp-item-name='jupyter-di-new-destination'] button").click()
    pick(page, "duck", "duckdb")
    expect(cell(page, 3).locator(".jp-InputPrompt")).to_have_text("[3]:", timeout=TIMEOUT)
    assert cell_text(page, 3).startswith("%%di_destination duckdb --upstream files\ndestination: duckdb\n"), cell_text(page, 3)

    # 3. the context menu: New Python Block, transforming the source; a second one gets a free name
    cells = page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell")
    for count in (5, 6):
        cell(page, 1).locator(".jp-InputPrompt").click(button="right")
        page.locator('.lm-Menu-item[data-command="jupyter-di:new-python-block"]').click()
        expect(cells).to_have_count(count, timeout=TIMEOUT)  # inserted below the right-clicked cell, and run
    texts = [cell_text(page, i) for i in range(page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").count())]
    python = [t for t in texts if t.startswith("%%di_block")]
    assert [t.split("\n")[0] for t in python] == ["%%di_block transform_2 --upstream files", "%%di_block transform --upstream files"], texts
    page.screenshot(path=str(ARTIFACTS / "new-block-2-all.png"))
