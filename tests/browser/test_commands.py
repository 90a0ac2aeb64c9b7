"""jupyter-di's JupyterLab commands in a real lab: the command palette, the keyboard shortcuts and
the Run menu run the current notebook's pipeline (or one block) like the side panel's buttons do.

The notebook has two fast Python blocks, ``numbers`` -> ``doubled``; every run is checked on the
``status`` messages the kernel sends (StatusLog), and the side panel must end with both done.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Lab
from tests.browser.test_lab import TIMEOUT, cell, open_notebook, run_cell, show_pipeline_panel, write_notebook
from tests.browser.test_panel_flow import StatusLog, cell_text, wait_all_done

pytestmark = pytest.mark.browser

NAMES = ["numbers", "doubled"]
CELLS = [
    ("load", "%load_ext jupyter_di"),
    ("numbers", "%%di_block numbers\n@data_loader\ndef load(*args, **kwargs):\n    return [1, 2, 3]\n"),
    (
        "doubled",
        "%%di_block doubled --upstream numbers\n@transformer\ndef double(numbers, *args, **kwargs):\n    return [2 * n for n in numbers]\n",
    ),
]


def menu_item(page: Page, menu: str, command: str):  # noqa: ANN201
    """Open a main menu; its item for a command (Lumino menus carry data-command)."""
    page.locator(".lm-MenuBar-item", has_text=menu).first.click()
    return page.locator(f'.lm-Menu-item[data-command="{command}"]')


def test_commands_run_the_pipeline_from_palette_shortcuts_and_menu(page: Page, lab: Lab) -> None:
    write_notebook(lab, "commands.ipynb", CELLS)
    statuses = StatusLog(page)
    open_notebook(page, lab, "commands.ipynb")
    show_pipeline_panel(page)

    # before %load_ext the Run menu lists the commands, disabled (no kernel with jupyter-di)
    item = menu_item(page, "Run", "jupyter-di:run-pipeline")
    expect(item.locator(".lm-Menu-itemLabel")).to_have_text("Run Pipeline")
    expect(item.locator(".lm-Menu-itemShortcut")).to_have_text("Ctrl+Shift+Enter")  # from schema/plugin.json
    expect(item).to_have_class(re.compile(r"\blm-mod-disabled\b"))
    expect(page.locator('.lm-Menu-item[data-command="jupyter-di:run-block"]')).to_have_count(1)
    page.keyboard.press("Escape")

    for index in range(len(CELLS)):
        run_cell(page, index)
    expect(page.locator("#jupyter-di-connection")).to_have_attribute("data-connected", "true", timeout=TIMEOUT)
    wait_all_done(page, NAMES)

    # 1. the command palette: "Run Pipeline" in the jupyter-di category
    since = len(statuses.seen)
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_visible(timeout=TIMEOUT)
    palette.fill("Run Pipeline")
    entry = page.locator('.lm-CommandPalette-item[data-command="jupyter-di:run-pipeline"]')
    expect(entry).to_contain_text("Run Pipeline")
    entry.click()
    statuses.wait_ran(NAMES, since)
    wait_all_done(page, NAMES)
    expect(page.locator("#jupyter-di-error")).to_have_text("")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "commands-1-palette.png"))

    # 2. Accel Shift Enter, typed in a cell's editor: the whole pipeline again
    since = len(statuses.seen)
    cell(page, 1).locator(".cm-content").click()
    page.keyboard.press("Control+Shift+Enter")
    statuses.wait_ran(NAMES, since)
    wait_all_done(page, NAMES)

    # 3. Accel Alt Enter in the doubled cell: that block only (numbers is fresh, so it is reused)
    since = len(statuses.seen)
    cell(page, 2).locator(".cm-content").click()
    page.keyboard.press("Control+Alt+Enter")
    new = statuses.wait_ran(["doubled"], since)
    assert ("numbers", "running") not in new, new
    wait_all_done(page, NAMES)
    # the shortcuts ran commands, they typed nothing into the editors
    for index in (1, 2):
        assert cell_text(page, index).rstrip("\n") == CELLS[index][1].rstrip("\n")

    # 4. Run > Run Pipeline
    since = len(statuses.seen)
    item = menu_item(page, "Run", "jupyter-di:run-pipeline")
    expect(item).not_to_have_class(re.compile(r"\blm-mod-disabled\b"))
    item.click()
    statuses.wait_ran(NAMES, since)
    wait_all_done(page, NAMES)

    # 5. Accel Alt P shows the side panel after it was closed
    page.locator('.jp-SideBar [data-id="jupyter-di-pipeline"]').click()
    expect(page.locator("#jupyter-di-pipeline")).to_be_hidden()
    cell(page, 0).locator(".cm-content").click()
    page.keyboard.press("Control+Alt+p")
    expect(page.locator("#jupyter-di-pipeline")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#jupyter-di-error")).to_have_text("")
    page.screenshot(path=str(ARTIFACTS / "commands-2-done.png"))
