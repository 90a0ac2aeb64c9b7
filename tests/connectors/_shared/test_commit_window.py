"""Commit windows (rows between two commits) and the pandas-free Arrow builders."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from jupyter_di.connectors._shared.arrow_build import int64_array, numpy_values, text_array, value_array
from jupyter_di.connectors._shared.commit_window import ChunkSource, CommitWindow
from jupyter_di.connectors.base import Chunk


def batch(ids: list[int], name: str = "id") -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64())], names=[name])


def windows(chunks: list[Chunk], max_rows: float, max_bytes: float = float("inf")) -> list[tuple[list[int], object, bool]]:
    """(ids, state, last) of every window, consumed the way the write loop does."""
    source, out = ChunkSource(iter(chunks)), []
    while not source.exhausted:
        window = CommitWindow(source, max_rows, max_bytes=max_bytes)
        ids = [] if window.empty else [i for b in window.reader() for i in b.column(0).to_pylist()]
        out.append((ids, window.state, window.last))
        if window.empty or window.last:
            break
    return out


def test_windows_cut_at_the_row_limit_and_carry_the_last_state():
    chunks = [Chunk(batch([1, 2]), {"b": 2}), Chunk(batch([3]), {"b": 3}), Chunk(batch([4, 5]), {"b": 5})]
    assert windows(chunks, max_rows=3) == [([1, 2, 3], {"b": 3}, False), ([4, 5], {"b": 5}, True)]


def test_windows_also_cut_at_the_byte_limit_for_wide_rows():
    chunks = [Chunk(batch([i, i + 1]), {"b": i + 1}) for i in range(0, 10, 2)]  # 16 bytes each
    assert windows(chunks, max_rows=1_000, max_bytes=32) == [
        ([0, 1, 2, 3], {"b": 3}, False),
        ([4, 5, 6, 7], {"b": 7}, False),
        ([8, 9], {"b": 9}, True),
    ]


def test_empty_batches_only_move_the_state():
    chunks = [Chunk(batch([1]), {"b": 1}), Chunk(batch([]), {"b": 9})]
    assert windows(chunks, max_rows=10) == [([1], {"b": 9}, True)]
    assert windows([Chunk(batch([]), {"b": 7})], max_rows=10) == [([], {"b": 7}, True)]


def test_a_new_schema_starts_a_new_window():
    chunks = [Chunk(batch([1])), Chunk(batch([2], name="other")), Chunk(batch([3], name="other"))]
    assert [w[0] for w in windows(chunks, max_rows=100)] == [[1], [2, 3]]


def test_a_source_error_inside_a_window_is_kept_for_the_writer():
    def failing():
        yield Chunk(batch([1]))
        raise RuntimeError("source broke")

    window = CommitWindow(ChunkSource(failing()))
    try:
        window.reader().read_all()
    except Exception:
        pass
    assert isinstance(window.error, RuntimeError) and str(window.error) == "source broke"


def test_arrays_built_from_buffers_equal_pyarrows_own():
    assert text_array(["a", None, "héllo ✓", ""]).equals(pa.array(["a", None, "héllo ✓", ""]))
    assert int64_array([3, -1]).equals(pa.array([3, -1], pa.int64()))
    assert value_array("x").equals(pa.array(["x"]))
    assert value_array(7).equals(pa.array([7], pa.int64()))
    assert value_array([1, 2]).equals(pa.array([[1, 2]], pa.list_(pa.int64())))
    assert value_array(None).null_count == 1


def test_numpy_values_reads_buffers_at_their_offset():
    assert numpy_values(pa.array([1, 2, 3, 4], pa.int32()).slice(1, 2)).tolist() == [2, 3]
    assert numpy_values(pa.array([255, 1], pa.uint8())).tolist() == [255, 1]
    assert numpy_values(pa.array([0.5, 1.5]).slice(1)).dtype == np.float64
    bools = pa.chunked_array([pa.array([True, False, True, True, False, False, False, False, True]).slice(1), pa.array([], pa.bool_())])
    assert numpy_values(bools).tolist() == [False, True, True, False, False, False, False, True]
    assert numpy_values(pa.chunked_array([pa.array([5], pa.int64()), pa.array([6], pa.int64())])).tolist() == [5, 6]
    assert numpy_values(pa.chunked_array([], pa.int16())).dtype == np.int16
    with pytest.raises(ValueError, match="without nulls"):
        numpy_values(pa.array([1, None]))
    with pytest.raises(TypeError):
        numpy_values(pa.array(["a"]))


def test_building_them_does_not_import_pandas():
    code = (
        "import sys\nfrom jupyter_di.connectors._shared.arrow_build import numpy_values, text_array, value_array\n"
        "from jupyter_di.connectors._shared.row_values import last_row_values\nimport pyarrow as pa, numpy as np\n"
        "text_array(['a', None]); value_array([1]); value_array(5); numpy_values(value_array(5))\n"
        "ts = pa.Array.from_buffers(pa.timestamp('us', tz='UTC'), 1, [None, pa.py_buffer(np.array([0]))])\n"
        "print(last_row_values(pa.RecordBatch.from_arrays([ts], names=['t']), ['t']))\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "{'t': '1970-01-01T00:00:00+00:00'}"
    assert out[1] == "False"
