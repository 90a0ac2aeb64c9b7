"""Singer catalog vocabulary: stream ids, selection, stream settings, and Arrow <-> JSON schema.

Why here: every connector's ``discover`` speaks the Singer catalog (streams,
``tap_stream_id``, JSON schema, metadata with breadcrumbs), a Singer tap reads
its selection from one, Python blocks select streams and carry stream settings
in one, panels list its streams and column types, and destinations that receive
data from Python blocks need a catalog inferred from Arrow dtypes.  One module
keeps that vocabulary identical everywhere: nothing else reads ``tap_stream_id``,
``breadcrumb`` or ``selected`` out of a catalog.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from .base import INCREMENTAL, StreamSettings, is_json_field, json_field

STREAM_KEYS = (
    "selected",
    "columns",
    "replication_method",
    "bookmark_properties",
    "key_properties",
    "unique_constraints",
    "unique_conflict_method",
    "destination_table",
    "run_in_parallel",
    "auto_add_new_fields",
    "append_only",
    "null_cursor",
    "partitions",
    "delete_mode",
    "validate_records",
    "column_types",
)
"""The stream settings a block (its YAML ``streams:``, or a catalog entry's Mage-style keys) may
give a stream, in their canonical order: ``selected`` plus the fields of ``StreamSettings``."""
SETTINGS_KEYS = tuple(k for k in STREAM_KEYS if k not in ("selected", "columns"))


# --------------------------------------------------------------------------- stream ids


def stream_id(entry: Mapping[str, Any]) -> Any:
    """The id a catalog entry is known by (and a tap files its bookmark under): ``tap_stream_id``,
    else ``stream``."""
    return entry.get("tap_stream_id") or entry.get("stream")


def stream_ids(catalog: Mapping[str, Any]) -> list[Any]:
    """The ids of a catalog's streams, in its order."""
    return [stream_id(e) for e in catalog.get("streams", [])]


def entries_by_id(catalog: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A catalog's entries by stream id (entries without one are left out)."""
    return {stream_id(e): e for e in (catalog or {}).get("streams", []) if stream_id(e)}


def names_of(entry: Mapping[str, Any]) -> set[str]:
    """Every name an entry answers to: its ``tap_stream_id`` and its ``stream``."""
    return {n for n in (entry.get("tap_stream_id"), entry.get("stream")) if n is not None}


def find_stream(catalog: Mapping[str, Any], stream: str) -> dict[str, Any] | None:
    """The entry named ``stream`` (by ``tap_stream_id`` or ``stream``), or None."""
    entry: dict[str, Any]
    for entry in catalog.get("streams", []):
        if stream in names_of(entry):
            return entry
    return None


def only_streams(catalog: Mapping[str, Any], streams: Iterable[str]) -> dict[str, Any]:
    """A shallow copy of ``catalog`` keeping the entries named in ``streams``."""
    wanted = set(streams)
    return {**catalog, "streams": [e for e in catalog.get("streams", []) if names_of(e) & wanted]}


# --------------------------------------------------------------------------- metadata and selection


def stream_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    """The stream-level (empty breadcrumb) metadata of a catalog entry, added when missing."""
    for item in entry.get("metadata", []):
        if list(item.get("breadcrumb", [])) == []:
            found: dict[str, Any] = item.setdefault("metadata", {})
            return found
    md: dict[str, Any] = {}
    entry.setdefault("metadata", []).insert(0, {"breadcrumb": [], "metadata": md})
    return md


def field_metadata(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """The metadata of one field (breadcrumb ``["properties", name]``), added when missing."""
    for item in entry.setdefault("metadata", []):
        if list(item.get("breadcrumb", [])) == ["properties", name]:
            found: dict[str, Any] = item.setdefault("metadata", {})
            return found
    md: dict[str, Any] = {}
    entry["metadata"].append({"breadcrumb": ["properties", name], "metadata": md})
    return md


def sql_datatypes(entry: Mapping[str, Any]) -> dict[str, str]:
    """Each field's ``sql-datatype`` (the source system's own type name), where the entry has one."""
    out: dict[str, str] = {}
    for item in entry.get("metadata", []) or []:
        crumb = list(item.get("breadcrumb", []))
        if len(crumb) == 2 and crumb[0] == "properties":
            sql_type = (item.get("metadata") or {}).get("sql-datatype")
            if sql_type:
                out[crumb[1]] = str(sql_type)
    return out


def stream_is_selected(entry: Mapping[str, Any]) -> bool:
    """Spec: streams whose stream-level metadata is missing or has ``selected: true``."""
    for item in entry.get("metadata", []) or []:
        if list(item.get("breadcrumb", [])) == []:
            return bool(item.get("metadata", {}).get("selected", False)) or "selected" not in item.get("metadata", {})
    return True


def select_catalog(catalog: dict[str, Any], streams: list[str] | None, selected: bool = True) -> dict[str, Any]:
    """Mark ``streams`` (all when None) and every field of them as selected (``select_all``).

    With ``selected=False`` they are marked explicitly unselected instead: the
    spec's ``select_all=False``, where the user selects streams and fields via
    their metadata (a missing ``selected`` would count as selected).
    """
    for entry in catalog.get("streams", []):
        if streams is not None and not names_of(entry) & set(streams):
            continue
        for item in entry.setdefault("metadata", []):
            item.setdefault("metadata", {})["selected"] = selected
        stream_metadata(entry)["selected"] = selected
    return catalog


def selected_catalog(catalog: dict[str, Any], stream: str, settings: StreamSettings) -> dict[str, Any]:
    """A copy of ``catalog`` with only ``stream`` selected, per the Singer SDK selection rules
    (what a tap reads; see docs/connectors.md, "Singer taps and targets").

    Stream breadcrumb ``[]``: ``selected: true``, ``replication-method`` and,
    when INCREMENTAL, ``replication-key`` = the first bookmark property (Singer
    taps know one replication key).  Requested columns are selected, every
    other field ``selected: false`` (``automatic`` fields such as keys are still
    emitted by the tap; we drop them from the output).  Other streams are
    deselected.  Raises ``KeyError`` when the catalog has no ``stream``.
    """
    result = copy.deepcopy(catalog)
    target = find_stream(result, stream)
    if target is None:
        raise KeyError(stream)
    wanted = set(settings.columns) if settings.columns is not None else None
    for entry in result.get("streams", []):
        md = stream_metadata(entry)
        chosen = entry is target
        md["selected"] = chosen
        entry["selected"] = chosen  # legacy taps read the top-level flag
        if not chosen:
            continue
        md["replication-method"] = settings.replication_method
        entry["replication_method"] = settings.replication_method
        if settings.replication_method == INCREMENTAL and settings.bookmark_properties:
            md["replication-key"] = settings.bookmark_properties[0]
            entry["replication_key"] = settings.bookmark_properties[0]
        else:
            md.pop("replication-key", None)
            entry.pop("replication_key", None)
        for name in entry.get("schema", {}).get("properties", {}):
            field_metadata(entry, name)["selected"] = wanted is None or name in wanted
    return result


def stream_settings_from_catalog(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's stream settings carried on a catalog entry (Mage extension keys + metadata)."""
    settings: dict[str, Any] = {k: entry[k] for k in SETTINGS_KEYS if entry.get(k) not in (None, [])}
    stream_md: dict[str, Any] = {}
    columns: list[str] = []
    any_field_choice = False
    for item in entry.get("metadata", []) or []:
        crumb = list(item.get("breadcrumb", []))
        md = item.get("metadata", {})
        if crumb == []:
            stream_md = md
        elif len(crumb) == 2 and crumb[0] == "properties":
            if "selected" in md:
                any_field_choice = True
            if md.get("inclusion") == "unsupported":
                continue
            if md.get("selected", md.get("selected-by-default", False)) or md.get("inclusion") == "automatic":
                columns.append(crumb[1])
    if "replication_method" not in settings and stream_md.get("replication-method"):
        settings["replication_method"] = stream_md["replication-method"]
    if "bookmark_properties" not in settings and stream_md.get("replication-key"):
        settings["bookmark_properties"] = [stream_md["replication-key"]]
    if "key_properties" not in settings and stream_md.get("table-key-properties"):
        settings["key_properties"] = list(stream_md["table-key-properties"])
    if any_field_choice:
        settings["columns"] = columns
    return settings


# --------------------------------------------------------------------------- building entries, Arrow <-> JSON schema


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
        return {"type": ["null", "number"], "multipleOf": 10**-data_type.scale}
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


def catalog_entry_for_arrow(stream: str, schema: pa.Schema, key_properties: list[str] | None = None) -> dict[str, Any]:
    """A catalog entry inferred from Arrow dtypes (destination input from Python blocks)."""
    properties = {f.name: json_schema_for_arrow(f.type, f) for f in schema}
    return stream_entry(stream, properties, key_properties=key_properties)


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
