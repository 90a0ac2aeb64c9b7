"""What a template's ``block_output(block, *path)`` hands back: an index into upstream data, as a plain copy.

It only indexes into data (dict keys, list and tuple indexes, named-tuple and dataclass fields,
DataFrame and Arrow table columns and rows, a stream's ``stream``/``columns``/``rows``: one row is
read from the spill file, not all of them), never calls anything and never follows an attribute;
what it returns is made of str, int, float, bool, None, Decimal, dates and times, lists and dicts,
or it is refused naming the block and the path (``NotPlain``).  Why apart from
``interpolation.py`` (rendering the templates): this is the one door from a template to a
Python object, and it is kept small enough to read whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError

if TYPE_CHECKING:  # imported lazily at run time: see _stream_types
    from .outputs import SourceOutput, StreamOutput

MAX_PLAIN_SIZE = 1_000_000
"""Characters (and items: one each) of what ``block_output`` hands a template (same as the sandbox's values)."""
MAX_PLAIN_DEPTH = 100
MAX_DECIMAL_EXPONENT = 1_000
PLAIN_TYPES = "text, a number, true/false, null, a date or time, or a list or mapping of them"


class NotPlain(ConfigError):
    """``block_output`` reached something that is not plain data."""


def describe_path(name: str, path: tuple[Any, ...]) -> str:
    """How messages name a path: ``block_output('creds', 'host')``."""
    return "block_output(" + ", ".join(repr(x) for x in (name, *path)) + ")"


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def sentence(text: str) -> str:
    """``text`` ending with a full stop (messages from Python end without one)."""
    return text if text.endswith((".", "!", "?")) else text + "."


# -- block_output: index into data, never call -----------------------------------------------
class _Rows:
    """A stream's ``rows``, read one row at a time from its spill file (the full list only on request)."""

    def __init__(self, output: Any) -> None:
        self.output = output

    def __len__(self) -> int:
        return self.output.num_rows

    def row(self, index: int) -> list[Any]:
        loaded = dict.get(self.output, "rows")
        if isinstance(loaded, list):
            return loaded[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        record = self.output.to_arrow().slice(index, 1).to_pylist()[0]
        return list(record.values())

    def all(self) -> list[list[Any]]:
        return self.output["rows"]


def _module(name: str) -> Any:
    """A library the value's type comes from, if it is loaded (never imported here)."""
    return sys.modules.get(name)


class _NoType:
    """Stands for a type whose module is not loaded: nothing is an instance of it."""


def _stream_types() -> tuple[type[StreamOutput], type[SourceOutput]]:
    """``(StreamOutput, SourceOutput)`` if ``outputs`` is loaded (else no value can be one): importing it
    here would load pyarrow into a run that has no source block (~0.1 s)."""
    outputs = sys.modules.get(__package__ + ".outputs")
    if outputs is None:  # _NoType stands in for both: isinstance() against it is always False
        return cast("tuple[type[StreamOutput], type[SourceOutput]]", (_NoType, _NoType))
    return outputs.StreamOutput, outputs.SourceOutput


def _is_index(step: Any) -> bool:
    return isinstance(step, int) or (isinstance(step, str) and step.lstrip("-").isdigit())


def _fields_of(value: Any) -> list[str] | None:
    """What a failed step could have named, for the error message."""
    StreamOutput = _stream_types()[0]

    if isinstance(value, (StreamOutput, _Rows)):
        return ["stream", "columns", "rows"] if isinstance(value, StreamOutput) else None
    if isinstance(value, Mapping):
        return [str(k) for k in list(value.keys())[:20]]
    named = getattr(type(value), "_fields", None) if isinstance(value, tuple) else None  # a namedtuple
    if named is not None:
        return list(named)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value)]
    pd, pa = _module("pandas"), _module("pyarrow")
    if pd is not None and isinstance(value, pd.DataFrame):
        return [str(c) for c in list(value.columns)[:20]]
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        return list(value.column_names)[:20]
    return None


