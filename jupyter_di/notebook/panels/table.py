"""An editable table as one anywidget: hundreds of rows, per-cell editors, search and bulk edits.

Why an anywidget and not a grid of ipywidgets: every ipywidget is its own comm
model, so 500 streams x 6 editors would be 3,000 models and a frozen browser.
Here the table is one model with two JSON traits (``columns`` describes the
columns, ``rows`` holds the values); the JavaScript (``static/table.js``,
shipped in the package, nothing from a CDN) renders it, filters it by search
and keeps the highlighted rows.  Edits come back as custom messages:

- ``{"type": "edit", "ids": [...], "changes": {key: value}}`` (a cell edit or a bulk edit)
- ``{"type": "open", "id": ...}`` (a row's name was clicked)

Python applies them to the block's configuration and sends new ``rows``.

Why the script is not in every widget: a widget's ``_esm`` is part of its state, and a notebook
saved with widget state carried table.js (5.5 KB) once per table.  The lab extension bundles the
module once (``labextension/src/tablemodule.ts``, the same file) and registers it on the page;
each table's ``_esm`` is ``SHARED_ESM``, one line that takes it.  A client without the extension
finds nothing there, so the one-liner sends ``{"type": "module"}`` and this widget (only it)
gets the whole script and its CSS inline, which anywidget loads in place.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

from . import look

Column = dict[str, Any]

STATIC = pathlib.Path(__file__).parent / "static"
SHARED_ESM = (
    "export default globalThis.jupyterDiTable ?? { render({ model, el }) { el.textContent = "
    "'This table needs the jupyter-di lab extension or a running kernel: re-run the cell.'; "
    "model.send({ type: 'module' }); } };"
)
"""A table's whole ``_esm``: the module the extension registered (``TABLE_GLOBAL`` in tablemodule.ts),
else a stand-in that asks the kernel for the inline script."""


def column(key: str, label: str, kind: str = "readonly", options: list[str] | None = None, bulk: bool = False) -> Column:
    """A table column: ``kind`` is readonly, text, bool or choice; ``bulk`` adds it to the bulk editor."""
    out: Column = {"key": key, "label": label, "kind": kind, "bulk": bulk}
    if options is not None:
        out["options"] = list(options)
    return out


class EditableTable(anywidget.AnyWidget):
    _esm = SHARED_ESM
    _css = ""

    columns = traitlets.List(traitlets.Dict()).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    id_label = traitlets.Unicode("name").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("layout", look.layout())
        super().__init__(**kwargs)
        self._on_edit: list[Callable[[list[str], dict[str, Any]], None]] = []
        self._on_open: list[Callable[[str], None]] = []
        self.on_msg(self._receive)

    def on_edit(self, fn: Callable[[list[str], dict[str, Any]], None]) -> None:
        self._on_edit.append(fn)

    def on_open(self, fn: Callable[[str], None]) -> None:
        self._on_open.append(fn)

    def _receive(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "edit":
            ids = [str(i) for i in content.get("ids") or []]
            changes = dict(content.get("changes") or {})
            allowed = {c["key"] for c in self.columns if c.get("kind") != "readonly"}
            changes = {k: v for k, v in changes.items() if k in allowed}
            if ids and changes:
                for fn in self._on_edit:
                    fn(ids, changes)
        elif content.get("type") == "open" and content.get("id") is not None:
            for open_fn in self._on_open:
                open_fn(str(content["id"]))
        elif content.get("type") == "module":  # a client without the lab extension: the script inline
            self._css = (STATIC / "table.css").read_text("utf-8")
            self._esm = (STATIC / "table.js").read_text("utf-8")
