"""Schema properties with bulk editing: include/exclude columns and mark bookmark, key and unique columns.

Types come from the cached catalog.  Excluding a column writes the stream's
``columns:`` list; including every column again removes it (omitted = all).
A destination's table also has a "destination type" column: a type typed there is the column's
override in the stream's ``column_types:`` (used when the table or the column is created); emptied,
the mapped type applies again.
"""

from __future__ import annotations

from typing import Any

from ...block_kind import BlockKind
from . import look
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
DESTINATION_TYPE = column("column_type", "destination type", "text")


def column_rows(editor: BlockEditor, view: CatalogView, stream: str) -> list[dict[str, Any]]:
    settings = editor.cfg.streams.get(stream, {})
    catalog_cols = view.columns(stream)
    names = [c for c, _ in catalog_cols]
    types = dict(catalog_cols)
    extra = [c for key in ("columns", *COLUMN_MARKS.values()) for c in settings.get(key) or [] if c not in types]
    included = set(editor.included_columns(stream, names))
    marks = {mark: set(settings.get(key) or []) for mark, key in COLUMN_MARKS.items()}
    overrides = settings.get("column_types") or {}
    if editor.cfg.kind == BlockKind.DESTINATION:
        extra += [c for c in overrides if c not in types]
    rows = []
    for name in names + list(dict.fromkeys(extra)):
        row = {"id": name, "include": name in included, "type": types.get(name, "(not in catalog)")}
        row.update({mark: name in values for mark, values in marks.items()})
        if editor.cfg.kind == BlockKind.DESTINATION:
            row["column_type"] = overrides.get(name, "")
        rows.append(row)
    return rows


class ColumnsSection:
    def __init__(self, editor: BlockEditor, view: CatalogView, stream: str | None = None) -> None:
        self.editor, self.view = editor, view
        self.stream = stream
        columns = COLUMNS + [DESTINATION_TYPE] if editor.cfg.kind == BlockKind.DESTINATION else COLUMNS
        self.table = EditableTable(columns=columns, rows=[], id_label="column")
        self.table.on_edit(self.edit)
        self.widget = look.vbox([self.table])
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
        if "column_type" in changes:
            self.editor.set_column_types(self.stream, ids, str(changes.pop("column_type") or ""))
        if changes:
            self.editor.set_columns(self.stream, ids, {k: bool(v) for k, v in changes.items()}, self.view.column_names(self.stream))
