"""Select streams and the streams overview with bulk editing, as one table.

Discover (sources: the connector's catalog, cached; destinations: the
upstream outputs' catalogs) lists the streams; each row has a "selected"
toggle and the stream settings the overview edits.  Highlighting rows and
using the bulk bar sets one setting on all of them in one write-back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...block_kind import BlockKind
from ...connectors.base import REPLICATION_METHODS, UNIQUE_CONFLICT_METHODS, StreamSettings
from . import look
from .catalog_view import CatalogView
from .editor import BlockEditor
from .jobs import Jobs, Status
from .table import EditableTable, column

REPLICATION_CHOICES = list(REPLICATION_METHODS)  # LOG_BASED too: the run refuses it for a source without a change log
_DEFAULTS = StreamSettings(stream="")


def stream_columns(kind: str) -> list[dict[str, Any]]:
    cols = [
        column("selected", "selected", "bool", bulk=True),
        column("destination_table", "table", "text"),
        column("replication_method", "sync", "choice", REPLICATION_CHOICES, bulk=True),
        column("unique_conflict_method", "unique conflict", "choice", list(UNIQUE_CONFLICT_METHODS), bulk=True),
        column("run_in_parallel", "parallel", "bool", bulk=True),
    ]
    if kind == BlockKind.DESTINATION:
        cols.append(column("auto_add_new_fields", "add new columns", "bool", bulk=True))
    cols += [column("columns", "columns"), column("bookmark", "bookmark")]
    return cols


def stream_rows(editor: BlockEditor, view: CatalogView) -> list[dict[str, Any]]:
    rows = []
    for name in view.stream_names():
        s = editor.cfg.streams.get(name, {})
        total = len(view.columns(name))
        chosen = s.get("columns")
        rows.append(
            {
                "id": name,
                "selected": editor.is_selected(name),
                "destination_table": s.get("destination_table") or "",
                "replication_method": s.get("replication_method", _DEFAULTS.replication_method),
                "unique_conflict_method": s.get("unique_conflict_method", _DEFAULTS.unique_conflict_method),
                "run_in_parallel": s.get("run_in_parallel", _DEFAULTS.run_in_parallel),
                "auto_add_new_fields": s.get("auto_add_new_fields", _DEFAULTS.auto_add_new_fields),
                "columns": (f"{len(chosen)} of {total}" if total else str(len(chosen)))
                if chosen is not None
                else (f"all {total}" if total else "all"),
                "bookmark": ", ".join(s.get("bookmark_properties") or []),
            }
        )
    return rows


class StreamsSection:
    def __init__(self, editor: BlockEditor, view: CatalogView, jobs: Jobs, ctx: Any, on_catalog: Callable[[dict[str, Any]], None]) -> None:
        self.editor, self.view, self._jobs, self._ctx = editor, view, jobs, ctx
        self._on_catalog = on_catalog
        label = "Discover streams" if editor.cfg.kind == BlockKind.SOURCE else "Collect upstream streams"
        self.discover_button = look.button(label, "search")
        self.discover_button.on_click(lambda _b: self.discover())
        self.status = Status()
        self.table = EditableTable(columns=stream_columns(editor.cfg.kind), rows=stream_rows(editor, view), id_label="stream")
        self.table.on_edit(self.edit)
        self._describe_cache()
        self.widget = look.vbox([look.hbox([self.discover_button, self.status]), self.table])

    def _describe_cache(self) -> None:
        if self.view.catalog is None:
            self.table.note = "No catalog yet: press the button to list the streams (only streams named in the cell are shown)."
        elif not self.editor.cfg.streams:
            self.table.note = "No streams are listed in the cell, so the block reads every stream."
        else:
            self.table.note = ""

    def refresh(self) -> None:
        self.table.rows = stream_rows(self.editor, self.view)
        self._describe_cache()

    def edit(self, ids: list[str], changes: dict[str, Any]) -> None:
        changes = dict(changes)
        if "selected" in changes:
            self.editor.select(ids, bool(changes.pop("selected")), self.view.stream_names())
        if changes:
            self.editor.set_stream_fields(ids, changes)

    def discover(self):
        def found(catalog: dict[str, Any]) -> str:
            self._on_catalog(catalog)
            return f"{len(catalog.get('streams', []))} streams found at {time.strftime('%H:%M:%S')}."

        return self._jobs.run(
            "Discovering streams",
            lambda: self._ctx.discover(self.editor),
            self.status,
            done=found,
            button=self.discover_button,
            secrets=lambda: self._ctx.secret_values,
        )
