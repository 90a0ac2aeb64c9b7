"""The SQL of an upsert on keys in DuckDB and SQLite: the ``ON CONFLICT`` clause, and one row per key
within a batch (a single set-based ``INSERT`` cannot upsert the same key twice).

Why apart from ``sql_file_destination.py`` (the write loop): the two engines' own ``write.py``
build their insert statements with these, and the loop itself never does.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_build import int64_array
from .sql_names import quote_ident


def conflict_clause(keys: list[str], columns: list[str], method: str, null_columns: Iterable[str] = ()) -> str:
    """`` ON CONFLICT (keys) DO UPDATE SET ...`` (new row wins) or ``DO NOTHING`` (existing kept).

    ``null_columns`` are table columns the stream no longer has (dropped at the
    source): an updated row gets NULL there, so it equals the source row.
    """
    if not keys:
        return ""
    lowered = {k.lower() for k in keys}
    updates = [c for c in columns if c.lower() not in lowered]
    target = ", ".join(quote_ident(k) for k in keys)
    if method == "IGNORE" or not updates:
        return f" ON CONFLICT ({target}) DO NOTHING"
    sets = [f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in updates]
    sets += [f"{quote_ident(c)} = NULL" for c in null_columns if c.lower() not in lowered]
    return f" ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}"


def dedupe_on_keys(batch: pa.RecordBatch, keys: list[str], keep_last: bool) -> pa.RecordBatch:
    """One row per key within a batch (the last for UPDATE, the first for IGNORE).

    Why: a single set-based INSERT cannot upsert the same key twice, while a
    stream may carry several versions of a row in one batch.
    """
    if batch.num_rows < 2:
        return batch
    if len(keys) == 1 and pc.count_distinct(batch.column(keys[0]), mode="all").as_py() == batch.num_rows:
        return batch  # the common case, a hash count instead of a group-by
    table = pa.Table.from_batches([batch]).select(keys)
    table = table.append_column("__jdi_row", int64_array(np.arange(batch.num_rows)))
    agg = "max" if keep_last else "min"
    grouped = table.group_by(keys, use_threads=False).aggregate([("__jdi_row", agg)])
    if grouped.num_rows == batch.num_rows:
        return batch
    rows = grouped.column(f"__jdi_row_{agg}").combine_chunks()
    return batch.take(pc.take(rows, pc.sort_indices(rows)))
