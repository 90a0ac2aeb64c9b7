"""What the next run of a destination will do where a stream's columns and its table disagree.

Why here (integration) and not in the panel: it needs the destination's settings as a run would
merge them (``runner.destination_settings``), the destination's own description of the table
(``Destination.describe_table``) and the type it maps each column to (``Destination.column_type``),
and it must say exactly what the writers do:

- a column the table lacks is added with the mapped type (or the stream's ``column_types``) when
  ``auto_add_new_fields``, else the run fails with the writer's own error;
- a column whose type differs keeps the table's type: the writers never alter an existing column,
  they cast each value to it (SQLite stores values as they come), so the view says whether every
  value fits or which values would fail;
- a column only the table has (dropped at the source, or added by someone) gets NULL where the run
  writes rows without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from ..connectors._shared import column_types
from ..connectors.base import CHANGE_COLUMNS, DELETED_AT_COLUMN, FULL_TABLE, INTERNAL_PREFIX, Destination, StreamSettings

NEW, TYPE, DROPPED, OVERRIDE = "new column", "type changed", "not sent", "override not applied"

_ALIASES = {
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT2": "SMALLINT",
    "INT8": "BIGINT",
    "SERIAL": "INTEGER",
    "BIGSERIAL": "BIGINT",
    "DECIMAL": "NUMERIC",
    "FLOAT8": "DOUBLE PRECISION",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT": "DOUBLE PRECISION",
    "FLOAT4": "REAL",
    "BOOL": "BOOLEAN",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMP": "TIMESTAMP WITHOUT TIME ZONE",
    "CHARACTER VARYING": "VARCHAR",
    "STRING": "VARCHAR",
    "TEXT": "VARCHAR",
    "BLOB": "BYTEA",
    "JSONB": "JSON",
}
_INTEGERS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"]
_FLOATS = ["REAL", "DOUBLE PRECISION"]


def canonical_type(text: str) -> str:
    """One spelling per type across the engines' catalogs and DDL (``decimal(18,2)`` = ``NUMERIC(18,2)``)."""
    t = " ".join(text.upper().replace(" (", "(").split())
    t = re.sub(r"\s*,\s*", ",", t)
    match = re.match(r"^([A-Z0-9_ ]+?)(\(.*\))?(\[\])?$", t)
    if not match:
        return t
    base, args, array = match.group(1).strip(), match.group(2) or "", match.group(3) or ""
    return _ALIASES.get(base, base) + args + array


def fits(value_type: str, table_type: str) -> bool:
    """Whether every value of ``value_type`` converts to ``table_type`` without loss or failure."""
    a, b = canonical_type(value_type), canonical_type(table_type)
    if a == b or b == "VARCHAR":
        return True
    if a in _INTEGERS and b in _INTEGERS:
        return _INTEGERS.index(a) <= _INTEGERS.index(b)
    if a in _FLOATS and b in _FLOATS:
        return _FLOATS.index(a) <= _FLOATS.index(b)
    if a in ("SMALLINT", "INTEGER", "TINYINT") and b == "DOUBLE PRECISION":
        return True
    if a == "TIMESTAMP WITHOUT TIME ZONE" and b == "TIMESTAMP WITH TIME ZONE":
        return False  # the session's time zone decides: not lossless
    num = re.match(r"^NUMERIC\((\d+),(\d+)\)$", a), re.match(r"^NUMERIC\((\d+),(\d+)\)$", b)
    if num[0] and num[1]:
        (pa_, sa), (pb, sb) = (int(x) for x in num[0].groups()), (int(x) for x in num[1].groups())
        return sa <= sb and pa_ - sa <= pb - sb
    if a in _INTEGERS and b == "NUMERIC":
        return True
    return False


@dataclass
class Conflict:
    column: str
    kind: str
    stream_type: str | None
    """The type the run would create for the stream's column (its override, else the mapped one)."""
    table_type: str | None
    outcome: str
    fails: bool = False
    """The next run fails on it (or may fail, for values that do not fit)."""


