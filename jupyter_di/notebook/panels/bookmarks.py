"""Bookmarks: each stream's saved bookmark from the state store, edited or reset from the panel.

Setting a value pins it in the ``StateStore`` (the next incremental read starts
there; the next successful sync moves it on); reset forgets it, so the next
run is a full sync.  Destinations keep no bookmarks of their own: they commit
their source blocks' bookmarks, which those blocks' panels edit.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import ipywidgets as widgets

from ...block_kind import BlockKind
from ...pipeline.params import parse_value
from . import look
from .editor import BlockEditor
from .jobs import Status


def readable_bookmark(bookmark: Any) -> str:
    """A saved bookmark as a person reads it (HTML): ``updated_at = 2024-03-26 16:40:00+00:00``,
    one column a line; "no bookmark yet" rather than ``null``."""
    if bookmark is None or bookmark == {}:
        return "<i>no bookmark yet</i>"
    if not isinstance(bookmark, dict):
        return f"<code>{html.escape(json.dumps(bookmark, default=str))}</code>"
    lines = []
    for column, value in bookmark.items():
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
        if isinstance(value, str) and "T" in value:
            try:
                shown = dt.datetime.fromisoformat(value).isoformat(sep=" ")  # a timestamp as a timestamp
            except ValueError:
                shown = value
        lines.append(f"<code>{html.escape(str(column))}</code> = <code>{html.escape(shown)}</code>")
    return "<br>".join(lines)


class BookmarksSection:
    def __init__(self, editor: BlockEditor, ctx: Any) -> None:
        self.editor, self.pipeline = editor, ctx.pipeline
        self.inputs: dict[str, widgets.Text] = {}
        if editor.cfg.kind == BlockKind.DESTINATION:  # one line, no form
            sources = [u for u in editor.block.upstream if ctx.upstream_kind(u) == "source"]
            text = ", ".join(f"<code>{html.escape(s)}</code>" for s in sources) or "none"
            self.widget = look.html(
                f"A destination commits the bookmarks of its source blocks ({text}); edit them in those blocks' panels."
            )
            return
        self.overview = look.html()
        self.status = Status()
        self.values = look.vbox()
        self.picker = look.make(widgets.Dropdown, description="stream", options=[])
        self.picker.observe(lambda _ch: self._fill(), "value")
        self.set_button = look.button("Set bookmark", "bookmark")
        self.reset_button = look.button("Reset stream", "undo")
        self.reset_all_button = look.button("Reset all streams", "trash")
        self.set_button.on_click(lambda _b: self.set_bookmark())
        self.reset_button.on_click(lambda _b: self.reset(self.picker.value))
        self.reset_all_button.on_click(lambda _b: self.reset(None))
        self.widget = look.vbox(
            [
                self.overview,
                self.picker,
                self.values,
                look.hbox([self.set_button, self.reset_button, self.reset_all_button]),
                self.status,
            ]
        )
        self.refresh()

    def _state(self) -> dict[str, dict[str, Any]]:
        return {stream: state for _b, stream, state in self.pipeline.state.items(self.pipeline.name, self.editor.block.name)}

    def refresh(self) -> None:
        if self.editor.cfg.kind == BlockKind.DESTINATION:
            return
        states = self._state()
        streams = list(dict.fromkeys([*self.editor.cfg.selected_streams(), *states]))
        rows = "".join(
            f"<tr><td><code>{html.escape(s)}</code></td><td>{html.escape(', '.join(self.editor.cfg.streams.get(s, {}).get('bookmark_properties') or []))}</td>"
            f"<td>{readable_bookmark((states.get(s) or {}).get('bookmark'))}"
            f"{' (pinned)' if (states.get(s) or {}).get('pinned') else ''}</td></tr>"
            for s in streams
        )
        self.overview.value = (
            f"<table><thead><tr><th>stream</th><th>bookmark columns</th><th>saved bookmark</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        current = self.picker.value
        self.picker.options = streams
        self.picker.value = current if current in streams else (streams[0] if streams else None)
        self._fill()

    def _fill(self) -> None:
        old = self.values.children  # each fill makes new boxes; the old ones are closed (not kept in saved notebooks)
        self._show_values()
        for box in old:
            box.close()

    def _show_values(self) -> None:
        stream = self.picker.value
        if stream is None:
            self.inputs = {}
            self.values.children = [look.html("No streams yet.")]
            return
        saved = ((self._state().get(stream) or {}).get("bookmark")) or {}
        columns = list(dict.fromkeys([*(self.editor.cfg.streams.get(stream, {}).get("bookmark_properties") or []), *saved]))
        self.inputs = {c: look.make(widgets.Text, description=c, value="" if saved.get(c) is None else str(saved[c])) for c in columns}
        self.values.children = list(self.inputs.values()) or [look.html("This stream has no bookmark columns (it is not INCREMENTAL).")]

    def set_bookmark(self) -> None:
        stream = self.picker.value
        bookmark = {c: parse_value(box.value) for c, box in self.inputs.items() if box.value.strip()}
        if stream is None or not bookmark:
            self.status.error("Type a value for at least one bookmark column.")
            return
        # The same pinned state as `jupyter-di state set`; the next committed sync replaces it.
        self.pipeline.state.set(self.pipeline.name, self.editor.block.name, stream, {"bookmark": bookmark, "pinned": True})
        self.status.ok(f"Bookmark of {stream} set to {json.dumps(bookmark, default=str)}; the next run reads from there.")
        self.refresh()

    def reset(self, stream: str | None) -> None:
        removed = self.pipeline.state.reset(self.pipeline.name, self.editor.block.name, stream)
        self.status.ok(f"Reset {removed} bookmark(s); the next run of {'stream ' + stream if stream else 'every stream'} is a full sync.")
        self.refresh()
