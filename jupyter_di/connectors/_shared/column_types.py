"""Per-column type overrides at a destination (the stream setting ``column_types``).

Why a grammar of our own: a column type cannot be a statement parameter, so an override goes into
``CREATE TABLE`` / ``ALTER TABLE ... ADD COLUMN`` as text.  Only text that reads as a type name is
let through (``decimal(18,2)``, ``varchar(40)``, ``double precision``, ``timestamp(3) with time
zone``, ``int[]``): words, one optional ``(n)`` or ``(n, m)``, an optional ``[]``.  No quotes,
semicolons, comments or operators can reach the SQL; whether the engine knows the type is then
asked of the engine (``Destination.check_column_types``) before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import ConfigError

_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
TYPE_TEXT = re.compile(rf"^{_WORD}(?: {_WORD})*(?: ?\(\s*\d{{1,4}}\s*(?:,\s*\d{{1,4}}\s*)?\))?(?: {_WORD})*(?:\[\])?$")
MAX_TYPE_LENGTH = 80


def check_setting(value: Any, *, block: str | None, stream: str) -> dict[str, str]:
    """The YAML ``column_types:`` of one stream: a mapping of column name to a type name."""
    if not isinstance(value, Mapping):
        raise ConfigError(
            "column_types must map column names to destination types.",
            block=block,
            stream=stream,
            fix='write it like `column_types: {amount: "decimal(18,2)"}`.',
        )
    out: dict[str, str] = {}
    for column, type_text in value.items():
        text = " ".join(str(type_text).split()) if isinstance(type_text, str) else ""
        if not text or len(text) > MAX_TYPE_LENGTH or not TYPE_TEXT.match(text):
            shown = str(type_text)[:40]
            raise ConfigError(
                f"column_types: column {str(column)!r} has {shown!r}, which is not a type name.",
                block=block,
                stream=stream,
                fix='write a type of the destination, like "decimal(18,2)", "varchar(40)" or "double precision".',
            )
        out[str(column)] = text
    return out


def override(types: Mapping[str, str], name: str) -> str | None:
    """The override for column ``name`` (SQL identifiers match case-insensitively), or None."""
    if name in types:
        return types[name]
    lowered = name.lower()
    return next((t for c, t in types.items() if c.lower() == lowered), None)


def unknown_columns(types: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """Overridden columns the stream does not write."""
    have = {n.lower() for n in names}
    return [c for c in types if c.lower() not in have]


def check_columns(types: Mapping[str, str], names: Iterable[str], *, block: str | None, stream: str) -> None:
    """One clear error for an override of a column the stream does not write."""
    written = list(names)
    unknown = unknown_columns(types, written)
    if unknown:
        raise ConfigError(
            f"column_types names column {unknown[0]!r}, which the stream does not write (it writes: {', '.join(written)}).",
            block=block,
            stream=stream,
            fix=f"fix the column name in column_types, or remove {unknown[0]!r} from it.",
        )


def unparsable(column: str, type_text: str, system: str, reason: str, *, stream: str) -> ConfigError:
    """The error for an override the destination's engine does not know."""
    return ConfigError(
        f"column_types: {system} cannot use type {type_text!r} for column {column!r}: {reason}",
        stream=stream,
        fix=f"write a {system} type for {column!r} (e.g. decimal(18,2), varchar(40), bigint), or remove the override.",
    )
