"""Arrow values → what Salesforce accepts, and the checks that they fit their fields.

Why in Arrow compute: the bulk path turns every value into CSV text; done per value in Python
that costs seconds per 100k rows, in Arrow's kernels a few tens of milliseconds.  The same
converted columns serve the collections path (JSON), with numbers and booleans typed back.

Forms: dates ``YYYY-MM-DD``; datetimes in UTC ``YYYY-MM-DDTHH:MM:SS.sssZ`` (a timestamp without
a zone is taken as UTC); booleans ``true``/``false``; JSON-ish values (lists, structs) as JSON text.
In Bulk API CSV an empty value leaves a field unchanged, so a NULL is sent as ``#N/A``, which
clears it, and an upsert leaves the record equal to the row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .fields import NUMBER, TEXT, FieldPlan, SfField

CSV_NULL = "#N/A"
ID_PATTERN = r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass
class ValueProblems:
    """Values that do not fit their field, counted per (column, field, reason), with a few keys."""

    found: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(self, column: str, sf: SfField, reason: str, mask: pa.Array, keys: pa.Array) -> None:
        bad = pc.fill_null(mask, False)
        n = pc.sum(bad).as_py() or 0
        if not n:
            return
        k = (column, sf.name, reason)
        self.counts[k] = self.counts.get(k, 0) + n
        examples = self.found.setdefault(k, [])
        if len(examples) < 3:
            examples.extend(keys.filter(bad).slice(0, 3 - len(examples)).to_pylist())

    def message(self) -> str | None:
        if not self.counts:
            return None
        parts = []
        for k, n in self.counts.items():
            column, name, reason = k
            rows = ", ".join(map(repr, self.found[k]))
            parts.append(f"{column!r} → {name}: {n:,} value(s) {reason} (rows {rows})")
        return "; ".join(parts)


def check_values(batch: pa.RecordBatch, plan: FieldPlan, keys: pa.Array, problems: ValueProblems) -> None:
    """Record in ``problems`` every value of ``batch`` that Salesforce would reject for its field's type."""
    for column, sf in zip(plan.columns, plan.fields):
        col = batch.column(column)
        t = col.type
        if pa.types.is_null(t):
            if not sf.nillable and sf.type != "boolean":
                problems.add(column, sf, "missing (the field is required)", col.is_null(), keys)
            continue
        stringy = pa.types.is_string(t) or pa.types.is_large_string(t)
        if sf.type in TEXT and sf.length:
            text = _text(col)
            problems.add(column, sf, f"longer than {sf.length} characters", pc.greater(pc.utf8_length(text), sf.length), keys)
        elif sf.type in NUMBER or sf.type in ("int", "long"):
            number = _number(col, column, sf, keys, problems)
            if number is None:
                continue
            whole = sf.precision - sf.scale if sf.precision else 0
            if sf.type == "int" and not sf.precision:
                whole = 9
            if whole > 0:
                limit = 10.0**whole
                problems.add(column, sf, f"beyond {whole} digits before the point", pc.greater_equal(pc.abs(number), limit), keys)
            if sf.type in ("int", "long"):
                problems.add(column, sf, "not whole numbers", pc.not_equal(pc.floor(number), number), keys)
        elif sf.type == "boolean" and stringy:
            lower = pc.utf8_lower(pc.utf8_trim_whitespace(col))
            ok = pc.is_in(lower, value_set=pa.array(_TRUE + _FALSE))
            problems.add(column, sf, "not true/false", pc.invert(ok), keys)
        elif sf.type in ("date", "datetime") and stringy:
            parsed = _parse_time(col, sf.type)
            problems.add(
                column,
                sf,
                f"not {'dates' if sf.type == 'date' else 'ISO-8601 timestamps'}",
                pc.and_(col.is_valid(), parsed.is_null()),
                keys,
            )
        elif sf.type in ("id", "reference"):
            problems.add(column, sf, "not 15- or 18-character Salesforce IDs", pc.invert(pc.match_substring_regex(col, ID_PATTERN)), keys)
        if not sf.nillable and sf.type != "boolean" and col.null_count:
            problems.add(column, sf, "missing (the field is required)", col.is_null(), keys)


def _number(col: pa.Array, column: str, sf: SfField, keys: pa.Array, problems: ValueProblems) -> pa.Array | None:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        number = _try_cast(col, pa.float64())
        problems.add(column, sf, "not numbers", pc.and_(col.is_valid(), number.is_null()), keys)
        return number
    return pc.cast(col, pa.float64())


