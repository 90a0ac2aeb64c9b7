"""Columns → sObject fields, checked against one ``describe`` before anything is written.

Why before: Salesforce checks fields record by record, so a typo in a column name or a read-only
field would reject every row of a large load one by one (or fail a bulk job after upload); one
``describe`` call tells which fields exist, which are writable and what they hold, so the stream
fails at once with every problem in one message and the closest existing names.

A column maps to a field through the stream's ``column_mapping``, else to the field of the same
name (case-insensitive), else to the custom field ``<column>__c``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ...errors import SchemaMismatch

TEXT = {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox", "encryptedstring"}
NUMBER = {"double", "currency", "percent"}
SUPPORTED = TEXT | NUMBER | {"int", "long", "boolean", "date", "datetime", "time", "id", "reference"}


@dataclass(frozen=True)
class SfField:
    """What the destination needs of one field of a ``describe``."""

    name: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    createable: bool = False
    updateable: bool = False
    nillable: bool = True
    external_id: bool = False
    id_lookup: bool = False

    @classmethod
    def from_describe(cls, d: Mapping[str, Any]) -> SfField:
        return cls(
            name=str(d["name"]),
            type=str(d.get("type") or "string"),
            length=int(d.get("length") or 0),
            precision=int(d.get("precision") or d.get("digits") or 0),
            scale=int(d.get("scale") or 0),
            createable=bool(d.get("createable")),
            updateable=bool(d.get("updateable")),
            nillable=bool(d.get("nillable", True)),
            external_id=bool(d.get("externalId")),
            id_lookup=bool(d.get("idLookup")),
        )


@dataclass
class FieldPlan:
    """Which field each written column goes to, and the key of an upsert."""

    sobject: str
    columns: list[str]
    fields: list[SfField]
    key_column: str | None = None
    key_field: SfField | None = None

    def field_of(self, column: str) -> SfField:
        return self.fields[self.columns.index(column)]


def plan_fields(
    describe: Mapping[str, Any],
    schema: pa.Schema,
    *,
    stream: str,
    mapping: Mapping[str, str],
    unique_constraints: list[str],
    operation: str,
) -> FieldPlan:
    """Map the stream's columns to the sObject's fields; one ``SchemaMismatch`` for every problem."""
    sobject = str(describe.get("name") or "")
    by_lower = {str(f["name"]).lower(): SfField.from_describe(f) for f in describe.get("fields") or []}
    names = [f.name for f in by_lower.values()]
    lower_mapping = {str(k).lower(): str(v) for k, v in mapping.items()}
    unknown_mapped = [c for c in mapping if c not in schema.names]
    problems: list[str] = []
    if unknown_mapped:
        problems.append(
            f"column_mapping names column(s) the stream does not have: {', '.join(map(repr, unknown_mapped))} (it has: {', '.join(schema.names)})"
        )
    if len(unique_constraints) > 1:
        problems.append(
            f"unique_constraints has {len(unique_constraints)} columns; a Salesforce upsert matches on exactly one external ID field"
        )
    key_column = unique_constraints[0] if unique_constraints else None
    columns: list[str] = []
    fields: list[SfField] = []
    unknown: list[str] = []
    read_only: list[str] = []
    misfits: list[str] = []
    used: dict[str, str] = {}
    for f in schema:
        target = mapping.get(f.name) or lower_mapping.get(f.name.lower())
        sf = by_lower.get((target or f.name).lower())
        if sf is None and target is None:
            sf = by_lower.get(f.name.lower() + "__c")
        if sf is None:
            wanted = target or f.name
            close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5) or difflib.get_close_matches(
                wanted.lower(), [n.lower() for n in names], n=3, cutoff=0.5
            )
            hint = f" (closest: {', '.join(close)})" if close else ""
            unknown.append(f"{f.name!r} → {wanted}{hint}" if target else f"{f.name!r}{hint}")
            continue
        if sf.name in used:
            problems.append(f"columns {used[sf.name]!r} and {f.name!r} both map to field {sf.name}")
            continue
        used[sf.name] = f.name
        is_key = f.name == key_column
        writable = sf.createable if operation == "insert" else (sf.createable or sf.updateable)
        if not writable and not (is_key and (sf.external_id or sf.type == "id")):
            read_only.append(f"{f.name!r} → {sf.name}")
            continue
        if sf.type not in SUPPORTED:
            misfits.append(f"{f.name!r} → {sf.name} (a {sf.type} field, which this destination cannot write)")
            continue
        why = _type_misfit(f.type, sf)
        if why:
            misfits.append(f"{f.name!r} ({f.type}) → {sf.name} ({why})")
            continue
        columns.append(f.name)
        fields.append(sf)
    key_field = None
    if key_column is not None:
        if key_column in columns:
            key_field = fields[columns.index(key_column)]
            if not (key_field.external_id or key_field.type == "id"):
                ext = [sf.name for sf in by_lower.values() if sf.external_id]
                problems.append(
                    f"the key column {key_column!r} maps to {key_field.name}, which is not an external ID field of {sobject}"
                    f" (its external IDs: {', '.join(ext) or 'none'}; mark the field 'External ID' in Setup, or key on Id)"
                )
        elif key_column not in schema.names:
            problems.append(f"the key column {key_column!r} is not a column of the stream")
    if unknown:
        problems.append(f"no field of {sobject} for column(s) {'; '.join(unknown)}")
    if read_only:
        problems.append(
            f"read-only field(s) of {sobject} (not {'createable' if operation == 'insert' else 'createable or updateable'}): {'; '.join(read_only)}"
        )
    if misfits:
        problems.append(f"value types that do not fit: {'; '.join(misfits)}")
    if problems:
        raise SchemaMismatch(
            "cannot write to " + sobject + ": " + ". ".join(problems) + ". Nothing was written.",
            stream=stream,
            fix="map columns to fields with the stream's column_mapping under config.streams, drop columns with `columns:`, "
            "or fix the fields in Salesforce Setup.",
        )
    return FieldPlan(sobject=sobject, columns=columns, fields=fields, key_column=key_column, key_field=key_field)


def _type_misfit(t: pa.DataType, sf: SfField) -> str | None:
    """Why an Arrow column of type ``t`` cannot go into ``sf`` (None when it can, maybe after a value check)."""
    kind = sf.type
    if pa.types.is_null(t):  # a column with no values at all fits any field
        return None
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    stringy = pa.types.is_string(t) or pa.types.is_large_string(t)
    if kind in TEXT:
        return None if not pa.types.is_binary(t) else "binary data into a text field"
    if kind in NUMBER or kind in ("int", "long"):
        return None if numeric or stringy else f"a {kind} field needs numbers"
    if kind == "boolean":
        return None if pa.types.is_boolean(t) or stringy or pa.types.is_integer(t) else "a boolean field needs true/false"
    if kind == "date":
        return None if pa.types.is_date(t) or pa.types.is_timestamp(t) or stringy else "a date field needs dates"
    if kind == "datetime":
        return None if pa.types.is_timestamp(t) or pa.types.is_date(t) or stringy else "a datetime field needs timestamps"
    if kind == "time":
        return None if pa.types.is_time(t) or stringy else "a time field needs times"
    if kind in ("id", "reference"):
        return None if stringy else "an ID field needs 15- or 18-character Salesforce IDs"
    return None
