"""Small Arrow arrays built from Python values without pyarrow's pandas probe.

Why: pyarrow's first conversion of Python values (``pa.array``, ``pa.scalar``)
imports pandas, only to check whether the input is a pandas object.  That costs
about 40 MB of resident memory and 0.15 s in every process, which a sync (a
one-row batch of query parameters, row numbers for de-duplication) does not
need.  These helpers build those arrays from raw buffers instead; anything
else falls back to ``pa.array``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def int64_array(values: np.ndarray | Sequence[int]) -> pa.Array:
    """An int64 array sharing (or copying into) one numpy buffer."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def text_array(values: Sequence[str | None]) -> pa.Array:
    """A string array; None becomes a null."""
    return utf8_array([None if v is None else v.encode("utf-8") for v in values])


def utf8_array(values: Sequence[bytes | None]) -> pa.Array:
    """A string array from UTF-8 bytes (not validated); None becomes a null.  Large (64-bit offsets)
    only when the text passes 2 GB."""
    lengths = np.fromiter((0 if b is None else len(b) for b in values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    nulls = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    null_count = int(nulls.sum())
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None
    data = b"".join(b"" if v is None else v for v in values)
    large = offsets[-1] >= 2**31
    kind, sized = (pa.large_string(), offsets) if large else (pa.string(), offsets.astype(np.int32))
    return pa.Array.from_buffers(kind, len(values), [validity, pa.py_buffer(sized), pa.py_buffer(data)], null_count=null_count)


def numpy_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer, float or bool column without nulls as a numpy array, read from its buffers
    (``to_numpy`` and ``np.asarray`` on Arrow arrays import pandas)."""
    if isinstance(column, pa.ChunkedArray):
        parts = [numpy_values(chunk) for chunk in column.chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=_numpy_type(column.type))
    if column.null_count:
        raise ValueError("numpy_values needs a column without nulls")
    start, n = column.offset, len(column)
    if pa.types.is_boolean(column.type):
        if not n:
            return np.empty(0, dtype=bool)
        bits = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, count=start + n, bitorder="little")[start:].astype(bool)
    dtype = _numpy_type(column.type)
    if not n:
        return np.empty(0, dtype=dtype)
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=n, offset=start * dtype.itemsize)


def _numpy_type(kind: pa.DataType) -> np.dtype:
    if pa.types.is_boolean(kind):
        return np.dtype(bool)
    if pa.types.is_integer(kind):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(kind) else 'u'}{kind.bit_width // 8}")
    if pa.types.is_floating(kind) and kind.bit_width in (32, 64):
        return np.dtype(f"f{kind.bit_width // 8}")
    raise TypeError(f"numpy_values does not read {kind}")


def value_array(value: Any) -> pa.Array:
    """A one-element array holding ``value`` (a query parameter)."""
    if value is None:
        return pa.nulls(1)
    if isinstance(value, str):
        return text_array([value])
    if isinstance(value, int) and not isinstance(value, bool):
        return int64_array([value])
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        offsets = pa.py_buffer(np.array([0, len(value)], dtype=np.int32))
        return pa.Array.from_buffers(pa.list_(pa.int64()), 1, [None, offsets], children=[int64_array(list(value))])
    return pa.array([value])