def _try_cast(col: pa.Array, to: pa.DataType) -> pa.Array:
    """``col`` cast to ``to`` value by value, NULL where a value does not convert."""
    try:
        return pc.cast(col, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out = []
        for v in col.to_pylist():
            try:
                out.append(pa.scalar(v).cast(to).as_py() if v is not None else None)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                out.append(None)
        return pa.array(out, to)


def _parse_time(col: pa.Array, kind: str) -> pa.Array:
    if kind == "date":
        return _try_cast(col, pa.date32())
    text = pc.replace_substring_regex(col, r"Z$", "+00:00")
    text = pc.replace_substring_regex(text, r"([+-]\d\d)(\d\d)$", r"\1:\2")
    out = []
    import datetime as dt

    for v in text.to_pylist():
        try:
            parsed = dt.datetime.fromisoformat(v) if v is not None else None
            if parsed is not None and parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            out.append(parsed)
        except ValueError:
            out.append(None)
    return pa.array(out, pa.timestamp("us", "UTC"))


def _text(col: pa.Array) -> pa.Array:
    t = col.type
    if pa.types.is_string(t):
        return col
    if pa.types.is_large_string(t):
        return pc.cast(col, pa.string())
    if pa.types.is_nested(t) or pa.types.is_dictionary(t) and not pa.types.is_string(t.value_type):
        return pa.array([None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in col.to_pylist()], pa.string())
    if pa.types.is_timestamp(t):
        return _datetime_text(col)
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false")
    return pc.cast(col, pa.string())


def _datetime_text(col: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(col.type):
        utc = (
            pc.cast(col, pa.timestamp("ms", col.type.tz or "UTC"))
            if col.type.tz
            else pc.assume_timezone(pc.cast(col, pa.timestamp("ms")), "UTC")
        )
        utc = pc.cast(utc, pa.timestamp("ms", "UTC"))
        return pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
    if pa.types.is_date(col.type):
        return pc.binary_join_element_wise(pc.cast(col, pa.string()), pa.scalar("T00:00:00.000Z"), "")
    text = pc.utf8_trim_whitespace(col)
    return text


def text_column(col: pa.Array, sf: SfField) -> pa.Array:
    """One column as Salesforce's text form for ``sf`` (NULL stays NULL)."""
    t = col.type
    kind = sf.type
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if kind == "boolean":
        if pa.types.is_boolean(t):
            return pc.if_else(col, "true", "false")
        if pa.types.is_integer(t):
            return pc.if_else(pc.not_equal(col, 0), "true", "false")
        lower = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        return pc.if_else(pc.is_in(lower, value_set=pa.array(_TRUE)), "true", "false")
    if kind in ("int", "long"):
        if pa.types.is_integer(t):
            return pc.cast(col, pa.string())
        return pc.cast(pc.cast(_try_cast(col, pa.float64()), pa.int64()), pa.string())
    if kind in NUMBER:
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return pc.cast(col, pa.string())
        return pc.cast(col, pa.string())
    if kind == "date":
        if pa.types.is_timestamp(t):
            return pc.cast(pc.cast(col, pa.date32()), pa.string())
        if pa.types.is_date(t):
            return pc.cast(col, pa.string())
        return pc.cast(_try_cast(col, pa.date32()), pa.string())
    if kind == "datetime":
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return pc.strftime(_parse_time(col, "datetime"), format="%Y-%m-%dT%H:%M:%SZ")
        return _datetime_text(col)
    return _text(col)


def text_batch(batch: pa.RecordBatch, plan: FieldPlan) -> pa.RecordBatch:
    """The batch's mapped columns as text, named by their fields (NULLs kept)."""
    arrays = [text_column(batch.column(c), sf) for c, sf in zip(plan.columns, plan.fields)]
    return pa.RecordBatch.from_arrays(arrays, names=[sf.name for sf in plan.fields])


def csv_ready(batch: pa.RecordBatch, plan: FieldPlan, *, clear_nulls: bool) -> pa.RecordBatch:
    """A text batch with NULLs as ``#N/A`` (clear the field) or empty (leave it / default on insert)."""
    arrays = []
    for col, sf in zip(batch.columns, plan.fields):
        fill = CSV_NULL if clear_nulls and sf.nillable and sf.type != "boolean" else ""
        arrays.append(pc.fill_null(col, fill))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


_NUMERIC_RE = re.compile(r"^-?\d+$")


def json_records(batch: pa.RecordBatch, plan: FieldPlan, sobject: str) -> list[dict[str, Any]]:
    """A text batch as sObject records for the collections API (typed numbers and booleans, null clears)."""
    columns = []
    for col, sf in zip(batch.columns, plan.fields):
        if sf.type == "boolean":
            values = [None if v is None else v == "true" for v in col.to_pylist()]
        elif sf.type in ("int", "long"):
            values = [None if v is None else int(v) for v in col.to_pylist()]
        elif sf.type in NUMBER:
            values = [None if v is None else (int(v) if _NUMERIC_RE.match(v) else float(v)) for v in col.to_pylist()]
        else:
            values = col.to_pylist()
        # a NULL for a required boolean is left out (it keeps its value, or its default on create)
        columns.append((sf.name, values, sf.type == "boolean" and not sf.nillable))
    attributes = {"type": sobject}
    out = []
    for i in range(batch.num_rows):
        record: dict[str, Any] = {"attributes": attributes}
        for name, values, skip_null in columns:
            v = values[i]
            if v is None and skip_null:
                continue
            record[name] = v
        out.append(record)
    return out