def _step(value: Any, step: Any) -> Any:
    """One step of a ``block_output`` path; ``LookupError`` when ``value`` has no such field or item."""
    StreamOutput, SourceOutput = _stream_types()

    if isinstance(value, StreamOutput):  # the spec's dict: its three keys, rows read lazily
        if step == "rows":
            return _Rows(value)
        if step in ("stream", "columns"):
            return dict.__getitem__(value, step)
        raise KeyError(step)
    if isinstance(value, _Rows):
        if _is_index(step):
            return value.row(int(step))
        raise KeyError(step)
    if isinstance(value, Mapping):
        if step in value:
            return value[step]
        if _is_index(step) and int(step) in value:
            return value[int(step)]
        raise KeyError(step)
    if isinstance(value, SourceOutput) and isinstance(step, str) and not _is_index(step):
        return value.stream(step)  # KeyError when there is no such stream
    if isinstance(value, tuple) and isinstance(step, str) and step in getattr(type(value), "_fields", ()):
        return getattr(value, step)
    if isinstance(value, (list, tuple)):
        if _is_index(step):
            return value[int(step)]
        raise KeyError(step)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(step, str) and step in {f.name for f in dataclasses.fields(value)}:
            return getattr(value, step)
        raise KeyError(step)
    pd, pa, np = _module("pandas"), _module("pyarrow"), _module("numpy")
    if pd is not None and isinstance(value, pd.DataFrame):
        if step in value.columns:
            return value[step]
        if _is_index(step):
            row = value.iloc[int(step)]
            return dict(zip(value.columns, row.tolist()))
        raise KeyError(step)
    if pd is not None and isinstance(value, pd.Series):
        if not _is_index(step) and step in value.index:
            return value[step]
        if _is_index(step):
            return value.iloc[int(step)]
        raise KeyError(step)
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        if isinstance(step, str) and step in value.column_names:
            return value.column(step)
        if _is_index(step):
            index = int(step) + (value.num_rows if int(step) < 0 else 0)
            if not 0 <= index < value.num_rows:
                raise IndexError(step)
            return value.slice(index, 1).to_pylist()[0]  # the row as {column: value}
        raise KeyError(step)
    if pa is not None and isinstance(value, (pa.Array, pa.ChunkedArray)):
        if _is_index(step):
            index = int(step) + (len(value) if int(step) < 0 else 0)
            if not 0 <= index < len(value):
                raise IndexError(step)
            return value[index]
        raise KeyError(step)
    if np is not None and isinstance(value, np.ndarray):
        if _is_index(step):
            return value[int(step)]
        raise KeyError(step)
    raise KeyError(step)


def pick(value: Any, path: tuple[Any, ...], *, label: str, where: str | None = None) -> Any:
    """Follow a ``block_output`` path into ``value`` (data only) and return it as plain data."""
    where = where or "block_output(...)"
    for step in path:
        if isinstance(step, bool) or not isinstance(step, (str, int)):
            raise ConfigError(
                f"{where}: a path step must be a field name or an index, not {step!r}.",
                fix="e.g. block_output('creds', 'host') or block_output('b', 'column', 0).",
            )
        try:
            value = _step(value, step)
        except (LookupError, TypeError, ValueError):
            available = _fields_of(value)
            hint = f" It has: {', '.join(available)}." if available else ""
            if _is_index(step) and not isinstance(value, Mapping) and hasattr(value, "__len__"):
                count = len(value)
                hint = f" It has {count} item{'' if count == 1 else 's'}."
            raise ConfigError(f"{label} has no field {step!r}.{hint}", fix="pick a field that the upstream block returns.") from None
    return plain(value, where=where)


