"""The bulk load path: rows staged as Parquet files that Trino reads through an external table.

Why: every SQL statement costs the coordinator parsing, planning and a commit, and its text is
capped by the server's ``query.max-length`` (1 MB by default), so rows sent as statement text load
at a fraction of the speed of Trino's own ``INSERT ... SELECT`` (``load.py``; benchmarks/trino.py).
When the block's config names a ``staging_location`` that the server can read too (a local folder
of a co-located server, or an object store URL such as ``s3://bucket/prefix`` that pyarrow writes
with the credentials of this process's environment), the rows are written there as Parquet files
by pyarrow, a Hive catalog of the same server (``staging_catalog``) gets an external table over
the folder, and one statement copies them into the destination at Trino's own speed (``CREATE OR
REPLACE TABLE ... AS SELECT``, ``MERGE ... USING (SELECT ...)``, ``INSERT ... SELECT``).

Why a Hive external table and not Iceberg's ``add_files``: ``add_files`` (and ``register_table``)
are off unless the server enables them (``iceberg.add-files-procedure.enabled``), and this path
must work with the server as it is; a Hive catalog over the lake's storage is usual beside Iceberg
or Delta Lake catalogs.

Column rule (``column_plan``): a value Parquet and Trino store alike is written as itself (integers,
floats, booleans, decimals, dates, text, binary); the rest (timestamps, times, durations, unsigned
64-bit, nested and JSON values) as the same text the literal path sends (``literals.texts``) and
cast by Trino, so both paths read every value the same way.  Files and tables are named after the
stream's staging prefix and the run, so the next run finds and removes what a killed run left.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ...errors import ConfigError
from .._shared.sql_names import quote_ident
from .connection import TrinoConfig, TrinoError, TrinoSession
from .literals import is_binary, plain, texts
from .types import zoned_into_plain

log = logging.getLogger(__name__)

NATIVE: list[tuple[Callable[[pa.DataType], bool], str, pa.DataType | None]] = [
    (pa.types.is_boolean, "boolean", None),
    (
        lambda t: pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t) or pa.types.is_uint8(t) or pa.types.is_uint16(t),
        "integer",
        pa.int32(),
    ),
    (lambda t: pa.types.is_int64(t) or pa.types.is_uint32(t), "bigint", pa.int64()),
    (lambda t: pa.types.is_float16(t) or pa.types.is_float32(t), "real", pa.float32()),
    (pa.types.is_float64, "double", None),
    (pa.types.is_date, "date", pa.date32()),
    (pa.types.is_string, "varchar", None),
]


class ColumnPlan:
    """How one column reaches its Parquet file and the destination column: the file's column name
    (``c<n>``: user names never reach the external table), its type there, and the select
    expression (``{}`` stands for the file's column)."""

    def __init__(self, alias: str, column_type: str, source: pa.DataType) -> None:
        self.alias = alias
        self.arrow: pa.DataType | None = None  # the Parquet column's Arrow type; None: the texts
        self.file_type = "varchar"
        for test, file_type, arrow in NATIVE:
            if test(source):
                self.file_type, self.arrow = file_type, arrow or source
                break
        else:
            if pa.types.is_decimal(source) and source.precision <= 38 and source.scale >= 0:
                self.file_type, self.arrow = f"decimal({source.precision},{source.scale})", pa.decimal128(source.precision, source.scale)
            elif is_binary(source):
                self.file_type, self.arrow = "varbinary", pa.binary()
        if column_type == "json":
            self.file_type, self.arrow, self.select = "varchar", None, "json_parse({})"
        elif column_type.lower().startswith(("array(", "map(", "row(")):
            self.file_type, self.arrow, self.select = "varchar", None, f"CAST(json_parse({{}}) AS {column_type})"
        elif column_type.startswith(("varchar", "char")) and self.file_type != "varbinary":
            if self.file_type != "varchar":  # text of any value, as the literal path sends it
                self.file_type, self.arrow = "varchar", None
            self.select = bounded_text(column_type)
        elif zoned_into_plain(source, column_type):
            self.file_type, self.arrow = "varchar", None
            self.select = f"CAST(CAST({{}} AS timestamp(6) with time zone) AS {column_type})"
        elif self.file_type == column_type:
            self.select = "{}"
        elif self.file_type == "varbinary":
            self.select = f"CAST({{}} AS {column_type})"
        else:
            if self.file_type == "varchar":
                self.arrow = None
            self.select = f"CAST({{}} AS {column_type})"

    def convert(self, array: pa.Array | pa.ChunkedArray) -> pa.Array:
        if self.arrow is None:
            return texts(array)
        return plain(array).cast(self.arrow)


_BOUNDED = re.compile(r"^varchar\((\d+)\)$")


def bounded_text(column_type: str) -> str:
    """The select expression of text going into a ``column_type`` column.  ``varchar(n)``: cast, so a
    ``CREATE TABLE ... AS`` creates the column as ``varchar(n)``, but a longer value fails the
    statement (Trino's CAST to ``varchar(n)`` would cut it without a word; an INSERT checks it)."""
    match = _BOUNDED.match(column_type)
    if not match:
        return "{}"
    n = int(match.group(1))
    too_long = f"CAST(fail('a value is longer than {column_type} allows') AS {column_type})"
    return f"IF(length({{0}}) > {n}, {too_long}, CAST({{0}} AS {column_type}))"


class FileStages:
    """The staged rows of one stream's load: a folder of Parquet files per window, and the external
    table over it once the window is published."""

    def __init__(self, cfg: TrinoConfig, session: TrinoSession, prefix: str) -> None:
        self.cfg = cfg
        self.session = session
        self.prefix = prefix
        self.run = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.fs, self.root = staging_fs(cfg)
        try:  # a location this process cannot write (a bucket that does not exist) fails before anything is written
            self.fs.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise location_error(cfg, "write", exc) from None
        self.window = 0
        self.name = ""
        self.plans: dict[str, ColumnPlan] = {}
        self.columns: dict[str, str] = {}
        self.files = 0
        self.table_made = False

    # -- names ----------------------------------------------------------------------------

    def rel(self, name: str) -> str:
        return ".".join(quote_ident(p) for p in (str(self.cfg.staging_catalog), self.cfg.staging_schema, name))

    def folder(self, name: str) -> str:
        return f"{self.root}/{name}"

    def server_folder(self, name: str) -> str:
        return f"{self.cfg.staging_server_location.rstrip('/')}/{name}"

    # -- a window -------------------------------------------------------------------------

    def open(self, columns: dict[str, str]) -> None:
        """A new, empty window for rows of ``columns`` (name -> destination type); its folder exists,
        so an empty load reads no rows rather than failing."""
        self.window += 1
        self.name = f"{self.run}_{self.window}"
        self.plans, self.columns, self.files, self.table_made = {}, dict(columns), 0, False
        self.fs.create_dir(self.folder(self.name), recursive=True)

    def add_columns(self, added: dict[str, str]) -> None:
        self.columns.update(added)

    def add(self, batch: pa.RecordBatch) -> None:
        """Write ``batch`` (lower-case column names) as one Parquet file of the window."""
        arrays, names = [], []
        for name, array in zip(batch.schema.names, batch.columns):
            plan = self.plans.get(name)
            if plan is None:
                plan = self.plans[name] = ColumnPlan(f"c{len(self.plans)}", self.columns[name], _source_type(array))
            arrays.append(plan.convert(array))
            names.append(plan.alias)
        path = f"{self.folder(self.name)}/part-{self.files:05d}.parquet"
        pq.write_table(pa.Table.from_arrays(arrays, names=names), path, filesystem=self.fs)
        self.files += 1

    def query(self, names: list[str]) -> str:
        """The window's rows as a query with the destination's column names and types (columns no
        file holds are NULL); the external table is made on the first call."""
        if not self.table_made:
            self._make_table()
        selects = []
        for name in names:
            plan = self.plans.get(name)
            value = plan.select.format(plan.alias) if plan else f"CAST(NULL AS {self.columns[name]})"
            selects.append(f"{value} AS {quote_ident(name)}")
        return f"SELECT {', '.join(selects)} FROM {self.rel(self.name)}"

    def _make_table(self) -> None:
        """The external table over the window's folder (the staging schema is created when missing)."""
        defs = ", ".join(f"{p.alias} {p.file_type}" for p in self.plans.values()) or "c0 varchar"
        statement = f"CREATE TABLE {self.rel(self.name)} ({defs}) WITH (external_location = ?, format = 'PARQUET')"
        location = [self.server_folder(self.name)]
        try:
            try:
                self.session.run(statement, location)
            except TrinoError as exc:
                if exc.name not in ("SCHEMA_NOT_FOUND", "NOT_FOUND"):  # hive says NOT_FOUND
                    raise
                catalog = quote_ident(str(self.cfg.staging_catalog))
                self.session.run(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{quote_ident(self.cfg.staging_schema)}")
                self.session.run(statement, location)
        except TrinoError as exc:
            raise self._config_error(f"could not create an external table over {location[0]}: {exc.message}") from None
        self.table_made = True

    def _config_error(self, what: str) -> ConfigError:
        return ConfigError(
            f"staging catalog {self.cfg.staging_catalog!r} {what}",
            fix=(
                "set staging_catalog to a Hive catalog of the server that can read staging_location "
                "(staging_server_location: the same place as that catalog names it), and staging_schema to a schema "
                "it may create tables in; or leave staging_location out to load through SQL statements."
            ),
        )

    def clear(self) -> None:
        """Remove the window's external table and files (after its publish, or when the load failed)."""
        if self.name:
            self._remove(self.name)
        self.name = ""

    def _remove(self, name: str) -> None:
        try:
            self.session.run(f"DROP TABLE IF EXISTS {self.rel(name)}")
        except Exception as exc:  # cleanup only: the next run of the table removes leftovers
            log.warning("could not drop %s: %s", name, exc)
        try:
            self.fs.delete_dir(self.folder(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove %s: %s", self.folder(name), exc)

    def close(self) -> None:
        """Nothing runs in the background on this path."""

    def sweep(self, tables: set[str]) -> None:
        """Remove the folders an earlier (killed) run of this stream left, and its external ``tables``
        (which the writer looked up in the statement that finds its own leftovers)."""
        names = set(tables)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        except OSError as exc:
            raise location_error(self.cfg, "list", exc) from None
        names |= {info.base_name for info in infos if info.base_name.startswith(self.prefix)}
        for name in sorted(names):
            self._remove(name)


def staging_fs(cfg: TrinoConfig) -> tuple[pafs.FileSystem, str]:
    """The file system and root path of ``staging_location`` (a local path or a URL pyarrow knows)."""
    location = str(cfg.staging_location)
    try:
        if "://" in location:
            fs, root = pafs.FileSystem.from_uri(location)
        else:
            fs, root = pafs.LocalFileSystem(), str(Path(location).expanduser().absolute())
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ConfigError(
            f"staging_location {location!r} cannot be opened: {exc}",
            fix="use a local folder or a URL such as s3://bucket/prefix (credentials from the environment).",
        ) from None
    return fs, root.rstrip("/")


def location_error(cfg: TrinoConfig, what: str, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot {what} staging_location {cfg.staging_location!r}: {exc}",
        fix=(
            "set staging_location to a folder or object store prefix (in an existing bucket) this process can write; "
            "credentials, region and endpoint (AWS_ENDPOINT_URL for S3-compatible stores) come from the environment."
        ),
    )


def _source_type(array: Any) -> pa.DataType:
    t = array.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        t = pa.string()
    return t
