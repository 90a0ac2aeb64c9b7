"""The one literal encoder of the Trino destination: a column of Arrow values as one SQL literal.

Why an encoder of our own instead of the client's parameter binding: the ``trino`` client binds
parameters by formatting each Python value into the text of an ``EXECUTE IMMEDIATE ... USING``
statement itself (Trino's protocol has no binary parameters), one Python call and one SQL literal
per value.  This module turns a run of a column into ONE literal instead, which
``benchmarks/trino.py`` measures as the faster of the two.

Why one literal per column: Trino parses, analyses and constant-folds every literal of a statement
as an expression node, so 10,000 rows x 4 columns as ``ARRAY['1', '2', ...]`` literals loaded at
about 11,000 rows/s on the test server, while the same rows as one JSON array text per column
(``CAST(json_parse('["1","2",...]') AS ARRAY(varchar))``) loaded at about 25,000 rows/s.

The rule is small on purpose, so it can be tested whole (tests/connectors/trino/test_literals.py):

* each value becomes its text (``value_text``), in the form Trino's casts from varchar read back
  exactly: integers and decimals in plain digits, doubles in the shortest form that round-trips
  (``Infinity``, ``-Infinity``, ``NaN``), booleans ``true``/``false``, dates ``YYYY-MM-DD``,
  timestamps ``YYYY-MM-DD HH:MM:SS.ffffff`` (with `` UTC`` when zoned; other zones are converted to
  UTC first), times ``HH:MM:SS.ffffff``, durations as whole microseconds, binary values as hex
  digits (``from_hex`` in the statement), nested values (lists, structs, maps) and JSON-marked text
  as their JSON text;
* a run of values becomes a JSON array of those texts and nulls (Python's C JSON encoder escapes
  quotes, backslashes and control characters), and that JSON text becomes a SQL string literal
  whose single quotes are doubled, the only character a Trino string literal escapes.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc


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


def texts(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The text of each value of a column (binary as hex digits); nulls stay null."""
    array = plain(array)
    if is_binary(array.type):
        return pa.array([None if v is None else v.hex() for v in array.cast(pa.binary()).to_pylist()], pa.string())
    return value_text(array)


def sql_string(text: str) -> str:
    """A Trino string literal: the text in single quotes, its single quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def column_literal(values: pa.Array) -> str:
    """A run of a column's texts (from ``texts``) as one SQL literal holding a JSON array."""
    return sql_string(_dumps(values.to_pylist()))


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
