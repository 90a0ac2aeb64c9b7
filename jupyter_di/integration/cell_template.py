"""New-block cell templates (the lab extension's "New source/destination block" commands).

Why generated here: the connector registry (and plug-ins' ``ConfigField``s) live in Python, so the
extension asks the kernel once for every connector's template (``templates_json``) and fills in a
free block name itself.  A template holds what the user must decide: the required fields (empty),
secrets as ``{{ secret('NAME') }}`` (never a value), every other field with its default as a
comment, and its description, so the panel and the YAML say the same thing.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..block_kind import BlockKind
from ..connectors import registry
from ..connectors.base import ConfigField, ConnectorSpec

NAME = "{name}"
"""Where the block name goes in a template (the magic line, secret names): the extension picks a free one."""


def _value(value: Any) -> str:
    """One YAML scalar as it would be written in the cell."""
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()


def _field_line(spec: ConnectorSpec, field: ConfigField) -> str:
    note = f"  # {field.description}" if field.description else ""
    if field.secret:
        return f"  {field.name}: \"{{{{ secret('{NAME}_{field.name}') }}}}\"{note}"  # the panel's name: <block>_<field>
    if field.required:
        return f"  {field.name}:{'  # required: ' + field.description if field.description else '  # required'}"
    if field.default is not None:
        return f"  # {field.name}: {_value(field.default)}{note}"
    return f"  # {field.name}:{note}"


def cell_template(kind: BlockKind | str, spec: ConnectorSpec, upstream: str | None = None) -> str:
    """The cell source of a new ``kind`` block of connector ``spec`` (its name is ``{name}``)."""
    kind = BlockKind(kind)
    magic = f"%%{kind.magic} {NAME}" + (f" --upstream {upstream}" if upstream else "")
    lines = [magic, f"{kind.value}: {spec.name}", "config:"]
    lines += [_field_line(spec, f) for f in spec.config_schema] or ["  {}"]
    if kind == BlockKind.SOURCE:
        lines += ["streams: {}  # Discover streams in the panel, or list them here"]
    return "\n".join(lines) + "\n"


def templates() -> list[dict[str, Any]]:
    """Every connector with its title and the templates of the roles it has (source, destination)."""
    out = []
    for name in registry.names():
        try:
            spec = registry.get(name)
        except Exception:  # noqa: BLE001 - a broken plug-in must not hide the others  # noqa: PERF203
            continue
        entry: dict[str, Any] = {"name": spec.name, "title": spec.title}
        if spec.source is not None:
            entry["source"] = cell_template(BlockKind.SOURCE, spec)
        if spec.destination is not None:
            entry["destination"] = cell_template(BlockKind.DESTINATION, spec, upstream="{upstream}")
        out.append(entry)
    return out


class JsonText:
    """Text whose repr is itself: a ``user_expressions`` answer's ``text/plain`` is the repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def templates_json() -> JsonText:
    """What the extension reads, as a ``user_expressions`` entry of a silent execute request
    (nothing runs in the user's namespace, nothing reaches a cell's output)."""
    return JsonText(json.dumps(templates()))
