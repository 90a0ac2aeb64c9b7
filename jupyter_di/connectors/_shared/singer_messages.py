"""Singer messages <-> Arrow: parsing SCHEMA/RECORD/STATE lines and producing them.

Why a module of its own: the Singer adapter has two directions (a tap's stdout
becomes Arrow batches; Arrow batches become a target's stdin) and both hinge on
the same type conventions, which live here next to each other:

- ``date-time`` strings <-> ``timestamp('us', tz='UTC')`` (naive strings are
  taken as UTC, since Singer requires RFC3339 with an offset anyway); written
  as RFC3339 in UTC with ``Z`` (naive Arrow timestamps without an offset);
- ``date`` strings <-> ``date32``;
- nested objects and arrays <-> strings holding JSON text, marked with the
  ``LOGICAL_TYPE_KEY`` json field metadata;
- decimals are written as JSON numbers with their exact digits (never via a
  float), binary as base64 strings, NaN/inf floats as null.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import DIError, SchemaMismatch
from ..base import is_json_field

SCHEMA, RECORD, STATE, ACTIVATE_VERSION = "SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"


class SingerProtocolError(DIError):
    """A tap or target broke the Singer protocol (malformed line, record before schema)."""


# --------------------------------------------------------------------------- parsing


def parse_line(line: str | bytes) -> dict[str, Any] | None:
    """One stdout line as a message dict; ``None`` for a blank line.

    Raises ``ValueError`` (the caller adds context: which process, which line)
    when the line is not a JSON object with a ``type``.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line:
        return None
    msg = json.loads(line)
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ValueError("not a Singer message (a JSON object with a 'type')")
    msg["type"] = msg["type"].upper()  # the spec says type is case-insensitive
    return msg


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    text = str(value).strip().replace(" ", "T", 1)
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _parse_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(str(value).strip()[:10])


def _to_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _to_json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _to_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "t", "yes")


def _to_decimal(value: Any) -> decimal.Decimal:
    return decimal.Decimal(str(value))


F = TypeVar("F", bound=Callable[..., Any])
TypeRules = Sequence[tuple[Callable[[pa.DataType], bool], F]]


def by_arrow_type(field: pa.Field, rules: TypeRules[F], *, json_text: F, default: F) -> F:
    """The function of the first rule whose test takes ``field``'s type; ``json_text`` for a field
    marked as JSON text, ``default`` when no rule does. Both directions of the type conventions
    above are one table each, read by this."""
    if is_json_field(field):
        return json_text
    return next((fn for test, fn in rules if test(field.type)), default)


VALUE_CONVERTERS: TypeRules[Callable[[Any], Any]] = (
    (pa.types.is_timestamp, _parse_timestamp),
    (pa.types.is_date, _parse_date),
    (pa.types.is_integer, int),
    (pa.types.is_floating, float),
    (pa.types.is_boolean, _to_bool),
    (pa.types.is_decimal, _to_decimal),
)
"""JSON value -> the Python value Arrow expects, by the column's Arrow type."""


def value_converter(field: pa.Field) -> Callable[[Any], Any]:
    """A function turning one JSON value into the Python value Arrow expects for ``field``."""
    return by_arrow_type(field, VALUE_CONVERTERS, json_text=_to_json_text, default=_to_text)


