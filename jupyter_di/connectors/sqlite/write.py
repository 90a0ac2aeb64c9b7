"""The SQLite destination: Arrow batches in with executemany, rows and state in one transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

import pyarrow as pa

from ...errors import DIError
from .._shared.db_file import resolve_path
from .._shared.sql_file_destination import SqlFileDestination
from .._shared.sql_names import quote_ident
from .._shared.sql_upsert import conflict_clause
from ..base import TableColumn
from .connection import CONFIG, SQLiteConnector, open_sqlite, translate_error
from .types import sqlite_type, sqlite_values


class SQLiteDestination(SQLiteConnector, SqlFileDestination):
    """Writes Arrow batches into SQLite tables with executemany, rows and state in one transaction."""

    name = "sqlite"
    config_schema = CONFIG
    state_json_type = "TEXT"
    begin_sql = "BEGIN IMMEDIATE"

    def _path(self) -> str:
        return resolve_path(self.config, must_exist=False, system="SQLite")

    def _connect(self) -> sqlite3.Connection:
        return open_sqlite(self._path(), self.timeout, read_only=False)

    def check(self) -> None:
        self._connect().close()

    def _setup(self, con: sqlite3.Connection, schema: pa.Schema) -> None:
        con.execute("PRAGMA journal_mode=WAL").fetchall()
        con.execute("PRAGMA synchronous=NORMAL")

    def _table_sql(self, table: str) -> str:
        return quote_ident(table)

    def _table_columns(self, con: sqlite3.Connection, table: str) -> list[str] | None:
        rows = con.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", [table]).fetchall()
        return [r[0] for r in rows] or None

    def _described(self, con: sqlite3.Connection, table: str) -> list[TableColumn]:
        rows = con.execute("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", [table]).fetchall()
        return [TableColumn(name, type_name) for name, type_name in rows]

    def _type_probe(self) -> sqlite3.Connection:
        return sqlite3.connect(":memory:")

    def _has_unique(self, con: sqlite3.Connection, table: str, keys: list[str]) -> bool:
        want = {k.lower() for k in keys}
        pk = {r[0].lower() for r in con.execute("SELECT name FROM pragma_table_info(?) WHERE pk > 0", [table])}
        if pk == want:
            return True
        for index, unique in con.execute('SELECT name, "unique" FROM pragma_index_list(?)', [table]).fetchall():
            cols = {r[0].lower() for r in con.execute("SELECT name FROM pragma_index_info(?)", [index]) if r[0]}
            if unique and cols == want:
                return True
        return False

    def _column_type(self, field: pa.Field) -> str:
        return sqlite_type(field.type, field)

    def _insert(self, con: sqlite3.Connection, table: str, batch: pa.RecordBatch, keys: list[str], method: str) -> None:
        names = batch.schema.names
        columns = [sqlite_values(batch.column(i), batch.schema.field(i)) for i in range(batch.num_columns)]
        con.executemany(
            f"INSERT INTO {quote_ident(table)} ({', '.join(quote_ident(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})" + conflict_clause(keys, names, method, self._null_on_update),
            zip(*columns),
        )

    # -- change streams (LOG_BASED)

    def _update_keys(self, con: sqlite3.Connection, table: str, rows: pa.Table, keys: list[str]) -> int:
        names = [c for c in rows.column_names if c not in keys]
        values = [sqlite_values(rows.column(n).combine_chunks(), rows.schema.field(n)) for n in names + keys]
        sets = ", ".join(f"{quote_ident(c)} = ?" for c in names)
        where = " AND ".join(f"{quote_ident(k)} = ?" for k in keys)
        before = con.total_changes
        con.executemany(f"UPDATE {quote_ident(table)} SET {sets} WHERE {where}", zip(*values))
        return con.total_changes - before

    def _delete_keys(self, con: sqlite3.Connection, table: str, rows: pa.Table, keys: list[str]) -> None:
        values = [sqlite_values(rows.column(k).combine_chunks(), rows.schema.field(k)) for k in keys]
        where = " AND ".join(f"{quote_ident(k)} = ?" for k in keys)
        con.executemany(f"DELETE FROM {quote_ident(table)} WHERE {where}", zip(*values))

    def _param(self, value: Any) -> Any:
        return sqlite_values(value, pa.field("v", value.type))[0]

    def _translate(self, exc: Exception, stream: str) -> DIError | None:
        if isinstance(exc, (sqlite3.Error, OverflowError)):
            return translate_error(self._path(), exc)
        return None
