"""The files destination: ``<folder>/<table>.<ext>``, replaced atomically or appended.

Files are not transactional (``transactional = False``): the engine keeps the
state itself and saves it after ``on_commit``, which is called only after the
rows are durable (written, flushed and fsynced; replaced files also fsync the
folder).  Per mode:

* FULL_TABLE: stream the chunks into a temp file in the same folder, then
  ``os.replace`` it over the old file (a failure midway leaves the old file).
  One commit at the end.  With ``unique_constraints`` the new rows are
  de-duplicated on them (in memory), as a table with a unique key would be.
* append, csv/jsonl: rows are appended in place, one fsync + ``on_commit`` per
  chunk; a chunk that fails midway is truncated away.  When a CSV gains
  columns, or for Parquet (which cannot be appended to), old and new rows are
  streamed into a temp file which then replaces the old one (one commit).
* upsert (``unique_constraints``): existing + new rows are read into memory,
  the last (UPDATE) or first (IGNORE) row per key is kept, written to a temp
  file and replaced (one commit).  Memory is the whole table in Arrow.

Columns: the file keeps its existing columns (missing ones are written as
NULL); new columns are added when ``auto_add_new_fields`` (which rewrites a
CSV), else SchemaMismatch.  Parquet keeps its stored types; CSV/JSONL types
come from the incoming schema since text files only have inferred ones.
JSON-marked columns are nested JSON in jsonl and JSON text in csv.

What survives a crash (``kill -9`` at any instant; tests/test_crash_recovery.py):

* The file is always whole: rewrites go to a temp file that is renamed over it.
  An append of a chunk that fails is truncated away; one killed midway (a torn
  last line would make the file unreadable) is cut off by the next write of
  the file: before each chunk the writer leaves ``.<file>.appending`` (host,
  pid, inode, the offset the chunk starts at) and deletes it once the chunk is
  fsynced, so a marker whose writer is gone means "cut the file back here".
* The local state store is saved after the file, so it can be at most one
  commit behind it, never ahead: nothing is ever lost.
* Keyed INCREMENTAL (upsert) and FULL_TABLE streams end exactly equal to the
  source after the next run, with no duplicates: a rewrite replaces the file's
  rows with the old rows upserted with the new ones on the keys, so the rows a
  lagging bookmark reads again replace themselves (as they do in a
  transactional destination: bookmarks are inclusive, every destination upserts
  the boundary rows again).  No marker or manifest beside the file is needed:
  upserting on the keys already makes a repeated commit harmless, and a second
  copy of the state could itself be left one rename behind.
* Append without keys is at least once: a crash between a chunk's fsync and
  the state save appends that chunk again on resume (and an inclusive bookmark
  appends its boundary rows again on every run).  Give the stream
  ``key_properties`` to have it exact.
* A temp file left by a killed writer (``.<file>.<host>-<pid>-<n>.tmp``, hidden
  from the files source) is deleted by the next write of that file once its pid
  is gone.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import ConfigError, SchemaMismatch
from ...processes import process_exists
from .._shared.arrow_rows import check_columns_exist, conform, normalize_schema
from ..base import FULL_TABLE, Chunk, CommitCallback, Destination, WriteRequest, WriteResult
from .formats import FileWriter, csv_header, file_options, infer_schema, iter_batches
from .paths import root_folder, table_path

READ_BATCH = 65_536
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FilesDestination(Destination):
    """Writes each stream to one file in the configured folder."""

    name = "files"
    transactional = False

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.opts = file_options(config)

    @property
    def root(self) -> Path:
        return root_folder(self.config.get("path"), create=True)

    def check(self) -> None:
        root = self.root
        if not os.access(root, os.W_OK):
            raise ConfigError(f"folder {str(root)!r} is not writable.", fix="pick a folder you can write to.")

    # ------------------------------------------------------------ schema

    def _existing_schema(self, path: Path, incoming: pa.Schema) -> pa.Schema | None:
        if not path.exists():
            return None
        schema = infer_schema(path, self.opts)
        if self.opts.format == "csv" and not self.opts.header and len(schema) == len(incoming):
            schema = pa.schema([f.with_name(n) for f, n in zip(schema, incoming.names)])
        return schema

    def _target_schema(self, existing: pa.Schema | None, incoming: pa.Schema, request: WriteRequest) -> pa.Schema:
        incoming = normalize_schema(incoming)
        if existing is None or len(existing) == 0:
            return incoming
        settings = request.settings
        fields = []
        for field in existing:
            idx = incoming.get_field_index(field.name)
            if idx >= 0 and self.opts.format != "parquet":
                field = incoming.field(idx)
            fields.append(field)
        new = [f for f in incoming if f.name not in existing.names]
        if new and not settings.auto_add_new_fields:
            raise SchemaMismatch(
                f"new column(s) {', '.join(repr(f.name) for f in new)} are not in {settings.table_name!r}.",
                stream=settings.stream,
                fix="set auto_add_new_fields: true, or deselect those columns.",
            )
        return pa.schema(fields + new)

    # ------------------------------------------------------------ writing

    def write(
        self,
        request: WriteRequest,
        chunks: Iterable[Chunk],
        on_commit: CommitCallback | None = None,
    ) -> WriteResult:
        settings = request.settings
        stream = settings.stream
        root = self.root
        path = table_path(root, settings.table_name, self.opts.format)
        _remove_stale_temps(path)
        _undo_killed_append(path)
        existing = self._existing_schema(path, request.schema)
        target = self._target_schema(existing, request.schema, request)
        unique = list(settings.unique_constraints)
        check_columns_exist(target, unique, "unique constraint", stream)
        commit = on_commit or (lambda rows, state: None)
        result = WriteResult()

        def incoming() -> Iterator[pa.RecordBatch]:
            for chunk in chunks:
                batch = conform(chunk.batch, target, stream)
                result.rows_written += batch.num_rows
                if chunk.state is not None:
                    result.state = chunk.state
                yield batch

        def old_rows() -> Iterator[pa.RecordBatch]:
            if existing is not None and len(existing):
                read_schema = pa.schema([f for f in existing if f.name in target.names])
                read_schema = pa.schema([target.field(f.name) if self.opts.format != "parquet" else f for f in read_schema])
                for batch in iter_batches(path, self.opts, read_schema, READ_BATCH, stream):
                    yield conform(batch, target, stream)

        full = settings.replication_method == FULL_TABLE
        if unique:
            method = settings.unique_conflict_method.upper()
            if method not in ("UPDATE", "IGNORE"):
                raise ConfigError(f"unique_conflict_method {method!r} is not UPDATE or IGNORE.", stream=stream, fix="use UPDATE or IGNORE.")
            rows = incoming() if full else _chain(old_rows(), incoming())
            table = _dedupe(pa.Table.from_batches(list(rows), schema=target), unique, keep_last=method == "UPDATE")
            self._replace(path, target, table.to_batches(max_chunksize=READ_BATCH))
        elif full:
            self._replace(path, target, incoming())
        elif self._appendable(path, existing, target):
            self._append(path, target, chunks, result, commit, stream)
            return result
        else:
            self._replace(path, target, _chain(old_rows(), incoming()))
        commit(result.rows_written, result.state)
        return result

    def _appendable(self, path: Path, existing: pa.Schema | None, target: pa.Schema) -> bool:
        if self.opts.format == "parquet":
            return False
        if existing is None or self.opts.format == "jsonl":
            return True
        if not self.opts.header:
            return len(existing) == len(target)
        return csv_header(path, self.opts) == target.names

    def _replace(self, path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
        """Write ``batches`` to a temp file beside ``path``, fsync, then atomically replace."""
        tmp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as fh:
                writer = FileWriter(fh, schema, self.opts)
                try:
                    for batch in batches:
                        writer.write(batch)
                finally:
                    writer.close()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def _append(
        self,
        path: Path,
        schema: pa.Schema,
        chunks: Iterable[Chunk],
        result: WriteResult,
        commit: Callable[[int, Any], None],
        stream: str,
    ) -> None:
        """Append chunk by chunk; each chunk is fsynced and committed, or truncated away."""
        new_file = not path.exists() or path.stat().st_size == 0
        marker = _append_marker(path)
        with open(path, "ab") as fh:
            if new_file:
                _fsync_dir(path.parent)
            elif not _ends_with_newline(path):
                fh.write(b"\n")
            header = new_file and self.opts.header
            for chunk in chunks:
                batch = conform(chunk.batch, schema, stream)
                fh.flush()
                start = fh.tell()
                marker.write_text(f"{_HOST} {os.getpid()} {os.fstat(fh.fileno()).st_ino} {start}\n")
                try:
                    writer = FileWriter(fh, schema, self.opts, header=header)
                    writer.write(batch)
                    writer.close()
                    os.fsync(fh.fileno())
                except BaseException:
                    fh.flush()
                    fh.truncate(start)
                    raise
                finally:
                    marker.unlink(missing_ok=True)
                header = False
                result.rows_written += batch.num_rows
                if chunk.state is not None:
                    result.state = chunk.state
                commit(result.rows_written, result.state)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-"


def _remove_stale_temps(path: Path) -> None:
    """Delete the temp files of ``path`` whose writer (a process on this host) is gone: killed mid-rewrite."""
    prefix = _temp_prefix(path)
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not process_exists(int(pid)):
            (path.parent / name).unlink(missing_ok=True)


def _append_marker(path: Path) -> Path:
    return path.with_name(f".{path.name}.appending")


def _undo_killed_append(path: Path) -> None:
    """Cut off the chunk an append killed midway left (see the module docstring), if its writer is gone."""
    marker = _append_marker(path)
    try:
        text = marker.read_text()
    except FileNotFoundError:
        return
    try:
        if not text.endswith("\n"):
            raise ValueError("killed while writing the marker")  # then no row was written after it
        host, pid, inode, offset = text.split()
        writer_gone = host == _HOST and (int(pid) == os.getpid() or not process_exists(int(pid)))
        inode_n, offset_n = int(inode), int(offset)
    except ValueError:
        marker.unlink(missing_ok=True)
        return
    if not writer_gone:
        return  # a writer still appending (or on another host)
    try:
        with open(path, "r+b") as fh:
            if os.fstat(fh.fileno()).st_ino == inode_n and os.fstat(fh.fileno()).st_size > offset_n:
                fh.truncate(offset_n)
                os.fsync(fh.fileno())
    except FileNotFoundError:
        pass
    marker.unlink(missing_ok=True)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _chain(*iterables: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for it in iterables:
        yield from it


def _dedupe(table: pa.Table, keys: list[str], *, keep_last: bool) -> pa.Table:
    """One row per key: the last occurrence (UPDATE) or the first (IGNORE), in row order."""
    if table.num_rows == 0:
        return table
    idx = "__jupyter_di_row__"
    indexed = table.append_column(idx, pa.array(range(table.num_rows), pa.int64()))
    agg = "max" if keep_last else "min"
    grouped = indexed.group_by(keys, use_threads=False).aggregate([(idx, agg)])
    keep = pc.sort_indices(grouped.column(f"{idx}_{agg}"))
    rows = pc.take(grouped.column(f"{idx}_{agg}"), keep)
    return table.take(rows)
