"""The files connector's options, and reading and writing one local file per stream, per format
(csv, jsonl, parquet).

Why one module: the files source and destination read the same files (the
destination reads existing rows for appends and upserts), so the options,
schema inference, streaming readers and writers live together, and each
reader holds at most one block/batch in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ...errors import ConfigError
from .._shared.arrow_rows import conform, normalize_schema
from .._shared.json_records import dumps, json_rows, text_column, to_batch
from .._shared.json_records import infer_schema as infer_records_schema
from ..base import ConfigField
from .paths import extension

JSONL_SAMPLE_ROWS = 10_000
CSV_BLOCK_SIZE = 1 << 20


CONFIG_SCHEMA = [
    ConfigField("path", "path", required=True, description="Folder holding one file per stream (relative to the notebook's folder)."),
    ConfigField("format", "string", default="csv", description="csv, jsonl or parquet.", choices=("csv", "jsonl", "parquet")),
    ConfigField("delimiter", "string", default=",", description="CSV field delimiter (one character)."),
    ConfigField("header", "boolean", default=True, description="CSV files have a header row (else columns are f0, f1, ...)."),
]


@dataclass(frozen=True)
class FileOptions:
    """Format and its options, taken from the connector config."""

    format: str = "csv"
    delimiter: str = ","
    header: bool = True


def file_options(config: dict[str, Any]) -> FileOptions:
    fmt = str(config.get("format") or "csv").lower()
    extension(fmt)  # validates
    delimiter = config.get("delimiter") or ","
    if len(delimiter) != 1:
        raise ConfigError(f"CSV delimiter must be one character, got {delimiter!r}.", fix="set delimiter to e.g. ',' or ';'.")
    header = config.get("header", True)
    if isinstance(header, str):
        header = header.strip().lower() not in ("false", "no", "0", "off")
    return FileOptions(format=fmt, delimiter=delimiter, header=bool(header))


# ---------------------------------------------------------------- reading


def _csv_reader(path: Path, opts: FileOptions, schema: pa.Schema | None) -> pacsv.CSVStreamingReader:
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE, autogenerate_column_names=not opts.header)
    parse = pacsv.ParseOptions(delimiter=opts.delimiter, newlines_in_values=True)
    # Our CSV writer quotes every string, so an unquoted empty field is NULL and
    # a quoted one ("") is the empty string.
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        column_types={f.name: f.type for f in schema} if schema is not None else None,
    )
    try:
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise _EmptyFile() from None
        raise ConfigError(f"cannot read CSV file {path.name!r}: {exc}", fix="check the delimiter/header options and the file.") from None


class _EmptyFile(Exception):
    pass


def _jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ConfigError(
                    f"line {lineno} of {path.name!r} is not valid JSON ({exc}).",
                    fix="fix or remove that line; JSON Lines files hold one JSON object per line.",
                ) from None
            if not isinstance(record, dict):
                raise ConfigError(f"line {lineno} of {path.name!r} is not a JSON object.", fix="write one object per line.")
            yield record


def infer_schema(path: Path, opts: FileOptions) -> pa.Schema:
    """The file's columns and types (CSV: first block; JSONL: first rows; Parquet: footer)."""
    if opts.format == "parquet":
        return normalize_schema(pq.read_schema(path))
    if opts.format == "jsonl":
        sample = []
        for record in _jsonl_records(path):
            sample.append(record)
            if len(sample) >= JSONL_SAMPLE_ROWS:
                break
        return infer_records_schema(sample, detect_timestamps=True)
    try:
        reader = _csv_reader(path, opts, None)
    except _EmptyFile:
        return pa.schema([])
    try:
        return normalize_schema(reader.schema)
    finally:
        reader.close()


def iter_batches(path: Path, opts: FileOptions, schema: pa.Schema, batch_size: int, stream: str | None = None) -> Iterator[pa.RecordBatch]:
    """Batches of ``path`` conformed to ``schema`` (a subset of the file's columns, any order)."""
    if opts.format == "parquet":
        pf = pq.ParquetFile(path)
        try:
            for batch in pf.iter_batches(batch_size=batch_size, columns=schema.names):
                yield conform(batch, schema, stream)
        finally:
            pf.close()
        return
    if opts.format == "jsonl":
        buffer: list[dict[str, Any]] = []
        for record in _jsonl_records(path):
            buffer.append(record)
            if len(buffer) >= batch_size:
                yield to_batch(buffer, schema, stream)
                buffer = []
        if buffer:
            yield to_batch(buffer, schema, stream)
        return
    try:
        reader = _csv_reader(path, opts, schema)
    except _EmptyFile:
        return
    try:
        for batch in reader:
            yield conform(batch, schema, stream)
    finally:
        reader.close()


# ---------------------------------------------------------------- writing


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """CSV holds text: nested and binary columns become JSON text / base64."""
    arrays, fields = [], []
    for field, col in zip(batch.schema, batch.columns):
        t = col.type
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            col = text_column(col)
            field = field.with_type(pa.string())
        arrays.append(col)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class FileWriter:
    """Writes batches of one schema to an open binary file in the given format."""

    def __init__(self, fh: IO[bytes], schema: pa.Schema, opts: FileOptions, *, header: bool | None = None) -> None:
        self.fh = fh
        self.schema = schema
        self.opts = opts
        self._writer: Any = None
        if opts.format == "parquet":
            self._writer = pq.ParquetWriter(fh, schema)
        elif opts.format == "csv":
            include_header = opts.header if header is None else header
            csv_schema = _csv_ready(pa.RecordBatch.from_pylist([], schema=schema)).schema
            self._writer = pacsv.CSVWriter(
                fh,
                csv_schema,
                write_options=pacsv.WriteOptions(include_header=include_header, delimiter=opts.delimiter),
            )

    def write(self, batch: pa.RecordBatch) -> None:
        if self.opts.format == "parquet":
            self._writer.write_batch(batch)
        elif self.opts.format == "csv":
            self._writer.write_batch(_csv_ready(batch))
        else:
            text = "\n".join(map(dumps, json_rows(batch)))
            if text:
                self.fh.write((text + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.fh.flush()


def csv_header(path: Path, opts: FileOptions) -> list[str]:
    """Column names of an existing CSV file (the header row)."""
    try:
        reader = _csv_reader(path, opts, None)
    except _EmptyFile:
        return []
    try:
        return list(reader.schema.names)
    finally:
        reader.close()


__all__ = ["CONFIG_SCHEMA", "FileOptions", "FileWriter", "file_options", "infer_schema", "iter_batches", "csv_header"]
