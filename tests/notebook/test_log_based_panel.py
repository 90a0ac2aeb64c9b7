"""The source panel's Bookmarks tab shows a LOG_BASED stream's position (its LSN) and overrides it:
the next run reads the changes from the position typed there."""

from __future__ import annotations

from tests.connectors.postgres.test_log_based import log_pg, make_items, sql  # noqa: F401 - the fixture
from tests.notebook.test_panels import panel_of, shell  # noqa: F401 - the fixture


def test_the_panel_shows_the_lsn_and_the_next_run_starts_where_it_was_set(shell, log_pg):
    make_items(log_pg, rows=3)
    source = (
        "%%di_source pg\nsource: postgresql\nconfig:\n"
        f"  host: {log_pg['host']}\n  port: {log_pg['port']}\n  database: {log_pg['database']}\n  username: {log_pg['username']}\n"
        "streams:\n  items:\n    replication_method: LOG_BASED\n"
    )
    shell.ok(source)  # the snapshot
    store = shell.session.pipeline.state
    after_snapshot = store.get("notebook", "pg", "items")["bookmark"]["lsn"]
    sql(log_pg, "INSERT INTO items (id, v) VALUES (10, 'ten')", "INSERT INTO items (id, v) VALUES (11, 'eleven')")
    shell.ok("%di_run --blocks pg")
    moved = store.get("notebook", "pg", "items")["bookmark"]["lsn"]
    assert moved > after_snapshot
    marks = panel_of(shell, "pg").bookmarks
    marks.refresh()
    assert marks.inputs["lsn"].value == moved  # shown as saved
    assert f"<code>lsn</code> = <code>{moved}</code>" in marks.overview.value
    marks.inputs["lsn"].value = after_snapshot  # back to just after the snapshot
    marks.set_bookmark()
    assert store.get("notebook", "pg", "items")["bookmark"] == {"lsn": after_snapshot}
    assert f"<code>lsn</code> = <code>{after_snapshot}</code> (pinned)" in marks.overview.value
    sql(log_pg, "INSERT INTO items (id, v) VALUES (12, 'twelve')")
    shell.ok("%%di_block n --upstream pg -o n\n@transformer\ndef f(pg, **kw):\n    return sorted(pg.to_pandas()['id'].tolist())\n")
    shell.ok("%di_run --blocks n")
    assert shell.ip.user_ns["n"] == [10, 11, 12]  # the changes since the typed position, 10 and 11 again