@dataclass
class StreamConflicts:
    stream: str
    table: str
    exists: bool | None
    """Whether the table exists; None when the destination cannot describe its tables."""
    conflicts: list[Conflict] = field(default_factory=list)
    note: str = ""


def compare(
    destination: Destination, system: str, settings: StreamSettings, schema: pa.Schema, dropped_at_source: list[str]
) -> StreamConflicts:
    """The conflicts of one stream (``schema``: the columns it writes) with its table.

    ``dropped_at_source``: columns the stream had at its previous sync (the state's ``columns``).
    """
    table = settings.table_name
    try:
        described = destination.describe_table(table)
    except NotImplementedError:
        return StreamConflicts(settings.stream, table, None, note=f"{system} cannot describe its tables: the conflicts are unknown.")
    fields = [f for f in schema if f.name not in CHANGE_COLUMNS]
    if described is None:
        return StreamConflicts(
            settings.stream, table, False, note=f"table {table!r} does not exist yet: the next run creates it with the stream's columns."
        )
    have = {c.name.lower(): c for c in described}
    out = StreamConflicts(settings.stream, table, True)
    new = [f for f in fields if f.name.lower() not in have]
    if new and not settings.auto_add_new_fields:
        error = str(destination.new_columns_refused(settings, [f.name for f in new]))
    for f in new:
        wanted = _wanted(destination, settings, f)
        if settings.auto_add_new_fields:
            outcome = f"added as {wanted or 'a new column'} on the next run (auto_add_new_fields)"
            out.conflicts.append(Conflict(f.name, NEW, wanted, None, outcome))
        else:
            out.conflicts.append(Conflict(f.name, NEW, wanted, None, f"the next run fails: {error}", fails=True))
    for f in fields:
        col = have.get(f.name.lower())
        if col is None:
            continue
        override = column_types.override(settings.column_types, f.name)
        mapped = destination.column_type(f)
        if override and canonical_type(override) != canonical_type(col.type):
            outcome = (
                f"the table keeps {col.type}: column_types applies when the table or the column is created; "
                f"alter the column to {override} (or drop the table) to apply it"
            )
            out.conflicts.append(Conflict(f.name, OVERRIDE, override, col.type, outcome))
            continue
        if override or mapped is None or canonical_type(mapped) == canonical_type(col.type):
            continue
        if system == "sqlite":
            outcome = f"stored as it comes: SQLite keeps the declared type {col.type} and stores each {mapped} value as it is"
            out.conflicts.append(Conflict(f.name, TYPE, mapped, col.type, outcome))
        elif fits(mapped, col.type):
            out.conflicts.append(Conflict(f.name, TYPE, mapped, col.type, f"cast to {col.type} on write: every {mapped} value fits"))
        else:
            outcome = (
                f"cast to {col.type} on write (the table's type is kept): a value that does not convert fails the run "
                f'("the rows do not fit"); set column_types or alter the column to {mapped} to keep every value'
            )
            out.conflicts.append(Conflict(f.name, TYPE, mapped, col.type, outcome, fails=True))
    sent = {f.name.lower() for f in fields}
    dropped = {c.lower() for c in dropped_at_source}
    upsert = bool(settings.unique_constraints) and settings.replication_method != FULL_TABLE
    for col in described:
        name = col.name.lower()
        if name in sent or col.name.startswith(INTERNAL_PREFIX) or col.name == DELETED_AT_COLUMN:
            continue
        if settings.replication_method == FULL_TABLE:
            outcome = "NULL in every row after the next run (FULL_TABLE replaces the table's rows)"
        elif upsert and name in dropped:
            outcome = "set to NULL in the rows the next run upserts (the source dropped it), and in new rows"
        elif upsert:
            outcome = "kept in the rows the next run updates, NULL in the rows it inserts"
        else:
            outcome = "NULL in the rows the next run appends; rows already there keep their values"
        kind = DROPPED + (" (dropped at the source)" if name in dropped else "")
        out.conflicts.append(Conflict(col.name, kind, None, col.type, outcome))
    return out


def _wanted(destination: Destination, settings: StreamSettings, f: pa.Field) -> str | None:
    return column_types.override(settings.column_types, f.name) or destination.column_type(f)
