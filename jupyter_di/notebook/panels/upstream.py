"""Upstream block settings: per upstream block, the spec's three options as checkboxes."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ...block_kind import BlockKind
from . import look
from .editor import BlockEditor

OPTIONS = (
    ("use_output_as_input", "Use the block's output data as an input"),
    ("use_catalog_as_input", "Use the block's catalog as an input"),
    ("only_as_input", "Only use the output as an input (do not export it)"),
)


class UpstreamSection:
    def __init__(self, editor: BlockEditor, ctx: Any) -> None:
        self.editor = editor
        self.boxes: dict[str, dict[str, widgets.Checkbox]] = {}
        rows: list[widgets.Widget] = []
        for name in editor.block.upstream:
            settings = editor.cfg.upstream_settings(name)
            boxes = {}
            for key, label in OPTIONS:
                if key == "only_as_input" and editor.cfg.kind != BlockKind.DESTINATION:
                    continue
                box = look.make(widgets.Checkbox, value=getattr(settings, key), description=label, indent=False, layout_={"width": "auto"})
                box.observe(lambda ch, n=name, k=key: self.editor.set_upstream(n, **{k: ch["new"]}), "value")
                boxes[key] = box
            self.boxes[name] = boxes
            rows.append(look.html(f"<b><code>{name}</code></b> <small>({ctx.upstream_kind(name)} block)</small>"))
            rows.append(look.hbox(list(boxes.values())))
        if not rows:
            rows.append(look.html("This block has no upstream blocks. Add some with <code>--upstream NAME</code> on the magic line."))
        self.widget = look.vbox(rows)