class RecordBatcher:
    """Accumulates RECORD dicts and cuts Arrow batches of a fixed size.

    Memory is bounded by ``batch_size`` records; missing keys are NULL, keys not in the schema are
    dropped.  A batch is built column by column in C (``pa.array`` over the column's values, a
    vectorised cast for date-times and dates); a column whose values need converting (numbers as
    text, naive date-times, a number in a text column) falls back to one converter per value.
    """

    def __init__(self, schema: pa.Schema, batch_size: int, stream: str) -> None:
        self.schema = schema
        self.batch_size = max(1, batch_size)
        self.stream = stream
        self._convert = [value_converter(f) for f in schema]
        self._records: list[dict[str, Any]] = []
        self.rows = 0

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: dict[str, Any]) -> pa.RecordBatch | None:
        """Add one record; returns a full batch when ``batch_size`` is reached."""
        self._records.append(record)
        self.rows += 1
        if len(self._records) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> pa.RecordBatch | None:
        """The buffered rows as a batch (``None`` when nothing is buffered)."""
        if not self._records:
            return None
        records, self._records = self._records, []
        arrays = [self._column(i, f, [r.get(f.name) for r in records]) for i, f in enumerate(self.schema)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _column(self, index: int, field: pa.Field, values: list[Any]) -> pa.Array:
        t = field.type
        if not is_json_field(field):
            try:
                if pa.types.is_timestamp(t) or pa.types.is_date(t):
                    return pa.array(values, pa.string()).cast(t)
                if not pa.types.is_decimal(t):
                    return pa.array(values, t)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                pass
        convert = self._convert[index]
        out = []
        for value in values:
            if value is not None:
                try:
                    value = convert(value)
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise SchemaMismatch(
                        f"column {field.name!r} got value {str(value)[:80]!r}, which is not a valid {t} ({exc}).",
                        stream=self.stream,
                        fix="check the tap's SCHEMA for this column, or deselect the column.",
                    ) from None
            out.append(value)
        return pa.array(out, type=t)


# --------------------------------------------------------------------------- producing


def _json_default(value: Any) -> Any:
    """Nested values json cannot encode natively (inside lists/structs)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False)


def _float_fragment(value: float) -> str:
    return "null" if math.isnan(value) or math.isinf(value) else repr(float(value))


def _timestamp_fragment(value: dt.datetime) -> str:
    return f'"{value.isoformat()}"'


def _decimal_fragment(value: decimal.Decimal) -> str:
    return str(value) if value.is_finite() else "null"


def _json_text_fragment(value: str) -> str:
    # re-encode so pretty-printed JSON (with newlines) cannot break the line protocol
    return _dump(json.loads(value))


def _binary_fragment(value: bytes) -> str:
    return '"' + base64.b64encode(value).decode("ascii") + '"'


def _is_temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t))


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t))


FRAGMENT_ENCODERS: TypeRules[Callable[[Any], str]] = (
    (pa.types.is_floating, _float_fragment),
    (pa.types.is_decimal, _decimal_fragment),
    (_is_temporal, _timestamp_fragment),
    (_is_binary, _binary_fragment),
)
"""A Python value -> its JSON text fragment, by the column's Arrow type."""


def _fragment_encoder(field: pa.Field) -> Callable[[Any], str]:
    """A function turning one Python value of ``field`` into a JSON text fragment."""
    return by_arrow_type(field, FRAGMENT_ENCODERS, json_text=_json_text_fragment, default=_dump)


def _column_fragments(field: pa.Field, col: pa.Array) -> list[str]:
    """``"name":value`` JSON fragments for every row of one column.

    Timestamps are formatted by Arrow (vectorised; converting them to Python
    datetimes is the slowest part otherwise): tz-aware ones in UTC with ``Z``.
    """
    key = _dump(field.name) + ":"
    if pa.types.is_timestamp(field.type):
        if field.type.tz is not None:
            col = col.cast(pa.timestamp(field.type.unit, tz="UTC"))
        text = pc.replace_substring(col.cast(pa.string()), " ", "T", max_replacements=1)
        return [key + ("null" if v is None else f'"{v}"') for v in text.to_pylist()]
    enc = _fragment_encoder(field)
    return [key + ("null" if v is None else enc(v)) for v in col.to_pylist()]


def record_lines(stream: str, batch: pa.RecordBatch, version: int | None = None) -> Iterator[str]:
    """RECORD message lines (with trailing newline) for every row of ``batch``.

    Each record is assembled from per-column JSON fragments, so decimals keep
    their exact digits and JSON-marked strings are sent as parsed JSON.
    ``version`` tags records for ACTIVATE_VERSION (full-table replacement).
    """
    tag = "" if version is None else f',"version":{int(version)}'
    prefix = '{"type":"RECORD","stream":' + _dump(stream) + tag + ',"record":{'
    columns = [_column_fragments(field, col) for field, col in zip(batch.schema, batch.columns)]
    for parts in zip(*columns):
        yield prefix + ",".join(parts) + "}}\n"


def schema_line(stream: str, json_schema: dict[str, Any], key_properties: Iterable[str]) -> str:
    return _dump({"type": SCHEMA, "stream": stream, "schema": json_schema, "key_properties": list(key_properties)}) + "\n"


def activate_version_line(stream: str, version: int) -> str:
    return _dump({"type": ACTIVATE_VERSION, "stream": stream, "version": int(version)}) + "\n"


def state_line(value: Any) -> str:
    return _dump({"type": STATE, "value": value}) + "\n"
