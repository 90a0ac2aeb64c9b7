"""Read-only views of a Singer catalog for the panels: stream names, columns and their types."""

from __future__ import annotations

from typing import Any

from ...connectors.catalog import entries_by_id, sql_datatypes
from ...integration.di_config import DIConfig


def type_label(prop: dict[str, Any], sql_type: str | None = None) -> str:
    """``integer``, ``string (date-time)``, ... and the database's own type when known."""
    types = prop.get("type", [])
    if isinstance(types, str):
        types = [types]
    label = "/".join(t for t in types if t != "null") or "any"
    if prop.get("format"):
        label += f" ({prop['format']})"
    if sql_type:
        label += f" · {sql_type}"
    return label


def columns_of(entry: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(column, type label) in the catalog's column order."""
    if not entry:
        return []
    sql = sql_datatypes(entry)
    props = (entry.get("schema") or {}).get("properties") or {}
    return [(name, type_label(prop or {}, sql.get(name))) for name, prop in props.items()]


class CatalogView:
    """The streams a panel lists: the cached catalog's, then those only the cell names."""

    def __init__(self, cfg: DIConfig, catalog: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.set(catalog)

    def set(self, catalog: dict[str, Any] | None) -> None:
        self.catalog = catalog
        self.entries = entries_by_id(catalog)
        self._columns: dict[str, list[tuple[str, str]]] = {}

    def stream_names(self) -> list[str]:
        return list(self.entries) + [n for n in self.cfg.streams if n not in self.entries]

    def columns(self, stream: str) -> list[tuple[str, str]]:
        if stream not in self._columns:
            self._columns[stream] = columns_of(self.entries.get(stream))
        return self._columns[stream]

    def column_names(self, stream: str) -> list[str]:
        return [c for c, _ in self.columns(stream)]