def plain(value: Any, *, where: str, limit: int = MAX_PLAIN_SIZE) -> Any:
    """A copy of ``value`` made of plain data only, or a ``NotPlain`` naming ``where``.

    Plain: str, int, float, bool, None, Decimal, date, datetime, time, timedelta,
    and lists and dicts of them (tuples become lists).  NumPy, pandas and Arrow
    scalars become their Python values, a pandas Series or an Arrow array a list,
    a stream output the spec's dict, a dataclass a dict; anything else is refused.
    """
    StreamOutput = _stream_types()[0]
    size = 0

    def grow(amount: int) -> None:
        nonlocal size
        size += amount
        if size > limit:
            raise NotPlain(
                f"{where} is too large for a template (more than {limit:,} characters and items).",
                fix="pick a smaller part with more path steps, e.g. block_output('b', 'column', 0).",
            )

    def refuse(item: Any, hint: str = "") -> NotPlain:
        return NotPlain(
            f"{where} is a {_type_name(item)}, which a template cannot use: a config value is {PLAIN_TYPES}.{hint}",
            fix="pick a field with more path steps (e.g. block_output('b', 'column', 0)), or return plain data from the upstream block.",
        )

    def convert(item: Any, depth: int) -> Any:
        if depth > MAX_PLAIN_DEPTH:
            raise NotPlain(f"{where} is nested more than {MAX_PLAIN_DEPTH} levels deep.", fix="pick a part of it.")
        kind = type(item)
        if item is None or kind is bool or kind is float:
            grow(1)
            return item
        if kind is str:
            grow(len(item) + 1)
            return item
        if kind is int:
            if item.bit_length() > 3322:
                raise NotPlain(f"{where} is a number of more than 1,000 digits.", fix="pick a smaller number.")
            grow(1)
            return item
        np, pd, pa = _module("numpy"), _module("pandas"), _module("pyarrow")
        # missing values of pandas (NaT is a datetime, NA is not a bool)
        if pd is not None and (item is pd.NaT or item is pd.NA):
            grow(1)
            return None
        if isinstance(item, bool):
            return convert(bool(item), depth)
        if isinstance(item, str):
            return convert(str(item), depth)
        if isinstance(item, int):
            return convert(int(item), depth)
        if isinstance(item, float):
            return convert(float(item), depth)
        if isinstance(item, decimal.Decimal):
            if item.is_finite() and abs(item.adjusted()) > MAX_DECIMAL_EXPONENT:
                raise NotPlain(f"{where} is a decimal with an exponent beyond ±{MAX_DECIMAL_EXPONENT:,}.", fix="pick a smaller number.")
            grow(len(item.as_tuple().digits) + 1)
            return decimal.Decimal(item) if kind is not decimal.Decimal else item
        if isinstance(item, dt.datetime):
            grow(1)
            offset = item.utcoffset()
            tz = None if offset is None else (item.tzinfo if type(item.tzinfo) is dt.timezone else dt.timezone(offset))
            return dt.datetime(item.year, item.month, item.day, item.hour, item.minute, item.second, item.microsecond, tz, fold=item.fold)
        if isinstance(item, dt.date):
            grow(1)
            return dt.date(item.year, item.month, item.day)
        if isinstance(item, dt.time):
            grow(1)
            offset = item.utcoffset()
            tz = None if offset is None else dt.timezone(offset)
            return dt.time(item.hour, item.minute, item.second, item.microsecond, tz, fold=item.fold)
        if isinstance(item, dt.timedelta):
            grow(1)
            return dt.timedelta(days=item.days, seconds=item.seconds, microseconds=item.microseconds)
        uuid = _module("uuid")
        if uuid is not None and isinstance(item, uuid.UUID):
            return convert(str(item), depth)
        if isinstance(item, StreamOutput):
            grow(item.num_rows * max(len(item.schema), 1))
            return {
                "stream": convert(dict.__getitem__(item, "stream"), depth + 1),
                "columns": convert(dict.__getitem__(item, "columns"), depth + 1),
                "rows": convert(item["rows"], depth + 1),
            }
        if isinstance(item, _Rows):
            grow(len(item) * max(len(item.output.schema), 1))
            return convert(item.all(), depth)
        if isinstance(item, Mapping):
            grow(1)
            out = {}
            for key, val in item.items():
                key = convert(key, depth + 1)
                if isinstance(key, (list, dict)):
                    raise refuse(key, " (a mapping key must be text or a number)")
                out[key] = convert(val, depth + 1)
            return out
        if isinstance(item, (list, tuple)):
            grow(1 + len(item))
            return [convert(x, depth + 1) for x in item]
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            grow(1)
            return {f.name: convert(getattr(item, f.name), depth + 1) for f in dataclasses.fields(item)}
        if np is not None and isinstance(item, np.generic):
            return convert(item.item(), depth)
        if pd is not None and isinstance(item, pd.Series):
            grow(len(item))
            return [convert(x, depth + 1) for x in item.tolist()]
        if pd is not None and isinstance(item, pd.DataFrame):
            raise refuse(item, " Pick a column and a row: block_output('b', 'column', 0).")
        if pa is not None and isinstance(item, pa.Scalar):
            return convert(item.as_py(), depth)
        if pa is not None and isinstance(item, (pa.Array, pa.ChunkedArray)):
            grow(len(item))
            return [convert(x, depth + 1) for x in item.to_pylist()]
        if pa is not None and isinstance(item, (pa.Table, pa.RecordBatch)):
            raise refuse(item, " Pick a column and a row: block_output('b', 'column', 0).")
        if np is not None and isinstance(item, np.ndarray):
            grow(item.size)
            return convert(item.tolist(), depth)
        runtime = _module("jinja2.runtime")
        if runtime is not None and isinstance(item, runtime.Undefined):
            item._fail_with_undefined_error()  # the template's own error: undefined name, unsafe attribute
        raise refuse(item)

    return convert(value, 0)
