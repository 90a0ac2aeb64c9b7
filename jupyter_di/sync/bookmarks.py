"""Checking bookmark values a user typed (overrides) against the stream's column types.

Why: a bookmark override is sent to the source as a lower bound; a value of
the wrong type would otherwise fail deep inside the source's driver with a
message that names neither the block, the stream nor the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ..errors import ConfigError


def _types(prop: dict[str, Any]) -> set[str]:
    kinds = prop.get("type", [])
    return {kinds} if isinstance(kinds, str) else set(kinds)


def validate_bookmark(entry: dict[str, Any] | None, bookmark: dict[str, Any], *, block: str, stream: str) -> dict[str, Any]:
    """Return the bookmark with values normalised; raise ConfigError naming the bad column."""
    props = ((entry or {}).get("schema") or {}).get("properties") or {}
    out: dict[str, Any] = {}
    for column, value in bookmark.items():
        prop = props.get(column)
        if entry is not None and prop is None:
            raise ConfigError(
                f"bookmark column {column!r} is not a column of the stream.",
                block=block,
                stream=stream,
                fix=f"use one of: {', '.join(list(props)[:20])}.",
            )
        prop = prop or {}
        kinds, fmt = _types(prop), prop.get("format")
        try:
            if fmt in ("date-time", "date") and value in ("infinity", "-infinity"):
                pass  # PostgreSQL's and DuckDB's infinite dates and timestamps (connectors/_shared/infinity.py)
            elif fmt == "date-time":
                text = str(value).replace("Z", "+00:00")
                dt.datetime.fromisoformat(text)
                value = text
            elif fmt == "date":
                dt.date.fromisoformat(str(value))
                value = str(value)
            elif "integer" in kinds and not isinstance(value, bool):
                value = int(value) if not isinstance(value, float) or value.is_integer() else _bad()
            elif "number" in kinds:
                decimal.Decimal(str(value))
        except (ValueError, TypeError, OverflowError, decimal.InvalidOperation):
            example = {"date-time": "2024-01-01T00:00:00+00:00", "date": "2024-01-01"}.get(
                fmt or "", "a number" if kinds & {"integer", "number"} else "a value"
            )
            raise ConfigError(
                f"bookmark value {_short(value)} for column {column!r} has the wrong type ({fmt or '/'.join(sorted(kinds - {'null'}))}).",
                block=block,
                stream=stream,
                fix=f"give it like {example}.",
            ) from None
        out[column] = value
    return out


def _bad() -> Any:
    raise ValueError("not an integer")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"
