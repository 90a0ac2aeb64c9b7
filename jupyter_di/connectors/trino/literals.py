"""The one literal encoder of the Trino destination: Arrow values as SQL literal text, per column.

Why an encoder of our own instead of the client's parameter binding: the ``trino`` client binds
parameters by formatting each Python value into the text of an ``EXECUTE IMMEDIATE ... USING``
statement itself (Trino's protocol has no binary parameters), one Python call per value.  This
module does the same job column-wise in Arrow compute (no Python per value for numbers, text,
dates and timestamps), which ``benchmarks/trino.py`` measures as the faster of the two.

The rule is small on purpose, so it can be tested whole (tests/connectors/trino/test_literals.py):

* every value becomes a varchar literal ``'text'`` whose single quotes are doubled, the only
  character a Trino string literal escapes (NUL, newlines and any Unicode travel as they are);
  the statement casts the literals to the column's type (``CAST(ARRAY[...] AS ARRAY(bigint))``),
  so Trino's own parser reads each value;
* binary values become hex literals ``X'00ff'`` (hex digits only);
* nulls become ``NULL``.

The text of a value is what Trino's casts from varchar read back exactly: integers and decimals in
plain digits, doubles in the shortest form that round-trips (``Infinity``, ``-Infinity``, ``NaN``),
booleans ``true``/``false``, dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS.ffffff`` (with
`` UTC`` when zoned; other zones are converted to UTC first), times ``HH:MM:SS.ffffff``, durations
as whole microseconds, nested values (lists, structs, maps) and JSON-marked text as JSON text.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

NULL = "NULL"


def value_text(array: pa.Array) -> pa.Array:
    """The text of each value (before quoting) as Trino's casts from varchar read it; nulls stay null."""
    t = array.type
    if pa.types.is_timestamp(t):
        if t.unit != "us":
            array = array.cast(pa.timestamp("us", tz=t.tz), safe=False)
        if t.tz:
            text = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.string())
            return pc.replace_substring_regex(text, "Z$", " UTC")
        return array.cast(pa.string())
    if pa.types.is_floating(t):
        text = array.cast(pa.string())
        for arrow_form, trino_form in (("inf", "Infinity"), ("-inf", "-Infinity"), ("nan", "NaN")):
            text = pc.replace_substring_regex(text, f"^{arrow_form}$", trino_form)
        return text
    if pa.types.is_time(t):
        return array.cast(pa.time64("us"), safe=False).cast(pa.string())
    if pa.types.is_duration(t):
        return array.cast(pa.duration("us"), safe=False).cast(pa.int64()).cast(pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string())
    if is_nested(t):
        texts = [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in array.to_pylist()]
        return pa.array(texts, pa.string())
    if pa.types.is_string(t):
        return array
    return array.cast(pa.string())


def is_nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t)


def is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t)


def plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array of a plain type: chunks combined, dictionaries decoded, extension types
    (``arrow.json``) as their storage, string views and large strings as strings."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    return array


def literals(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as the text of a SQL literal: ``'text'`` (quotes doubled), ``X'hex'`` or ``NULL``."""
    array = plain(array)
    if is_binary(array.type):
        values = array.cast(pa.binary()).to_pylist()
        hexed = pa.array([NULL if v is None else "X'" + v.hex() + "'" for v in values], pa.string())
        return hexed
    text = value_text(array)
    quoted = pc.binary_join_element_wise("'", pc.replace_substring(text, "'", "''"), "'", "")
    return pc.fill_null(quoted, NULL)
