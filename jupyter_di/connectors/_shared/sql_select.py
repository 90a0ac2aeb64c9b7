"""The read plan of the embedded SQL databases (DuckDB, SQLite): columns, order and bookmark bound.

Why shared: both engines speak the same SQL for a read (double-quoted identifiers, ``?``
parameters, ``NULLS LAST``), so the columns a read selects (bookmark and key columns always, as
Singer's automatic inclusion), its order and its inclusive bookmark bound are planned and
rendered once; each connector supplies how a column compares and how a bookmark value binds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from ..base import INCREMENTAL, ReadRequest, is_json_field
from .sql_names import quote_ident
from .stream_checks import require_bookmark_properties


def is_orderable(field: pa.Field) -> bool:
    """Whether a column can be a replication key (a total order that SQL compares)."""
    t = field.type
    if is_json_field(field):
        return False
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_temporal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    )


@dataclass
class SelectPlan:
    """What one read selects: output columns, sort order and the inclusive lower bound."""

    columns: list[str]
    order_by: list[str]
    bookmark: list[tuple[str, Any]]
    limit: int | None
    null_columns: list[str] = field(default_factory=list)
    """The bookmark columns (rows with a NULL in one cannot be tracked by a bookmark)."""
    resync_nulls: bool = False
    """``null_cursor: resync``: rows with a NULL bookmark column pass the bound too."""

    def count_null_cursors(self, con: Any, table_sql: str) -> int | None:
        """Rows a bookmark bound leaves out because a bookmark column is NULL (for the run's report)."""
        if not self.bookmark or self.resync_nulls or not self.null_columns:
            return None
        where = " OR ".join(f"{quote_ident(c)} IS NULL" for c in self.null_columns)
        return int(con.execute(f"SELECT count(*) FROM {table_sql} WHERE {where}").fetchall()[0][0])


def plan_select(request: ReadRequest, table_columns: list[str]) -> SelectPlan:
    """Check the requested columns against the table and plan the read.

    Selected columns come out in the table's order.  For INCREMENTAL reads the
    bookmark and key columns are always included (Singer's ``automatic``
    inclusion): the sync engine needs them to compute the next bookmark.
    """
    s = request.settings
    by_name = set(table_columns)

    def require(names: list[str], what: str, fix: str) -> None:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(
                f"{what} {', '.join(repr(m) for m in missing)} not in the table (it has {', '.join(repr(c) for c in table_columns)}).",
                stream=s.stream,
                fix=fix,
            )

    wanted = list(table_columns) if s.columns is None else list(s.columns)
    require(wanted, "selected column(s)", "select existing columns (run discover again if the table changed).")
    order_by: list[str] = []
    bookmark: list[tuple[str, Any]] = []
    require_bookmark_properties(
        s, what="bookmark_properties", fix="set bookmark_properties to an ever-increasing column such as updated_at, or use FULL_TABLE."
    )
    if s.replication_method == INCREMENTAL:
        require(s.bookmark_properties, "bookmark column(s)", "set bookmark_properties to existing columns.")
        require(s.key_properties, "key column(s)", "set key_properties to existing columns.")
        order_by = list(dict.fromkeys([*s.bookmark_properties, *s.key_properties]))
        wanted = [*wanted, *order_by]
        for name in s.bookmark_properties:
            if not request.bookmark or name not in request.bookmark or request.bookmark[name] is None:
                break
            bookmark.append((name, request.bookmark[name]))
    chosen = set(wanted)
    return SelectPlan(
        [c for c in table_columns if c in chosen],
        order_by,
        bookmark,
        request.limit,
        null_columns=list(s.bookmark_properties) if s.replication_method == INCREMENTAL else [],
        resync_nulls=s.null_cursor == "resync",
    )


def render_select(
    table_sql: str,
    plan: SelectPlan,
    column_expr: Callable[[str], str],
    bind: Callable[[str, Any], tuple[str, Any]],
) -> tuple[str, list[Any]]:
    """SELECT text and parameters for a plan.

    ``column_expr(col)`` is the SQL a column compares and sorts by (usually the
    quoted name); ``bind(col, json_value)`` gives the placeholder SQL (e.g.
    ``CAST(? AS TIMESTAMPTZ)``) and the parameter value.  The bound is the
    inclusive row comparison ``(b1, b2) >= (v1, v2)`` written out
    lexicographically, which both engines can use with an index.
    """
    params: list[Any] = []
    sql = f"SELECT {', '.join(quote_ident(c) for c in plan.columns)} FROM {table_sql}"
    if plan.bookmark:
        parts = [(column_expr(c), *bind(c, v)) for c, v in plan.bookmark]

        def ge(i: int) -> str:
            expr, placeholder, value = parts[i]
            if i == len(parts) - 1:
                params.append(value)
                return f"{expr} >= {placeholder}"
            params.extend([value, value])
            return f"({expr} > {placeholder} OR ({expr} = {placeholder} AND {ge(i + 1)}))"

        bound = ge(0)
        if plan.resync_nulls and plan.null_columns:
            bound = f"({bound} OR " + " OR ".join(f"{quote_ident(c)} IS NULL" for c in plan.null_columns) + ")"
        sql += f" WHERE {bound}"
    if plan.order_by:
        sql += " ORDER BY " + ", ".join(f"{column_expr(c)} ASC NULLS LAST" for c in plan.order_by)
    if plan.limit is not None:
        sql += " LIMIT ?"
        params.append(int(plan.limit))
    return sql, params
