"""Singer catalog vocabulary: building stream entries and mapping Arrow <-> JSON schema.

Why here: every connector's ``discover`` speaks the Singer catalog (streams,
``tap_stream_id``, JSON schema, metadata with breadcrumbs), and destinations
that receive data from Python blocks need a catalog inferred from Arrow
dtypes.  One module keeps that vocabulary identical everywhere.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from .base import is_json_field, json_field


def stream_entry(
    tap_stream_id: str,
    properties: dict[str, dict[str, Any]],
    *,
    key_properties: list[str] | None = None,
    valid_replication_keys: list[str] | None = None,
    sql_datatypes: dict[str, str] | None = None,
    extra_stream_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Singer catalog stream with standard metadata.

    Key properties and valid replication keys are ``automatic``; every other
    field is ``available``.  Nothing is selected: selection is the user's.
    """
    key_properties = list(key_properties or [])
    valid_replication_keys = list(valid_replication_keys or [])
    stream_md: dict[str, Any] = {
        "inclusion": "available",
        "table-key-properties": key_properties,
        "valid-replication-keys": valid_replication_keys,
        "forced-replication-method": None,
    }
    stream_md.update(extra_stream_metadata or {})
    metadata = [{"breadcrumb": [], "metadata": {k: v for k, v in stream_md.items() if v is not None}}]
    for name in properties:
        md: dict[str, Any] = {
            "inclusion": "automatic" if name in key_properties else "available",
        }
        if sql_datatypes and name in sql_datatypes:
            md["sql-datatype"] = sql_datatypes[name]
        metadata.append({"breadcrumb": ["properties", name], "metadata": md})
    return {
        "tap_stream_id": tap_stream_id,
        "stream": tap_stream_id,
        "key_properties": key_properties,
        "schema": {"type": "object", "properties": properties},
        "metadata": metadata,
    }


def stream_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    """The stream-level (empty breadcrumb) metadata of a catalog entry."""
    for item in entry.get("metadata", []):
        if list(item.get("breadcrumb", [])) == []:
            return item.setdefault("metadata", {})
    md: dict[str, Any] = {}
    entry.setdefault("metadata", []).insert(0, {"breadcrumb": [], "metadata": md})
    return md


def find_stream(catalog: dict[str, Any], stream: str) -> dict[str, Any] | None:
    for entry in catalog.get("streams", []):
        if entry.get("tap_stream_id") == stream or entry.get("stream") == stream:
            return entry
    return None


def json_schema_for_arrow(data_type: pa.DataType, field: pa.Field | None = None) -> dict[str, Any]:
    """A nullable JSON-schema property for an Arrow type (Singer conventions)."""
    if field is not None and is_json_field(field):
        return {"type": ["null", "object", "array", "string", "number", "boolean"]}
    if pa.types.is_boolean(data_type):
        return {"type": ["null", "boolean"]}
    if pa.types.is_integer(data_type):
        return {"type": ["null", "integer"]}
    if pa.types.is_floating(data_type):
        return {"type": ["null", "number"]}
    if pa.types.is_decimal(data_type):
        return {"type": ["null", "number"], "multipleOf": 10 ** -data_type.scale}
    if pa.types.is_timestamp(data_type):
        return {"type": ["null", "string"], "format": "date-time"}
    if pa.types.is_date(data_type):
        return {"type": ["null", "string"], "format": "date"}
    if pa.types.is_time(data_type):
        return {"type": ["null", "string"], "format": "time"}
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return {"type": ["null", "array"], "items": json_schema_for_arrow(data_type.value_type)}
    if pa.types.is_struct(data_type) or pa.types.is_map(data_type):
        return {"type": ["null", "object"]}
    if pa.types.is_dictionary(data_type):
        return json_schema_for_arrow(data_type.value_type)
    return {"type": ["null", "string"]}


def catalog_entry_for_arrow(
    stream: str, schema: pa.Schema, key_properties: list[str] | None = None
) -> dict[str, Any]:
    """A catalog entry inferred from Arrow dtypes (destination input from Python blocks)."""
    properties = {f.name: json_schema_for_arrow(f.type, f) for f in schema}
    entry = stream_entry(stream, properties, key_properties=key_properties)
    return entry


def arrow_type_for_json_schema(prop: dict[str, Any]) -> pa.DataType:
    """The Arrow type a JSON-schema property maps to (Singer targets, empty streams)."""
    types = prop.get("type", "string")
    if isinstance(types, str):
        types = [types]
    types = [t for t in types if t != "null"]
    fmt = prop.get("format")
    if len(types) != 1:
        return pa.string()
    kind = types[0]
    if kind == "integer":
        return pa.int64()
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "string" and fmt == "date-time":
        return pa.timestamp("us", tz="UTC")
    if kind == "string" and fmt == "date":
        return pa.date32()
    return pa.string()


def arrow_field_for_property(name: str, prop: dict[str, Any]) -> pa.Field:
    """The Arrow field for one JSON-schema property; objects/arrays become JSON-marked strings."""
    types = prop.get("type", [])
    if isinstance(types, str):
        types = [types]
    if "object" in types or "array" in types:
        return json_field(name)
    return pa.field(name, arrow_type_for_json_schema(prop))


def check_replication_keys(bookmark_properties: list[str], valid: list[str], types: dict[str, str], stream: str) -> None:
    """Refuse bookmark columns that cannot be ordered (Singer's ``valid-replication-keys``).

    Why here and not at the database: the database's own error ("could not
    identify an ordering operator for type json") names neither the stream nor
    what to pick instead, and some orders (booleans, JSON text) would run but
    mean nothing as a bookmark.
    """
    bad = [b for b in bookmark_properties if b in types and b not in valid]
    if bad:
        from ..errors import ConfigError

        described = ", ".join(f"{b!r} ({types[b]})" for b in bad)
        raise ConfigError(
            f"bookmark column{'s' if len(bad) > 1 else ''} {described} cannot be ordered, so cannot hold a bookmark.",
            stream=stream,
            fix=f"pick bookmark_properties among: {', '.join(valid) or '(no orderable column)'}.",
        )
