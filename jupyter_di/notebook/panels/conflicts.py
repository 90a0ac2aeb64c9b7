"""Schema conflicts (destinations): each stream's columns against the table they are written to.

The check connects to the destination (``Destination.describe_table``), so it runs on the panel's
worker thread when the button is pressed, never while the panel is built.  What each row says the
next run will do comes from ``integration/schema_conflicts.py``, which mirrors the writers.
"""

from __future__ import annotations

import html
from typing import Any

from ...integration.schema_conflicts import StreamConflicts
from . import look
from .editor import BlockEditor
from .jobs import ERROR_STYLE, Jobs, Status

STYLE = (
    "<style>.jdi-conflicts{border-collapse:collapse;font-size:12px;line-height:1.35;width:100%}"
    ".jdi-conflicts th,.jdi-conflicts td{text-align:left;padding:2px 6px;vertical-align:top;white-space:nowrap;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd)}"
    ".jdi-conflicts td:last-child{white-space:normal;min-width:14em}"
    ".jdi-conflict-notes{font-size:12px;line-height:1.35;margin:4px 0}</style>"
)
"""The last column (what the next run does) wraps; the others stay on one line."""
HEADERS = ("stream", "table", "column", "change", "stream type", "table type", "on the next run")


def conflicts_html(found: list[StreamConflicts]) -> str:
    """One table of every stream's conflicts, then the streams without any (or that cannot be checked)."""
    rows, notes = [], []
    for s in found:
        for c in s.conflicts:
            style = f" style='{ERROR_STYLE}'" if c.fails else ""
            cells = (s.stream, s.table, c.column, c.kind, c.stream_type or "", c.table_type or "", c.outcome)
            rows.append(
                f"<tr data-column='{html.escape(c.column)}'{style}>" + "".join(f"<td>{html.escape(v)}</td>" for v in cells) + "</tr>"
            )
        if s.note:
            notes.append(f"<li><b>{html.escape(s.stream)}</b>: {html.escape(s.note)}</li>")
        elif not s.conflicts:
            notes.append(f"<li><b>{html.escape(s.stream)}</b>: table {html.escape(s.table)} matches the stream's columns.</li>")
    out = STYLE
    if rows:
        head = "".join(f"<th>{h}</th>" for h in HEADERS)
        out += f"<table class='jdi-conflicts'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if notes:
        out += f"<ul class='jdi-conflict-notes'>{''.join(notes)}</ul>"
    return out


class ConflictsSection:
    def __init__(self, editor: BlockEditor, jobs: Jobs, ctx: Any) -> None:
        self.editor, self._jobs, self._ctx = editor, jobs, ctx
        self.found: list[StreamConflicts] | None = None
        self.button = look.button("Check against the destination", "columns")
        self.button.on_click(lambda _b: self.check())
        self.status = Status()
        self.status.note("Compares each stream's columns with its table: new, changed and missing columns, and what the next run does.")
        self.view = look.html(layout_={"width": "100%", "overflow": "auto"})
        self.widget = look.vbox([look.hbox([self.button, self.status]), self.view])

    def check(self) -> Any:
        def shown(found: list[StreamConflicts]) -> str:
            self.found = found
            self.view.value = conflicts_html(found)
            count = sum(len(s.conflicts) for s in found)
            failing = sum(c.fails for s in found for c in s.conflicts)
            text = f"{count} conflict{'s' if count != 1 else ''} in {len(found)} stream{'s' if len(found) != 1 else ''}"
            return text + (f", {failing} that can fail the next run." if failing else ".")

        return self._jobs.run(
            "Reading the destination's tables",
            lambda: self._ctx.schema_conflicts(self.editor),
            self.status,
            done=shown,
            button=self.button,
            secrets=lambda: self._ctx.secret_values,
        )
