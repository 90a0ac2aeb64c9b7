"""Credentials: one field per ``ConfigField`` of the connector, secrets masked and stored outside the notebook.

A secret typed here goes straight into the ``SecretStore`` as
``<block>_<field>``; the YAML gets ``{{ secret('<block>_<field>') }}`` and the
password box is emptied again, so the value never stays in the widget's
synced state, the cell or the notebook.  Plain fields write on Enter/blur.
"""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets

from ...connectors.base import ConfigField, ConnectorSpec
from . import look
from .editor import BlockEditor
from .jobs import Jobs, Status

UNSET = "(default)"
GRID = {"grid_template_columns": "max-content auto", "align_items": "center"}
"""The fields in one column, their descriptions beside them (the button, its status)."""


def coerce(kind: str, text: str) -> Any:
    """The typed value of a text box: numbers and JSON where the field says so, templates kept as text."""
    text = text.strip()
    if not text or "{{" in text:
        return text
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind in ("object", "array"):
            return json.loads(text)
    except ValueError:
        return text
    return text


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def secret_hint(value: Any) -> str:
    if value is None or value == "":
        return "not set: type it to store it as a secret"
    if isinstance(value, str) and "{{" in value:
        return f"uses {value.strip()}: type a new value to replace it"
    return "WRITTEN IN PLAIN TEXT IN THE CELL: type it here to move it out of the notebook"


class CredentialsSection:
    def __init__(self, editor: BlockEditor, spec: ConnectorSpec, jobs: Jobs, ctx: Any) -> None:
        self.editor = editor
        self.inputs: dict[str, widgets.Widget] = {}
        self.fields = list(spec.config_schema)
        known = {f.name for f in self.fields}
        self.fields += [
            ConfigField(k, "string", description="(not a setting of this connector)") for k in editor.cfg.config if k not in known
        ]
        # one grid of (field, description) pairs, then the button and its status, rather than a
        # box per row: fewer widget models for a saved notebook to keep
        cells = [w for f in self.fields for w in self._row(f)]
        self.status = Status()
        self.test_button = look.button("Test connection", "plug")
        self.test_button.on_click(lambda _b: self.test())
        self._jobs, self._ctx = jobs, ctx
        self.widget = look.make(widgets.GridBox, [*cells, self.test_button, self.status], layout_=GRID)

    def _row(self, f: ConfigField) -> tuple[widgets.Widget, widgets.Widget]:
        """The field's input and its description."""
        value = self.editor.cfg.config.get(f.name)
        label = f.name + (" *" if f.required else "")
        layout, style = {"width": "36em"}, {"description_width": "10em"}
        if f.secret:
            box = look.make(
                widgets.Password, description=label, placeholder=secret_hint(value), continuous_update=False, layout_=layout, style=style
            )
            box.observe(lambda ch, f=f: self._secret_typed(f, ch["new"]), "value")
        elif f.type == "boolean" and (value is None or isinstance(value, bool)):
            default = f"(default: {f.default})" if f.default is not None else UNSET
            # the unset choice has a value of its own: a Dropdown whose value is None shows nothing
            # selected (the files source's `header` looked empty instead of "(default: True)")
            box = look.make(
                widgets.Dropdown,
                description=label,
                options=[(default, UNSET), ("true", True), ("false", False)],
                value=UNSET if value is None else value,
                layout_=layout,
                style=style,
            )
            box.observe(lambda ch, f=f: self.editor.set_config({f.name: None if ch["new"] == UNSET else ch["new"]}), "value")
        else:
            placeholder = f"default: {f.default}" if f.default is not None else ("required" if f.required else "")
            box = look.make(
                widgets.Text,
                description=label,
                value=_shown(value),
                placeholder=placeholder,
                continuous_update=False,
                layout_=layout,
                style=style,
            )
            box.observe(lambda ch, f=f: self.editor.set_config({f.name: coerce(f.type, ch["new"])}), "value")
        self.inputs[f.name] = box  # the description is shown beside it (not repeated as a tooltip)
        return box, look.html(f"<small style='color:#666'>{html.escape(f.description)}</small>")

    def _secret_typed(self, f: ConfigField, value: str) -> None:
        if not value:
            return
        box = self.inputs[f.name]
        try:
            self.editor.set_secret(f.name, value)
        finally:
            box.value = ""  # the value leaves the widget state at once
        box.placeholder = secret_hint(self.editor.cfg.config.get(f.name))

    def test(self):
        return self._jobs.run(
            "Testing the connection",
            lambda: self._ctx.test_connection(self.editor),
            self.status,
            done=lambda text: text,
            button=self.test_button,
            secrets=lambda: self._ctx.secret_values,
        )
