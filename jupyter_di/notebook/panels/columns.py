"""Schema properties with bulk editing: include/exclude columns and mark bookmark, key and unique columns.

Types come from the cached catalog.  Excluding a column writes the stream's
``columns:`` list; including every column again removes it (omitted = all).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .catalog_view import CatalogView
from .editor import COLUMN_MARKS, BlockEditor
from .table import EditableTable, column

COLUMNS = [
    column("include", "include", "bool", bulk=True),
    column("type", "type"),
    column("bookmark", "bookmark", "bool", bulk=True),
    column("key", "key", "bool", bulk=True),
    column("unique", "unique", "bool", bulk=True),
]


def column_rows(editor: BlockEditor, view: CatalogView, stream: str) -> list[dict[str, Any]]:
    settings = editor.cfg.streams.get(stream, {})
    catalog_cols = view.columns(stream)
    names = [c for c, _ in catalog_cols]
    types = dict(catalog_cols)
    extra = [c for key in ("columns", *COLUMN_MARKS.values()) for c in settings.get(key) or [] if c not in types]
    included = set(editor.included_columns(stream, names))
    marks = {mark: set(settings.get(key) or []) for mark, key in COLUMN_MARKS.items()}
    rows = []
    for name in names + list(dict.fromkeys(extra)):
        row = {"id": name, "include": name in included, "type": types.get(name, "(not in catalog)")}
        row.update({mark: name in values for mark, values in marks.items()})
        rows.append(row)
    return rows


class ColumnsSection:
    def __init__(self, editor: BlockEditor, view: CatalogView) -> None:
        self.editor, self.view = editor, view
        self.stream: str | None = None
        self.table = EditableTable(columns=COLUMNS, rows=[], id_label="column")
        self.table.on_edit(self.edit)
        self.widget = widgets.VBox([self.table])
        self.refresh()

    def show(self, stream: str | None) -> None:
        self.stream = stream
        self.refresh()

    def refresh(self) -> None:
        if self.stream is None:
            self.table.rows, self.table.note = [], "Pick a stream (click its name in the Streams table)."
            return
        self.table.rows = column_rows(self.editor, self.view, self.stream)
        self.table.note = (
            "" if self.view.columns(self.stream) else "Columns are not discovered yet: discover streams to see every column and its type."
        )

    def edit(self, ids: list[str], changes: dict[str, Any]) -> None:
        if self.stream is None:
            return
        self.editor.set_columns(self.stream, ids, {k: bool(v) for k, v in changes.items()}, self.view.column_names(self.stream))
