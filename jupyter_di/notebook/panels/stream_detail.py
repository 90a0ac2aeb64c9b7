"""Stream detail: one stream's settings (table, sync method, bookmark/key/unique columns, conflicts, parallel).

The column choices are limited to the stream's discovered columns when the
catalog is known.  Each change writes back at once; while the widgets are
being filled for another stream, their observers stay quiet.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import ipywidgets as widgets

from ...block_kind import BlockKind
from ...connectors.base import UNIQUE_CONFLICT_METHODS
from . import look
from .catalog_view import CatalogView
from .editor import BlockEditor
from .streams import _DEFAULTS, REPLICATION_CHOICES

LIST_FIELDS = ("bookmark_properties", "key_properties", "unique_constraints")


class StreamDetailSection:
    def __init__(self, editor: BlockEditor, view: CatalogView) -> None:
        self.editor, self.view = editor, view
        self.stream: str | None = None
        self._loading = False
        style = {"description_width": "12em"}
        wide = {"width": "40em"}
        self.summary = look.html()
        self.inputs: dict[str, widgets.Widget] = {
            "destination_table": look.make(
                widgets.Text,
                description="destination table",
                placeholder="(the stream name)",
                continuous_update=False,
                style=style,
                layout_=wide,
            ),
            "replication_method": look.make(widgets.Dropdown, description="replication method", options=REPLICATION_CHOICES, style=style),
            "bookmark_properties": look.make(widgets.TagsInput, allow_duplicates=False),
            "key_properties": look.make(widgets.TagsInput, allow_duplicates=False),
            "unique_constraints": look.make(widgets.TagsInput, allow_duplicates=False),
            "unique_conflict_method": look.make(
                widgets.Dropdown, description="unique conflict method", options=list(UNIQUE_CONFLICT_METHODS), style=style
            ),
            "run_in_parallel": look.make(widgets.Checkbox, description="run stream in parallel", indent=False),
        }
        if editor.cfg.kind == BlockKind.DESTINATION:
            self.inputs["auto_add_new_fields"] = look.make(widgets.Checkbox, description="automatically add new columns", indent=False)
        for key, box in self.inputs.items():
            box.observe(lambda ch, k=key: self._changed(k, ch["new"]), "value")
        labelled = []
        for key, box in self.inputs.items():
            if key in LIST_FIELDS:
                labelled.append(look.hbox([look.make(widgets.Label, key.replace("_", " "), layout_={"width": "12em"}), box]))
            else:
                labelled.append(box)
        self.widget = look.vbox([self.summary, *labelled])

    def show(self, stream: str | None) -> None:
        self.stream = stream
        self.refresh()

    def refresh(self) -> None:
        stream = self.stream
        s = self.editor.cfg.streams.get(stream, {}) if stream else {}
        columns = self.view.columns(stream) if stream else []
        self._loading = True
        try:
            for key, box in self.inputs.items():
                if key in LIST_FIELDS:
                    box.allowed_tags = [c for c, _ in columns]
                    box.value = list(s.get(key) or [])
                elif key == "destination_table":
                    box.value = s.get(key) or ""
                else:
                    box.value = s.get(key, getattr(_DEFAULTS, key))
                box.disabled = stream is None
        finally:
            self._loading = False
        if stream is None:
            self.summary.value = "Pick a stream (click its name in the Streams table)."
            return
        counts = Counter(t.split(" ")[0] for _, t in columns)
        kinds = ", ".join(f"{n} {t}" for t, n in counts.most_common())
        self.summary.value = f"<b>{html.escape(stream)}</b>: {len(columns)} columns" + (f" ({kinds})" if kinds else " (not discovered yet)")

    def _changed(self, key: str, value: Any) -> None:
        if self._loading or self.stream is None:
            return
        if isinstance(value, tuple):
            value = list(value)
        self.editor.set_stream_fields([self.stream], {key: value})
