"""The destination panel's Schema conflicts tab and a column type typed in Schema properties (issue 21,
item 5), in a real JupyterLab: after Run All of the quickstart, the warehouse's customers table is
changed behind the pipeline's back, the tab says what the next run does with each column, and a
destination type typed for a column lands in the cell as ``column_types``."""

from __future__ import annotations

import duckdb
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Lab
from tests.browser.test_lab import TIMEOUT, cell, run_all, show_pipeline_panel
from tests.browser.test_panel_flow import (
    RUN_TIMEOUT,
    block_names,
    cell_index,
    cell_text,
    copy_quickstart,
    open_quickstart,
    panel_tab,
    wait_all_done,
)

pytestmark = pytest.mark.browser


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"schema-conflicts-{name}.png"))


def test_schema_conflicts_and_a_column_type_from_the_panel(page: Page, lab: Lab) -> None:
    folder, nb = copy_quickstart(lab, "conflicts")
    open_quickstart(page, lab, "conflicts", nb)
    show_pipeline_panel(page)
    run_all(page, cell_index(nb, "%load_ext"))
    wait_all_done(page, block_names(nb))
    expect(cell(page, len(nb.cells) - 1).locator(".jp-OutputArea-output")).to_contain_text("enriched_orders", timeout=RUN_TIMEOUT)
    # someone changes the warehouse: customers loses city (the stream still sends it) and gains legacy
    with duckdb.connect(str(folder / "warehouse.duckdb")) as con:
        con.execute("ALTER TABLE customers DROP COLUMN city")
        con.execute("ALTER TABLE customers ADD COLUMN legacy VARCHAR")

    index = cell_index(nb, "%%di_destination warehouse")
    panel = cell(page, index).locator(".jp-OutputArea-output .widget-tab")
    expect(panel).to_be_visible(timeout=TIMEOUT)
    panel.scroll_into_view_if_needed()
    panel_tab(panel, "Schema conflicts").click()
    panel.locator("button:visible", has_text="Check against the destination").click()
    view = panel.locator("table.jdi-conflicts:visible")
    expect(view).to_be_visible(timeout=TIMEOUT)
    city = view.locator('tr[data-column="city"]')
    expect(city).to_contain_text("customers")
    expect(city).to_contain_text("new column")
    expect(city).to_contain_text("added as VARCHAR on the next run (auto_add_new_fields)")
    legacy = view.locator('tr[data-column="legacy"]')
    expect(legacy).to_contain_text("not sent")
    expect(legacy).to_contain_text("NULL in every row after the next run (FULL_TABLE replaces the table's rows)")
    expect(panel.get_by_text("2 conflicts in 3 streams.")).to_be_visible()
    shot(page, "1-view")

    # a destination type for enriched_orders.total_with_vat, typed in Schema properties
    panel_tab(panel, "Schema properties").click()
    box = panel.locator('.jdi-table:visible tr[data-id="total_with_vat"] input[data-key="column_type"]')
    box.fill("decimal(18,2)")
    box.press("Enter")
    box.blur()
    editor = cell(page, index).locator(".cm-content")
    expect(editor).to_contain_text("column_types:", timeout=TIMEOUT)
    assert "    column_types:\n      total_with_vat: decimal(18,2)" in cell_text(page, index)
    # the table exists with DOUBLE: the override applies to new tables and columns only, and the view says so
    panel_tab(panel, "Schema conflicts").click()
    panel.locator("button:visible", has_text="Check against the destination").click()
    override = view.locator('tr[data-column="total_with_vat"]')
    expect(override).to_contain_text("override not applied", timeout=TIMEOUT)
    expect(override).to_contain_text("the table keeps DOUBLE")
    shot(page, "2-override")
